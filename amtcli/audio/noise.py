"""Coloured noise and mixing at a signal-to-noise ratio (augmentation, robustness sweeps, noise training)."""

from __future__ import annotations

import numpy as np

from ..errors import BadInput

NOISE_KINDS = ("white", "pink", "brown")


def make_noise(n_samples: int, *, kind: str = "white", rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of shape ``(n_samples,)``: white (flat), pink (1/f power), brown (1/f^2 power)."""
    if kind not in NOISE_KINDS:
        raise BadInput(f"unknown noise kind {kind!r} (choose from {', '.join(NOISE_KINDS)})")
    if n_samples <= 0:
        return np.zeros(0, np.float32)
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


def mix_noise(audio: np.ndarray, *, snr_db: float, kind: str = "white", rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus noise scaled so that signal power / noise power = ``snr_db`` (shape kept).

    Silent audio is returned unchanged (an SNR is undefined there).
    """
    audio = np.asarray(audio, dtype=np.float32)
    power = float(np.mean(audio.astype(np.float64) ** 2)) if audio.size else 0.0
    if power <= 0.0:
        return audio.copy()
    noise = make_noise(len(audio), kind=kind, rng=rng)
    scale = np.sqrt(power / (10.0 ** (snr_db / 10.0)))
    return (audio + scale * noise).astype(np.float32)
