"""Coloured noise, recorded noise, and mixing at a signal-to-noise ratio (augmentation, robustness
sweeps, noise training).

A noise ``kind`` is a colour (``NOISE_KINDS``) or, where :func:`check_noise` allows it (robustness
sweeps), the path of a noise recording: an excerpt of it at a random place (looped when the
recording is shorter than the audio) stands in for the generated noise.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import BadInput

NOISE_KINDS = ("white", "pink", "brown")
MIN_NOISE_S = 0.5  # a noise recording shorter than this is refused (a click, not a noise floor)


def check_noise(kind: str, *, sample_rate: int = 16000) -> str:
    """A colour name as is, or a noise recording's resolved path once it has been read (so a bad
    file fails before any work). Raises :class:`BadInput` in one line otherwise."""
    if kind in NOISE_KINDS:
        return kind
    path = Path(kind).expanduser()
    if not path.is_file():
        raise BadInput(f"unknown noise {kind!r}: give white, pink, brown, or an audio file of noise")
    resolved = str(path.resolve())
    _noise_recording(resolved, sample_rate)
    return resolved


def noise_label(kind: str) -> str:
    """How a noise is named in tables and plots: the colour, or the recording's file name."""
    return kind if kind in NOISE_KINDS else Path(kind).name


@lru_cache(maxsize=4)
def _noise_recording(path: str, sample_rate: int) -> np.ndarray:
    from .io import load_audio

    audio = load_audio(path, sample_rate=sample_rate)
    if len(audio) < MIN_NOISE_S * sample_rate:
        raise BadInput(f"noise recording {path}: {len(audio) / sample_rate:.2f} s long; give at least {MIN_NOISE_S} s")
    if not np.any(audio):
        raise BadInput(f"noise recording {path}: digital silence, nothing to mix in")
    audio.setflags(write=False)
    return audio


def recorded_noise(n_samples: int, *, path: str, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise ``(n_samples,)`` cut from the recording at ``path`` at a place ``rng`` draws
    (the recording looped from that place when it is shorter than ``n_samples``)."""
    rec = _noise_recording(str(Path(path).resolve()), sample_rate)
    start = int(rng.integers(0, len(rec)))
    reps = -(-(start + n_samples) // len(rec))
    out = np.tile(rec, reps)[start : start + n_samples].astype(np.float64)
    rms = np.sqrt(np.mean(out**2)) if n_samples else 0.0
    if rms == 0.0:  # a silent stretch of the recording: scale by the whole recording's level
        rms = float(np.sqrt(np.mean(rec.astype(np.float64) ** 2)))
    return (out / rms).astype(np.float32)


def make_noise(
    n_samples: int, *, kind: str = "white", rng: np.random.Generator, sample_rate: int = 16000
) -> np.ndarray:
    """Unit-RMS noise of shape ``(n_samples,)``: white (flat), pink (1/f power), brown (1/f^2 power),
    or an excerpt of the noise recording whose path ``kind`` is (read at ``sample_rate``)."""
    if n_samples <= 0:
        return np.zeros(0, np.float32)
    if kind not in NOISE_KINDS:
        if Path(kind).is_file():
            return recorded_noise(n_samples, path=kind, sample_rate=sample_rate, rng=rng)
        raise BadInput(f"unknown noise kind {kind!r} (choose from {', '.join(NOISE_KINDS)})")
    white = rng.standard_normal(n_samples)
    if kind != "white":
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= f ** (0.5 if kind == "pink" else 1.0)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n=n_samples)
    rms = np.sqrt(np.mean(white**2)) or 1.0
    return (white / rms).astype(np.float32)


def mix_noise(
    audio: np.ndarray, *, snr_db: float, kind: str = "white", rng: np.random.Generator, sample_rate: int = 16000
) -> np.ndarray:
    """``audio`` plus noise scaled so that signal power / noise power = ``snr_db`` (shape kept);
    ``kind`` as for :func:`make_noise` (``sample_rate``: the rate of ``audio``, for a noise recording).

    Silent audio is returned unchanged (an SNR is undefined there).
    """
    audio = np.asarray(audio, dtype=np.float32)
    power = float(np.mean(audio.astype(np.float64) ** 2)) if audio.size else 0.0
    if power <= 0.0:
        return audio.copy()
    noise = make_noise(len(audio), kind=kind, rng=rng, sample_rate=sample_rate)
    scale = np.sqrt(power / (10.0 ** (snr_db / 10.0)))
    return (audio + scale * noise).astype(np.float32)
