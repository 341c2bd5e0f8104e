"""The CQT front end (nnAudio's CQT1992v2, computed band by band), as a torch module that runs on the
model's device.

A ``FeatureConfig`` describes it completely; the kernels are rebuilt from the config, never stored
in weights. Output shape ``(batch, n_bins, n_frames)`` with ``n_frames = n_samples // hop + 1``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import FeatureConfig
from ..errors import BadInput


def cqt_kernels(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The time-domain CQT kernels of ``config``: complex64 ``(n_bins, kernel_width)`` and the
    length of each kernel ``(n_bins,)``.

    These are nnAudio's ``CQT1992v2`` kernels (``create_cqt_kernels`` with a periodic Hann window and
    L1 normalisation), each centred in a window of ``kernel_width`` (the next power of two above the
    longest); tests check them against nnAudio's own.
    """
    bpo = config.bins_per_octave
    q = float(config.filter_scale) / (2.0 ** (1.0 / bpo) - 1.0)
    freqs = config.fmin_hz * 2.0 ** (np.arange(config.n_bins) / float(bpo))
    if freqs.max() > config.sample_rate / 2:
        raise BadInput(
            f"the top CQT bin ({freqs.max():.0f} Hz) is above the Nyquist frequency of {config.sample_rate} Hz audio"
        )
    lengths = np.ceil(q * config.sample_rate / freqs)
    width = int(2 ** np.ceil(np.log2(lengths.max())))
    kernels = np.zeros((config.n_bins, width), dtype=np.complex64)
    for k, (freq, length) in enumerate(zip(freqs, lengths)):
        n = int(length)
        start = int(np.ceil(width / 2.0 - length / 2.0)) - (1 if n % 2 == 1 else 0)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic Hann
        # the division by the length cancels in the normalisation; it stays so the float rounding is nnAudio's
        sig = window * np.exp(np.arange((-n) // 2, n // 2) * 2j * np.pi * freq / config.sample_rate) / length
        kernels[k, start : start + n] = sig / np.abs(sig).sum()
    return kernels, lengths.astype(np.float32)


class CQTFrontEnd(nn.Module):
    """Waveform ``(batch, n_samples)`` -> log-magnitude CQT ``(batch, n_bins, n_frames)``.

    The transform is nnAudio's ``CQT1992v2`` (centred frames, zero padding, librosa normalisation),
    computed band by band: a low bin's kernel is thousands of samples long, a high bin's a few dozen,
    and the kernels are zero outside their centre. Each band of ``band_bins`` neighbouring bins is
    convolved with its kernels cut to the longest of the band, which gives the same numbers with
    about a fifth of the arithmetic of one convolution over the full kernel width, and needs no
    nnAudio (and its scipy.signal import, about a second per process) at run time.
    """

    band_bins = 12

    def __init__(self, config: FeatureConfig):
        super().__init__()
        if config.kind != "cqt1992v2":
            raise BadInput(f"unknown feature kind {config.kind!r}")
        self.config = config
        kernels, lengths = cqt_kernels(config)
        self.kernel_width = kernels.shape[1]
        self.hop_length = config.hop_length
        self._offsets: list[int] = []  # where band i's cut kernels start in the full window
        support = np.abs(kernels) > 0
        for b0 in range(0, config.n_bins, self.band_bins):
            band = kernels[b0 : b0 + self.band_bins]
            cols = np.flatnonzero(support[b0 : b0 + self.band_bins].any(axis=0))
            lo, hi = int(cols[0]), int(cols[-1]) + 1
            # real parts then imaginary parts (nnAudio negates the imaginary one; the magnitude is the same)
            weight = np.concatenate([band.real[:, lo:hi], band.imag[:, lo:hi]])[:, None, :]
            # derived data: rebuilt from the config, kept out of state_dict
            self.register_buffer(
                f"band{len(self._offsets)}",
                torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)),
                persistent=False,
            )
            self._offsets.append(lo)
        self.register_buffer("scale", torch.from_numpy(np.sqrt(lengths))[:, None], persistent=False)

    @property
    def kernel_length(self) -> int:
        return int(self.kernel_width)

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """CQT magnitude ``(batch, n_bins, n_frames)`` of ``audio`` ``(batch, n_samples)``."""
        pad = self.kernel_width // 2
        x = torch.nn.functional.pad(audio[:, None, :], (pad, pad))
        n_frames = (x.shape[-1] - self.kernel_width) // self.hop_length + 1
        out = []
        for i, lo in enumerate(self._offsets):
            weight = getattr(self, f"band{i}")
            y = torch.nn.functional.conv1d(x[..., lo:], weight, stride=self.hop_length)[..., :n_frames]
            half = weight.shape[0] // 2
            out.append(torch.sqrt(y[:, :half] ** 2 + y[:, half:] ** 2))
        return torch.cat(out, dim=1) * self.scale

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 1:
            audio = audio[None]
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mag = self.magnitude(audio.float())
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

    ``audio`` has shape ``(n_samples,)``; returns float32 ``(n_frames, n_bins)``. With
    ``config.level_db`` set, the whole signal is first brought to that level
    (:func:`amtcli.audio.level.normalize_level`), so the same recording at any gain gives the same features.
    Chunks overlap by the longest kernel, so the result equals one pass over the whole signal.
    """
    audio = np.asarray(audio, dtype=np.float32)
    scale = None  # the level gain, applied chunk by chunk (no second copy of a long recording)
    if config.level_db is not None:
        from .level import level_gain_db

        scale = torch.tensor(
            10.0 ** (level_gain_db(audio, sample_rate=config.sample_rate, target_db=config.level_db) / 20.0),
            dtype=torch.float32,
        )
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
            elif scale is not None:
                seg = seg * scale
            feats = fe(seg)[0].T.numpy()  # (frames_in_seg, bins)
            first = f0 - a0 // hop
            piece = feats[first : first + (f1 - f0)]
            if len(piece) < f1 - f0:  # end of the signal: frames past it are silence
                pad = np.full((f1 - f0 - len(piece), config.n_bins), np.log(config.log_offset), np.float32)
                piece = np.concatenate([piece, pad])
            out[f0:f1] = piece
    return out
