"""Input level: a loudness statistic that does not care how loud the recording was made, and the
gain that brings a recording to a set level.

The statistic is the ``percentile``-th percentile of the 50 ms RMS levels (dBFS) of the *active*
frames: those within ``gate_db`` of the loudest 1 % of frames. It scales exactly with the signal
(multiply the audio by g and the level moves by 20 log10 g), so normalising to a target makes the
same recording at any gain the same samples up to float rounding. Silence in the recording (pauses,
a long tail) is gated out, and a few loud transients (under 1 % of the frames) move it little.

Why not ITU-R BS.1770 integrated loudness (pyloudnorm): its absolute gate at -70 LUFS is level
dependent by design, so a quiet recording (-40 dB) loses its soft passages to the gate and measures
differently from the same recording played loud, which is what this must not do.
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.05
# A recording whose loudest frames stay below this is silence and is left alone: +-1 LSB of 16-bit
# audio measures about -96 dBFS, and boosting such a file would turn its quantisation noise into notes.
SILENCE_DB = -90.0
MAX_GAIN_DB = 60.0


def frame_levels_db(audio: np.ndarray, *, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level in dBFS of consecutive frames of ``frame_s`` of mono ``audio`` ``(n_samples,)``.

    Returns ``(n_frames,)``; a signal shorter than one frame is one frame.
    """
    audio = np.asarray(audio, dtype=np.float32)
    hop = max(1, int(round(frame_s * sample_rate)))
    n = max(1, len(audio) // hop)
    energy = np.empty(n, dtype=np.float64)
    block = 4096  # frames per block: bounded memory on hour-long inputs
    for f0 in range(0, n, block):
        f1 = min(n, f0 + block)
        seg = audio[f0 * hop : f1 * hop]
        if len(seg) < (f1 - f0) * hop:  # shorter than one frame
            seg = np.pad(seg, (0, (f1 - f0) * hop - len(seg)))
        seg = seg.reshape(f1 - f0, hop).astype(np.float64)
        energy[f0:f1] = np.einsum("ij,ij->i", seg, seg) / hop
    return 10.0 * np.log10(np.maximum(energy, 1e-30))


def measure_level_db(
    audio: np.ndarray, *, sample_rate: int, percentile: float = 90.0, gate_db: float = 40.0, frame_s: float = FRAME_S
) -> float | None:
    """The recording's level in dBFS (see the module docstring), or ``None`` for silence."""
    levels = frame_levels_db(audio, sample_rate=sample_rate, frame_s=frame_s)
    top = float(np.percentile(levels, 99))
    if top < SILENCE_DB:
        return None
    active = levels[levels > top - gate_db]
    return float(np.percentile(active, percentile))


def level_gain_db(audio: np.ndarray, *, sample_rate: int, target_db: float, max_gain_db: float = MAX_GAIN_DB) -> float:
    """The gain in dB that brings ``audio`` to ``target_db`` (limited to +-``max_gain_db``; 0 for silence)."""
    level = measure_level_db(audio, sample_rate=sample_rate)
    if level is None:
        return 0.0
    return float(np.clip(target_db - level, -max_gain_db, max_gain_db))


def normalize_level(
    audio: np.ndarray, *, sample_rate: int, target_db: float, max_gain_db: float = MAX_GAIN_DB
) -> tuple[np.ndarray, float]:
    """``audio`` scaled so that :func:`measure_level_db` gives ``target_db``; returns ``(audio, gain_db)``.

    The gain is limited to +-``max_gain_db`` and silence is returned unchanged (gain 0). Samples may
    exceed +-1 afterwards: the CQT front end does not clip, so neither does this.
    """
    gain_db = level_gain_db(audio, sample_rate=sample_rate, target_db=target_db, max_gain_db=max_gain_db)
    scaled = np.asarray(audio, dtype=np.float32) * np.float32(10.0 ** (gain_db / 20.0))
    return scaled, gain_db
