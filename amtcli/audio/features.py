"""The CQT front end: nnAudio's CQT1992v2, computed band by band, in numpy (:class:`NumpyCQT`) and
as a torch module on the model's device (:class:`amtcli.audio.cqt_torch.CQTFrontEnd`).

A ``FeatureConfig`` describes it completely; the kernels are rebuilt from the config, never stored
in weights. :func:`compute_features` gives ``(n_frames, n_bins)`` with ``n_frames = n_samples // hop + 1``
through either engine; both give nnAudio's numbers up to float32 rounding (tests/test_features.py).
This module does not import torch: the onnxruntime transcription path runs without it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..config import FeatureConfig
from ..errors import BadInput

ENGINES = ("torch", "numpy")
BAND_BINS = 12  # neighbouring bins convolved together, their kernels cut to the longest of the band


def __getattr__(name: str):
    # CQTFrontEnd is a torch module; it lives in cqt_torch so that importing this module needs no torch
    if name == "CQTFrontEnd":
        from .cqt_torch import CQTFrontEnd

        return CQTFrontEnd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cqt_kernels(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The time-domain CQT kernels of ``config``: complex64 ``(n_bins, kernel_width)`` and the
    length of each kernel ``(n_bins,)``.

    These are nnAudio's ``CQT1992v2`` kernels (``create_cqt_kernels`` with a periodic Hann window and
    L1 normalisation), each centred in a window of ``kernel_width`` (the next power of two above the
    longest); tests check them against nnAudio's own. With ``config.gamma > 0`` each kernel is
    shortened to the bandwidth ``alpha * f + gamma`` (a variable-Q transform, as librosa's ``vqt``),
    ``alpha = 2^(1/bins_per_octave) - 1``.
    """
    bpo = config.bins_per_octave
    alpha = 2.0 ** (1.0 / bpo) - 1.0
    q = float(config.filter_scale) / alpha
    freqs = config.fmin_hz * 2.0 ** (np.arange(config.n_bins) / float(bpo))
    if freqs.max() > config.sample_rate / 2:
        raise BadInput(
            f"the top CQT bin ({freqs.max():.0f} Hz) is above the Nyquist frequency of {config.sample_rate} Hz audio"
        )
    lengths = np.ceil(q * config.sample_rate / (freqs + float(config.gamma) / alpha))
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


def n_frames_for(n_samples: int, config: FeatureConfig) -> int:
    """Number of feature frames for ``n_samples`` of audio (centred frames)."""
    return n_samples // config.hop_length + 1


class NumpyCQT:
    """Waveform ``(n_samples,)`` -> CQT magnitude ``(n_frames, n_bins)`` in numpy: the transform of
    :class:`~amtcli.audio.cqt_torch.CQTFrontEnd` (centred frames, zero padding) without torch.

    The same bands of ``BAND_BINS`` bins, each convolved with its kernels cut to the band's support.
    A strided convolution is written as one matrix product: the padded signal is read as rows of
    ``hop`` samples (a view, no copy), each band's cut kernels are split into ``J`` blocks of ``hop``
    taps, and all blocks of all bands form the columns of one weight matrix ``(hop, sum 2 * bins * J)``.
    Frame ``t`` of a band is then the sum over ``j`` of row ``t + j`` of the product, in block ``j``'s
    columns. The arithmetic is that of the convolution (no overlapping frames are copied), done by one
    BLAS call.
    """

    def __init__(self, config: FeatureConfig, *, band_bins: int = BAND_BINS):
        if config.kind != "cqt1992v2":
            raise BadInput(f"unknown feature kind {config.kind!r}")
        self.config = config
        kernels, lengths = cqt_kernels(config)
        self.kernel_length = int(kernels.shape[1])
        hop = self.hop_length = config.hop_length
        support = np.abs(kernels) > 0
        self._bands: list[tuple[int, int, int, int, int]] = []  # (first bin, bins, first block, blocks, column)
        columns = []
        col = 0
        for b0 in range(0, config.n_bins, band_bins):
            band = kernels[b0 : b0 + band_bins]
            nb = len(band)
            cols = np.flatnonzero(support[b0 : b0 + band_bins].any(axis=0))
            lo, hi = int(cols[0]), int(cols[-1]) + 1
            first = lo // hop
            blocks = -(-(hi - first * hop) // hop)
            w = np.zeros((blocks * hop, 2 * nb), dtype=np.float32)
            w[lo - first * hop : hi - first * hop, :nb] = band.real[:, lo:hi].T
            w[lo - first * hop : hi - first * hop, nb:] = band.imag[:, lo:hi].T
            columns.append(w.reshape(blocks, hop, 2 * nb).transpose(1, 0, 2).reshape(hop, blocks * 2 * nb))
            self._bands.append((b0, nb, first, blocks, col))
            col += blocks * 2 * nb
        self._weight = np.ascontiguousarray(np.concatenate(columns, axis=1))
        self._rows_past = max(first + blocks for _, _, first, blocks, _ in self._bands)
        self._scale = np.sqrt(lengths).astype(np.float32)

    def magnitude(self, audio: np.ndarray) -> np.ndarray:
        """CQT magnitude ``(n_frames, n_bins)`` of ``audio`` ``(n_samples,)``, float32."""
        audio = np.asarray(audio, dtype=np.float32)
        hop, pad = self.hop_length, self.kernel_length // 2
        n_frames = len(audio) // hop + 1
        rows = n_frames + self._rows_past
        x = np.zeros(rows * hop, dtype=np.float32)
        x[pad : pad + len(audio)] = audio[: rows * hop - pad]
        prod = x.reshape(rows, hop) @ self._weight
        out = np.empty((n_frames, self.config.n_bins), dtype=np.float32)
        for b0, nb, first, blocks, col in self._bands:
            y = prod[first : first + n_frames, col : col + 2 * nb].copy()
            for j in range(1, blocks):
                c = col + j * 2 * nb
                y += prod[first + j : first + j + n_frames, c : c + 2 * nb]
            out[:, b0 : b0 + nb] = np.sqrt(y[:, :nb] ** 2 + y[:, nb:] ** 2)
        out *= self._scale
        return out

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Log-magnitude ``(n_frames, n_bins)``: ``log(magnitude + log_offset)``, as the torch module gives."""
        mag = self.magnitude(audio)
        return np.log(mag + np.float32(self.config.log_offset), out=mag)


_FRONT_ENDS: dict = {}


def get_front_end(config: FeatureConfig):
    """A cached CPU :class:`~amtcli.audio.cqt_torch.CQTFrontEnd` for ``config`` (imports torch)."""
    from .cqt_torch import CQTFrontEnd

    fe = _FRONT_ENDS.get(config)
    if fe is None:
        fe = _FRONT_ENDS[config] = CQTFrontEnd(config).eval()
    return fe


@lru_cache(maxsize=8)
def get_numpy_front_end(config: FeatureConfig) -> NumpyCQT:
    """A cached :class:`NumpyCQT` for ``config`` (building the kernels takes a moment)."""
    return NumpyCQT(config)


def compute_features(
    audio: np.ndarray, *, config: FeatureConfig, chunk_s: float = 30.0, engine: str = "torch"
) -> np.ndarray:
    """Log-CQT of a whole signal on the CPU, in chunks so memory stays bounded.

    ``audio`` has shape ``(n_samples,)``; returns float32 ``(n_frames, n_bins)``. With
    ``config.level_db`` set, the whole signal is first brought to that level
    (:func:`amtcli.audio.level.normalize_level`), so the same recording at any gain gives the same features.
    Chunks overlap by the longest kernel, so the result equals one pass over the whole signal.
    ``engine``: ``torch`` (:class:`~amtcli.audio.cqt_torch.CQTFrontEnd`) or ``numpy`` (:class:`NumpyCQT`,
    no torch import); the two agree to float32 rounding.
    """
    if engine not in ENGINES:
        raise BadInput(f"feature engine {engine!r}: expected one of {', '.join(ENGINES)}")
    audio = np.asarray(audio, dtype=np.float32)
    scale = None  # the level gain, applied chunk by chunk (no second copy of a long recording)
    if config.level_db is not None:
        from .level import level_gain_db

        scale = np.float32(
            10.0 ** (level_gain_db(audio, sample_rate=config.sample_rate, target_db=config.level_db) / 20.0)
        )
    if engine == "numpy":
        fe = get_numpy_front_end(config)
        run = fe
    else:
        import torch

        fe = get_front_end(config)

        def run(seg: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return fe(torch.from_numpy(seg))[0].T.numpy()

    hop = config.hop_length
    n_frames = n_frames_for(len(audio), config)
    chunk_frames = max(1, int(chunk_s * config.frame_rate))
    ctx = (fe.kernel_length // 2) // hop + 2  # frames of context each side
    out = np.empty((n_frames, config.n_bins), dtype=np.float32)
    for f0 in range(0, n_frames, chunk_frames):
        f1 = min(n_frames, f0 + chunk_frames)
        a0 = max(0, (f0 - ctx)) * hop
        a1 = min(len(audio), (f1 + ctx) * hop)
        seg = audio[a0:a1]
        if len(seg) == 0:
            seg = np.zeros(1, dtype=np.float32)
        elif scale is not None:
            seg = seg * scale
        feats = run(seg)  # (frames_in_seg, bins)
        first = f0 - a0 // hop
        piece = feats[first : first + (f1 - f0)]
        if len(piece) < f1 - f0:  # end of the signal: frames past it are silence
            pad = np.full((f1 - f0 - len(piece), config.n_bins), np.log(config.log_offset), np.float32)
            piece = np.concatenate([piece, pad])
        out[f0:f1] = piece
    return out
