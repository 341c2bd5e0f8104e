"""Audio augmentation for synthetic training data: reverb, EQ, low-pass, gain, additive noise.

Every draw comes from the ``rng`` passed in, and every step that is applied returns a record
(a JSON-ready dict with its parameters), so an item can be rebuilt from its seed and its manifest
line. Transposition happens before rendering, at the note level (see :func:`draw_transpose`),
so that labels move with the audio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.noise import NOISE_KINDS, mix_noise
from ..errors import BadInput

AUGMENT_PRESETS = ("none", "default")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (``*_p`` = probability per item)."""

    transpose_p: float = 0.5
    transpose_max: int = 3  # semitones, uniform in [-max, max] without 0
    gain_db: tuple[float, float] = (-12.0, 0.0)  # after peak normalisation to ``peak``
    peak: float = 0.9
    reverb_p: float = 0.5
    rt60_s: tuple[float, float] = (0.2, 1.5)
    drr_db: tuple[float, float] = (-3.0, 12.0)  # direct-to-reverberant energy ratio
    ir_dir: str | None = None  # folder of impulse responses (wav/flac) instead of synthetic ones
    ir_share: float = 1.0  # with ir_dir: share of reverbs that use one of its files (the rest synthetic)
    eq_p: float = 0.3
    eq_gain_db: float = 6.0  # peaking filters of +-eq_gain_db
    lowpass_p: float = 0.3
    lowpass_hz: tuple[float, float] = (2000.0, 7000.0)
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (10.0, 40.0)
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    codec_p: float = 0.0  # lossy codec round trip (MP3, Vorbis or Opus), last before the clip guard
    codec_level: tuple[float, float] = (0.3, 1.0)  # libsndfile compression level (1 = lowest bitrate)
    codecs: tuple[str, ...] = ("mp3", "vorbis", "opus")


# Fields added after datasets were first made: an older dataset.json without them was made with these values.
ADDED_DEFAULTS = {"ir_share": 1.0, "codec_p": 0.0, "codec_level": [0.3, 1.0], "codecs": ["mp3", "vorbis", "opus"]}

# codec name -> (libsndfile major format, subtype)
CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}


NO_AUGMENT = AugmentConfig(transpose_p=0.0, gain_db=(0.0, 0.0), reverb_p=0.0, eq_p=0.0, lowpass_p=0.0, noise_p=0.0)


def augment_preset(name: str) -> AugmentConfig:
    if name == "default":
        return AugmentConfig()
    if name == "none":
        return NO_AUGMENT
    raise BadInput(f"unknown --augment {name!r} (choose from {', '.join(AUGMENT_PRESETS)})")


def draw_transpose(config: AugmentConfig, rng: np.random.Generator) -> int:
    """Semitones to transpose a piece by (0 when not drawn). Always consumes the same draws."""
    apply = rng.random() < config.transpose_p
    steps = [s for s in range(-config.transpose_max, config.transpose_max + 1) if s != 0]
    k = int(rng.choice(steps)) if steps else 0
    return k if apply else 0


# ------------------------------------------------------------------------------ impulse responses


def synthetic_ir(*, rt60_s: float, drr_db: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """An exponentially decaying noise tail after a unit direct path at sample 0, shape ``(n,)``.

    The tail starts after a short pre-delay (2-10 ms) and falls by 60 dB in ``rt60_s``; its energy
    is ``drr_db`` below the direct path. High frequencies decay faster (a one-pole low-pass whose
    cut-off falls along the tail), as in real rooms.
    """
    n = int(rt60_s * sample_rate) + 1
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.907755 * t / rt60_s)  # 10^(-60/20) at rt60
    # damping: blend the tail with a smoothed copy, more so later on
    smooth = np.convolve(tail, np.ones(4) / 4, mode="same")
    w = np.clip(t / rt60_s, 0.0, 1.0)
    tail = (1 - w) * tail + w * smooth
    predelay = int(rng.uniform(0.002, 0.010) * sample_rate)
    tail[: predelay + 1] = 0.0
    energy = float(np.sum(tail**2)) or 1.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / energy)
    ir = tail
    ir[0] = 1.0
    return ir.astype(np.float32)


def load_ir(path: str | os.PathLike, *, sample_rate: int) -> np.ndarray:
    """A recorded impulse response, cut to start at its direct path (its peak) and scaled so it is 1."""
    from ..audio.io import load_audio

    ir = load_audio(path, sample_rate=sample_rate)
    if not len(ir) or not np.any(ir):
        raise BadInput(f"{path}: the impulse response is silent")
    k = int(np.argmax(np.abs(ir)))
    ir = ir[k:]
    return (ir / ir[0]).astype(np.float32)


def find_irs(ir_dir: str | os.PathLike) -> list[Path]:
    from ..audio.io import find_audio_files

    d = Path(ir_dir)
    if not d.is_dir():
        raise BadInput(f"--ir-dir {d}: no such folder")
    files = find_audio_files([d])
    if not files:
        raise BadInput(f"--ir-dir {d}: no audio files in it")
    return files


def use_ir_file(ir_seed: int, share: float) -> bool:
    """Whether a reverb takes a recorded IR (``share`` of the time), decided from the reverb's own seed.

    No draw from the item's stream, so the other augmentations of an item stay what they were.
    """
    return share >= 1.0 or (share > 0.0 and np.random.default_rng([ir_seed, 1]).random() < share)


def apply_codec(audio: np.ndarray, *, codec: str, level: float, sample_rate: int) -> np.ndarray:
    """A lossy encode/decode round trip in memory: ``codec`` in :data:`CODECS`, ``level`` 0-1 (1 = fewest bits).

    libsndfile (through soundfile, already a dependency) brings LAME, libvorbis and libopus and keeps the
    timing: the decoded audio is aligned with the input to the sample, padded or cut to its length.
    """
    import io

    import soundfile as sf

    fmt, subtype = CODECS[codec]
    x = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    buf = io.BytesIO()
    # LAME refuses a level of exactly 1; 0.999 is the same lowest bitrate
    sf.write(buf, x, sample_rate, format=fmt, subtype=subtype, compression_level=min(max(float(level), 0.0), 0.999))
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = out[: len(x)]
    if len(out) < len(x):
        out = np.pad(out, (0, len(x) - len(out)))
    return out.astype(np.float32)


def apply_ir(audio: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve and keep the input's length and timing (the IR's direct path is at sample 0)."""
    from scipy.signal import oaconvolve

    return oaconvolve(audio, ir, mode="full")[: len(audio)].astype(np.float32)


# ---------------------------------------------------------------------------------------- filters


def _peaking_sos(f0: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One peaking-EQ biquad (RBJ audio EQ cookbook) as an ``(1, 6)`` sos array."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f0 / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None]


def apply_eq(audio: np.ndarray, bands: list[tuple[float, float, float]], *, sample_rate: int) -> np.ndarray:
    """Peaking filters ``[(freq_hz, gain_db, q), ...]`` in series."""
    from scipy.signal import sosfilt

    if not bands:
        return audio
    sos = np.concatenate([_peaking_sos(f, g, q, sample_rate) for f, g, q in bands])
    return sosfilt(sos, audio).astype(np.float32)


def apply_lowpass(audio: np.ndarray, *, cutoff_hz: float, order: int, sample_rate: int) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    cutoff_hz = min(cutoff_hz, 0.45 * sample_rate)
    sos = butter(order, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return sosfilt(sos, audio).astype(np.float32)


# -------------------------------------------------------------------------------------- pipeline


def augment_audio(
    audio: np.ndarray,
    *,
    sample_rate: int,
    config: AugmentConfig,
    rng: np.random.Generator,
    irs: list[Path] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Reverb -> EQ -> low-pass -> peak normalisation and gain -> noise -> lossy codec -> clip guard.

    ``audio``: float32 ``(n_samples,)``; returns (augmented audio of the same shape, records).
    Every random draw happens whether or not its step is applied, so the draws of one step never
    depend on another step's outcome.
    """
    audio = np.asarray(audio, dtype=np.float32)
    records: list[dict] = []

    # reverb
    do = rng.random() < config.reverb_p
    rt60 = float(rng.uniform(*config.rt60_s))
    drr = float(rng.uniform(*config.drr_db))
    ir_seed = int(rng.integers(2**31))
    ir_index = int(rng.integers(len(irs))) if irs else -1
    if do:
        if irs and use_ir_file(ir_seed, config.ir_share):
            ir = load_ir(irs[ir_index], sample_rate=sample_rate)
            records.append({"name": "reverb", "ir": str(irs[ir_index])})
        else:
            ir = synthetic_ir(rt60_s=rt60, drr_db=drr, sample_rate=sample_rate, rng=np.random.default_rng(ir_seed))
            records.append(
                {
                    "name": "reverb",
                    "ir": "synthetic",
                    "rt60_s": round(rt60, 4),
                    "drr_db": round(drr, 3),
                    "ir_seed": ir_seed,
                }
            )
        audio = apply_ir(audio, ir)

    # EQ
    do = rng.random() < config.eq_p
    n_bands = int(rng.integers(1, 4))
    bands = [
        (
            float(np.exp(rng.uniform(np.log(80.0), np.log(0.4 * sample_rate)))),
            float(rng.uniform(-1, 1) * config.eq_gain_db),
            float(rng.uniform(0.5, 2.0)),
        )
        for _ in range(3)
    ][:n_bands]
    if do:
        audio = apply_eq(audio, bands, sample_rate=sample_rate)
        records.append({"name": "eq", "bands": [[round(f, 2), round(g, 3), round(q, 3)] for f, g, q in bands]})

    # low-pass
    do = rng.random() < config.lowpass_p
    cutoff = float(np.exp(rng.uniform(np.log(config.lowpass_hz[0]), np.log(config.lowpass_hz[1]))))
    order = int(rng.integers(2, 7))
    if do:
        audio = apply_lowpass(audio, cutoff_hz=cutoff, order=order, sample_rate=sample_rate)
        records.append({"name": "lowpass", "cutoff_hz": round(cutoff, 2), "order": order})

    # level: peak normalisation, then gain
    gain_db = float(rng.uniform(*config.gain_db))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * (config.peak / peak * 10.0 ** (gain_db / 20.0))
    if gain_db != 0.0:
        records.append({"name": "gain", "gain_db": round(gain_db, 3)})

    # noise
    do = rng.random() < config.noise_p
    snr = float(rng.uniform(*config.snr_db))
    kind = str(config.noise_kinds[int(rng.integers(len(config.noise_kinds)))])
    noise_seed = int(rng.integers(2**31))
    if do:
        audio = mix_noise(audio, snr_db=snr, kind=kind, rng=np.random.default_rng(noise_seed))
        records.append({"name": "noise", "kind": kind, "snr_db": round(snr, 3), "noise_seed": noise_seed})

    # lossy codec (its draws exist only when it is on, so datasets made without it keep their items)
    if config.codec_p > 0:
        do = rng.random() < config.codec_p
        codec = str(config.codecs[int(rng.integers(len(config.codecs)))])
        level = float(rng.uniform(*config.codec_level))
        if do:
            audio = apply_codec(audio, codec=codec, level=level, sample_rate=sample_rate)
            records.append({"name": "codec", "codec": codec, "level": round(level, 3)})

    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
        records.append({"name": "limit", "scale": round(1.0 / peak, 5)})
    return audio.astype(np.float32), records


__all__ = [
    "AugmentConfig",
    "NO_AUGMENT",
    "AUGMENT_PRESETS",
    "augment_preset",
    "draw_transpose",
    "augment_audio",
    "synthetic_ir",
    "load_ir",
    "find_irs",
    "apply_ir",
    "apply_eq",
    "apply_lowpass",
    "apply_codec",
    "CODECS",
    "use_ir_file",
    "ADDED_DEFAULTS",
]
