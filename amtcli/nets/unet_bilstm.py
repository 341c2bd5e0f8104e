"""U-Net + BiLSTM transcriber on a harmonically stacked CQT.

Shape of the computation for a batch of ``B`` excerpts of ``T`` frames::

    log-CQT (B, T, n_bins)                         n_bins = 88 * bins_per_semitone
      -> harmonic stack (B, H, n_bins, T)          the CQT shifted by log2(h) octaves, h in `harmonics`
      -> U-Net over (frequency, time)               pools frequency only, so time resolution is kept;
                                                    the decoder stops at one row per key: (B, C, 88, T)
      -> BiLSTM along time, one sequence per key    shared weights across keys: (B, 88, T, 2 * hidden)
      -> heads: onset, frame, offset, velocity      logits (B, T, 88) each

The per-key BiLSTM decides how long a note lasts from what it heard at that key; the U-Net's
frequency pooling gives it the context of the whole spectrum (harmonics, neighbouring keys).
The CQT front end is part of the module (``features_from_audio``) and has no weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.cqt_torch import CQTFrontEnd
from ..config import FeatureConfig
from ..errors import ConfigMismatch

HEADS = ("onset", "frame", "offset", "velocity")


@dataclass(frozen=True)
class UNetBiLSTMConfig:
    harmonics: tuple = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    channels: tuple = (8, 16, 32)  # input level (bins), key level (88), bottleneck (44)
    lstm_hidden: int = 24  # per direction, per key
    dropout: float = 0.1


def _conv(c_in: int, c_out: int, *, dilation: tuple[int, int] = (1, 1)) -> nn.Sequential:
    pad = (dilation[0], dilation[1])
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNetBiLSTM(nn.Module):
    """``forward(features (B, T, n_bins)) -> dict of logits (B, T, 88)`` for onset, frame, offset, velocity."""

    arch = "unet-bilstm"

    def __init__(self, config: UNetBiLSTMConfig, feature_config: FeatureConfig):
        super().__init__()
        self.config = config
        self.feature_config = feature_config
        fc = feature_config
        if fc.bins_per_semitone < 1:
            raise ConfigMismatch("bins_per_semitone must be >= 1")
        c0, c1, c2 = config.channels
        h = len(config.harmonics)
        self.shifts = [int(round(fc.bins_per_octave * math.log2(x))) for x in config.harmonics]
        self.input_norm = nn.BatchNorm2d(h)
        self.enc0 = _conv(h, c0)
        # bins -> keys: a strided conv over each key's bins
        self.to_keys = nn.Sequential(
            nn.Conv2d(c0, c1, kernel_size=(fc.bins_per_semitone, 1), stride=(fc.bins_per_semitone, 1), bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
        )
        self.enc1 = _conv(c1, c1)
        self.bottleneck = nn.Sequential(_conv(c1, c2), _conv(c2, c2, dilation=(6, 1)))  # 6 rows = one octave at 44
        self.dec1 = _conv(c2 + c1, c1)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(c1, config.lstm_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * config.lstm_hidden + c1, len(HEADS))
        self.key_bias = nn.Parameter(torch.zeros(fc.n_keys, len(HEADS)))
        self._front_end: CQTFrontEnd | None = None

    # ------------------------------------------------------------------ front end
    def front_end(self) -> CQTFrontEnd:
        if self._front_end is None:
            fe = CQTFrontEnd(self.feature_config)
            # keep it out of state_dict / parameters (no weights), but on the model's device
            object.__setattr__(self, "_front_end", fe)
        device = next(self.parameters()).device
        return self._front_end.to(device)

    def features_from_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, n_samples)`` on the model's device -> features ``(B, T, n_bins)``."""
        return self.front_end()(audio).transpose(1, 2)

    # ------------------------------------------------------------------ network
    def harmonic_stack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> (B, H, F, T): channel k is the CQT read log2(h_k) octaves higher (zero-padded)."""
        b, t, f = x.shape
        x = x.transpose(1, 2)
        floor = x.amin(dim=(1, 2), keepdim=True)
        out = []
        for s in self.shifts:
            if s == 0:
                out.append(x)
            elif s > 0:
                out.append(torch.cat([x[:, s:], floor.expand(b, min(s, f), t)], dim=1))
            else:
                out.append(torch.cat([floor.expand(b, min(-s, f), t), x[:, : f + s]], dim=1))
        return torch.stack(out, dim=1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if features.shape[-1] != self.feature_config.n_bins:
            raise ConfigMismatch(
                f"features have {features.shape[-1]} bins but the model expects {self.feature_config.n_bins}"
            )
        b, t, _ = features.shape
        x = self.input_norm(self.harmonic_stack(features))  # (B, H, F, T)
        x = self.enc0(x)
        k = self.to_keys(x)  # (B, c1, 88, T)
        e1 = self.enc1(k)
        d = self.bottleneck(F.max_pool2d(e1, kernel_size=(2, 1)))
        d = F.interpolate(d, size=e1.shape[2:], mode="nearest")
        u = self.dec1(torch.cat([d, e1], dim=1))  # (B, c1, 88, T)
        u = self.dropout(u)
        n_keys = u.shape[2]
        seq = u.permute(0, 2, 3, 1).reshape(b * n_keys, t, -1)  # one sequence per key
        lstm_out, _ = self.lstm(seq)
        z = torch.cat([lstm_out, seq], dim=-1)  # (B*88, T, 2h + c1)
        logits = self.head(z).reshape(b, n_keys, t, len(HEADS)) + self.key_bias[None, :, None, :]
        logits = logits.permute(0, 2, 1, 3)  # (B, T, 88, 4)
        return {name: logits[..., i].float() for i, name in enumerate(HEADS)}

    @torch.no_grad()
    def shift_logits(self, offsets: dict[str, torch.Tensor]) -> None:
        """Add per-key constants ``(88,)`` to the logits of the named heads (folded into ``key_bias``)."""
        for name, value in offsets.items():
            self.key_bias[:, HEADS.index(name)] += value.to(self.key_bias)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Probabilities (sigmoid of the logits), same shapes as ``forward``; velocity in [0, 1]."""
        return {k: torch.sigmoid(v) for k, v in self.forward(features).items()}
