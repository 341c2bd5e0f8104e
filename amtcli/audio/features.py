"""The CQT front end (nnAudio), as a torch module that runs on the model's device.

A ``FeatureConfig`` describes it completely; the kernels are rebuilt from the config, never stored
in weights. Output shape ``(batch, n_bins, n_frames)`` with ``n_frames = n_samples // hop + 1``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import FeatureConfig
from ..errors import BadInput


class CQTFrontEnd(nn.Module):
    """Waveform ``(batch, n_samples)`` -> log-magnitude CQT ``(batch, n_bins, n_frames)``."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        if config.kind != "cqt1992v2":
            raise BadInput(f"unknown feature kind {config.kind!r}")
        import warnings

        from nnAudio.features import CQT1992v2

        self.config = config
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.cqt = CQT1992v2(
                sr=config.sample_rate,
                hop_length=config.hop_length,
                fmin=config.fmin_hz,
                n_bins=config.n_bins,
                bins_per_octave=config.bins_per_octave,
                filter_scale=config.filter_scale,
                output_format="Magnitude",
                center=True,
                pad_mode="constant",
                verbose=False,
            )
        # Kernels are derived data: rebuild them from the config, keep them out of state_dict.
        for name, buf in list(self.cqt.named_buffers(recurse=False)):
            self.cqt._non_persistent_buffers_set.add(name)
        for name, param in list(self.cqt.named_parameters(recurse=False)):
            param.requires_grad_(False)

    @property
    def kernel_length(self) -> int:
        return int(self.cqt.kernel_width)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 1:
            audio = audio[None]
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mag = self.cqt(audio.float())
        return torch.log(mag + self.config.log_offset)


def n_frames_for(n_samples: int, config: FeatureConfig) -> int:
    """Number of feature frames for ``n_samples`` of audio (centred frames)."""
    return n_samples // config.hop_length + 1


_FRONT_ENDS: dict[FeatureConfig, CQTFrontEnd] = {}


def get_front_end(config: FeatureConfig) -> CQTFrontEnd:
    """A cached CPU front end for ``config`` (building the kernels takes a moment)."""
    fe = _FRONT_ENDS.get(config)
    if fe is None:
        fe = _FRONT_ENDS[config] = CQTFrontEnd(config).eval()
    return fe


def compute_features(audio: np.ndarray, *, config: FeatureConfig, chunk_s: float = 30.0) -> np.ndarray:
    """Log-CQT of a whole signal on the CPU, in chunks so memory stays bounded.

    ``audio`` has shape ``(n_samples,)``; returns float32 ``(n_frames, n_bins)``.
    Chunks overlap by the longest kernel, so the result equals one pass over the whole signal.
    """
    audio = np.asarray(audio, dtype=np.float32)
    fe = get_front_end(config)
    hop = config.hop_length
    n_frames = n_frames_for(len(audio), config)
    chunk_frames = max(1, int(chunk_s * config.frame_rate))
    ctx = (fe.kernel_length // 2) // hop + 2  # frames of context each side
    out = np.empty((n_frames, config.n_bins), dtype=np.float32)
    with torch.inference_mode():
        for f0 in range(0, n_frames, chunk_frames):
            f1 = min(n_frames, f0 + chunk_frames)
            a0 = max(0, (f0 - ctx)) * hop
            a1 = min(len(audio), (f1 + ctx) * hop)
            seg = torch.from_numpy(audio[a0:a1])
            if len(seg) == 0:
                seg = torch.zeros(1)
            feats = fe(seg)[0].T.numpy()  # (frames_in_seg, bins)
            first = f0 - a0 // hop
            piece = feats[first : first + (f1 - f0)]
            if len(piece) < f1 - f0:  # end of the signal: frames past it are silence
                pad = np.full((f1 - f0 - len(piece), config.n_bins), np.log(config.log_offset), np.float32)
                piece = np.concatenate([piece, pad])
            out[f0:f1] = piece
    return out
