"""Frames -> notes, in pure numpy (no torch, no I/O, no model knowledge).

Posteriors are arrays of shape ``(n_frames, n_keys)`` with probabilities in [0, 1]; frame ``i``
stands for time ``i / frame_rate``.
"""

from __future__ import annotations

import numpy as np

from ..config import MIDI_MIN, DecodeConfig
from ..notes import NoteArray


def _runs_start(mask: np.ndarray) -> np.ndarray:
    """Indices where a run of True values begins, per column: bool ``(n_frames, n_keys)``."""
    prev = np.zeros_like(mask)
    prev[1:] = mask[:-1]
    return mask & ~prev


def decode_frames(
    onset: np.ndarray,
    frame: np.ndarray,
    *,
    offset: np.ndarray | None = None,
    velocity: np.ndarray | None = None,
    frame_rate: float,
    config: DecodeConfig = DecodeConfig(),
    fmin_midi: int = MIDI_MIN,
) -> NoteArray:
    """Onset-driven decoding (as in Onsets and Frames).

    A note starts where a run of onset probabilities above ``onset_threshold`` begins and lasts
    while the frame (or onset) probability stays above its threshold. With ``config.use_offset``
    an offset peak above ``offset_threshold`` ends it early; a new onset on the same key ends it
    too (a restrike). Velocity is the mean velocity posterior over the onset run, scaled to 1..127.
    Notes shorter than ``min_note_s`` are dropped. Each note's ``confidence`` is the highest onset
    probability of its onset run. Returns a sorted :class:`NoteArray`.
    """
    onset = np.asarray(onset, dtype=np.float32)
    frame = np.asarray(frame, dtype=np.float32)
    if onset.shape != frame.shape or onset.ndim != 2:
        raise ValueError(f"onset {onset.shape} and frame {frame.shape} must both be (n_frames, n_keys)")
    n_frames, n_keys = onset.shape
    on_mask = onset >= config.onset_threshold
    sustain = (frame >= config.frame_threshold) | on_mask
    starts = _runs_start(on_mask)
    off_mask = None
    if offset is not None and config.use_offset:
        off_mask = np.asarray(offset) >= config.offset_threshold

    rows: list[tuple[float, float, int, int, float]] = []
    min_frames = config.min_note_s * frame_rate
    for key in np.nonzero(starts.any(axis=0))[0]:
        key_starts = np.nonzero(starts[:, key])[0]
        sus = sustain[:, key]
        # the first frame at or after t where the key stops sounding
        not_sus = np.nonzero(~sus)[0]
        off_frames = np.nonzero(off_mask[:, key])[0] if off_mask is not None else np.zeros(0, np.int64)
        for i, t0 in enumerate(key_starts):
            # end of the onset run: the note lasts at least that long
            run_end = t0
            while run_end + 1 < n_frames and on_mask[run_end + 1, key]:
                run_end += 1
            j = np.searchsorted(not_sus, run_end + 1)
            end = not_sus[j] if j < len(not_sus) else n_frames
            if len(off_frames):
                k = np.searchsorted(off_frames, run_end + 1)
                if k < len(off_frames) and off_frames[k] < end:
                    end = off_frames[k]
            if i + 1 < len(key_starts):
                end = min(end, key_starts[i + 1])
            if end - t0 < min_frames:
                continue
            vel = 0.5 if velocity is None else float(np.mean(velocity[t0 : run_end + 1, key]))
            conf = float(np.max(onset[t0 : run_end + 1, key]))
            rows.append(
                (t0 / frame_rate, end / frame_rate, int(key) + fmin_midi, int(np.clip(round(vel * 127), 1, 127)), conf)
            )
    if not rows:
        return NoteArray.empty()
    a = np.array(rows, dtype=np.float64)
    return NoteArray(a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.zeros(len(a)), confidence=a[:, 4]).sorted()


def decode_posteriors(posteriors: dict[str, np.ndarray], *, feature_config, config: DecodeConfig) -> NoteArray:
    """:func:`decode_frames` on a transcriber's posteriors ``{onset, frame[, offset, velocity]}``, at the
    frame rate and lowest key of ``feature_config`` (the model's front end)."""
    return decode_frames(
        posteriors["onset"],
        posteriors["frame"],
        offset=posteriors.get("offset"),
        velocity=posteriors.get("velocity"),
        frame_rate=feature_config.frame_rate,
        config=config,
        fmin_midi=feature_config.fmin_midi,
    )


def explain_decoding(
    config: DecodeConfig, *, model_default: DecodeConfig | None = None, tokens_model: bool = False
) -> list[tuple[str, str, str, str]]:
    """The decoding settings in use, for a person: ``[(flag, value, source, meaning), ...]``.

    ``source`` says whether the value is the model's (``model_default``) or was set; ``meaning`` is
    :data:`amtcli.config.DECODE_HELP`. A token model writes notes itself, so its thresholds are
    shown as not used; so is the offset threshold when ``use_offset`` is off.
    """
    from ..config import DECODE_HELP

    rows = []
    for name, meaning in DECODE_HELP.items():
        value = getattr(config, name)
        text = f"{value:g} s" if name == "min_note_s" else f"{value:g}"
        if model_default is None:
            source = ""
        else:
            source = (
                "model's"
                if getattr(model_default, name) == value
                else f"set (model's: {getattr(model_default, name):g})"
            )
        if name != "min_note_s" and tokens_model:
            text, source = "not used", "token model"
        elif name == "offset_threshold" and not config.use_offset:
            text, source = "not used", "this model's decoding has no offset step"
        rows.append(("--" + name.replace("_", "-"), text, source, meaning))
    return rows
