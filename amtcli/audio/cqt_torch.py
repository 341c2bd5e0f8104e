"""The CQT front end as a torch module (nnAudio's CQT1992v2, computed band by band), for the model's
device: what training and the torch transcription path run. :mod:`amtcli.audio.features` has the
same transform in numpy (no torch needed) and the chunked :func:`~amtcli.audio.features.compute_features`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import FeatureConfig
from ..errors import BadInput
from .features import cqt_kernels


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
