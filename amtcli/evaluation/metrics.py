"""Transcription metrics with the field's standard settings, on mir_eval.

- ``frame``: multi-pitch P/R/F1 on a 10 ms grid (both note sets sampled at 100 Hz, a pitch is
  active at time t when onset <= t < offset; as ``mir_eval.multipitch`` with exact MIDI pitches).
- ``note``: onset within 50 ms and pitch within 50 cents, offsets ignored
  (``mir_eval.transcription.match_notes(offset_ratio=None)``).
- ``note_offset``: also offset within 20 % of the reference duration, at least 50 ms.
- ``note_offset_velocity``: also velocity within 0.1 after mir_eval's linear rescaling
  (``mir_eval.transcription_velocity.match_notes``); only where the reference has velocities.

Every metric is kept as counts (true positives, reference and estimate sizes) so files can be
pooled: *micro* sums the counts over files (for notes, matched pairs over all notes), *macro*
averages per-file scores. Empty sets are decided here, never passed to mir_eval: with no
estimates precision is 1 if there is no reference either, else 0; recall likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..notes import NoteArray

FRAME_RATE = 100.0  # Hz: the 10 ms grid
ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_CENTS = 50.0
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE_S = 0.05
VELOCITY_TOLERANCE = 0.1
MIN_DURATION_S = 1e-3  # zero-length notes are lengthened to this before mir_eval (it refuses them)

METRICS = ("frame", "note", "note_offset", "note_offset_velocity")
METRIC_LABELS = {
    "frame": "Frame",
    "note": "Note",
    "note_offset": "Note+Off",
    "note_offset_velocity": "Note+Off+Vel",
}
SETTINGS = {
    "frame_rate_hz": FRAME_RATE,
    "onset_tolerance_s": ONSET_TOLERANCE_S,
    "pitch_tolerance_cents": PITCH_TOLERANCE_CENTS,
    "offset_ratio": OFFSET_RATIO,
    "offset_min_tolerance_s": OFFSET_MIN_TOLERANCE_S,
    "velocity_tolerance": VELOCITY_TOLERANCE,
}


@dataclass(frozen=True)
class Counts:
    """``tp`` matches out of ``n_ref`` reference and ``n_est`` estimated notes (or active frame-pitches)."""

    tp: int
    n_ref: int
    n_est: int

    @property
    def fp(self) -> int:
        return self.n_est - self.tp

    @property
    def fn(self) -> int:
        return self.n_ref - self.tp

    @property
    def precision(self) -> float:
        if self.n_est == 0:
            return 1.0 if self.n_ref == 0 else 0.0
        return self.tp / self.n_est

    @property
    def recall(self) -> float:
        if self.n_ref == 0:
            return 1.0 if self.n_est == 0 else 0.0
        return self.tp / self.n_ref

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.n_ref + other.n_ref, self.n_est + other.n_est)

    def scores(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


# ------------------------------------------------------------------------------------ frames


def notes_to_frame_sets(notes: NoteArray, *, n_frames: int, frame_rate: float = FRAME_RATE) -> np.ndarray:
    """Bool ``(n_frames, 128)``: pitch p sounds at time ``i / frame_rate`` (onset <= t < offset)."""
    roll = np.zeros((n_frames, 128), dtype=bool)
    for on, off, p in zip(notes.onset_s, notes.offset_s, notes.pitch):
        if not 0 <= p < 128:
            continue
        a = max(0, int(math.ceil(on * frame_rate - 1e-9)))
        b = min(n_frames, int(math.ceil(off * frame_rate - 1e-9)))
        if b > a:
            roll[a:b, p] = True
    return roll


def frame_counts(reference: NoteArray, estimate: NoteArray, *, frame_rate: float = FRAME_RATE) -> Counts:
    """Frame-level counts on a ``1 / frame_rate`` grid over the longer of the two note sets.

    Equal to mir_eval.multipitch's counts for the same frames (pitches are whole MIDI numbers, so
    the 50-cent tolerance is an exact match).
    """
    end = max(reference.end_s, estimate.end_s)
    n_frames = int(math.ceil(end * frame_rate)) + 1 if end > 0 else 0
    ref = notes_to_frame_sets(reference, n_frames=n_frames, frame_rate=frame_rate)
    est = notes_to_frame_sets(estimate, n_frames=n_frames, frame_rate=frame_rate)
    return Counts(int(np.sum(ref & est)), int(ref.sum()), int(est.sum()))


# ------------------------------------------------------------------------------------- notes


def _mir_eval_notes(notes: NoteArray) -> tuple[np.ndarray, np.ndarray]:
    notes = notes[notes.program >= 0] if len(notes) else notes
    intervals, hz = notes.to_mir_eval()
    if len(intervals):
        intervals = intervals.copy()
        intervals[:, 0] = np.maximum(intervals[:, 0], 0.0)
        intervals[:, 1] = np.maximum(intervals[:, 1], intervals[:, 0] + MIN_DURATION_S)
    return intervals, hz


def onset_matches(reference: NoteArray, estimate: NoteArray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs the ``note`` score counts (mir_eval's onset-only matching, offsets ignored), as
    indices ``(into the reference's pitched notes (k,), into the estimate's (k,))``."""
    import mir_eval.transcription

    ref_iv, ref_hz = _mir_eval_notes(reference)
    est_iv, est_hz = _mir_eval_notes(estimate)
    if len(ref_iv) == 0 or len(est_iv) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = mir_eval.transcription.match_notes(
        ref_iv,
        ref_hz,
        est_iv,
        est_hz,
        onset_tolerance=ONSET_TOLERANCE_S,
        pitch_tolerance=PITCH_TOLERANCE_CENTS,
        offset_ratio=None,
    )
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def note_counts(reference: NoteArray, estimate: NoteArray, *, with_velocity: bool = True) -> dict[str, Counts | None]:
    """``note``, ``note_offset`` and ``note_offset_velocity`` counts (the last None without velocity)."""
    import mir_eval.transcription
    import mir_eval.transcription_velocity

    ref_iv, ref_hz = _mir_eval_notes(reference)
    est_iv, est_hz = _mir_eval_notes(estimate)
    n_ref, n_est = len(ref_iv), len(est_iv)
    out: dict[str, Counts | None] = {}
    if n_ref == 0 or n_est == 0:  # nothing to match; mir_eval would only warn
        for name in ("note", "note_offset", "note_offset_velocity"):
            out[name] = Counts(0, n_ref, n_est)
        if not with_velocity:
            out["note_offset_velocity"] = None
        return out
    mir_eval.transcription.validate(ref_iv, ref_hz, est_iv, est_hz)
    common = dict(onset_tolerance=ONSET_TOLERANCE_S, pitch_tolerance=PITCH_TOLERANCE_CENTS)
    onset = mir_eval.transcription.match_notes(ref_iv, ref_hz, est_iv, est_hz, offset_ratio=None, **common)
    offset = mir_eval.transcription.match_notes(
        ref_iv, ref_hz, est_iv, est_hz, offset_ratio=OFFSET_RATIO, offset_min_tolerance=OFFSET_MIN_TOLERANCE_S, **common
    )
    out["note"] = Counts(len(onset), n_ref, n_est)
    out["note_offset"] = Counts(len(offset), n_ref, n_est)
    if with_velocity:
        ref_sel = reference[reference.program >= 0]
        est_sel = estimate[estimate.program >= 0]
        vel = mir_eval.transcription_velocity.match_notes(
            ref_iv,
            ref_hz,
            ref_sel.velocity.astype(np.float64),
            est_iv,
            est_hz,
            est_sel.velocity.astype(np.float64),
            offset_ratio=OFFSET_RATIO,
            offset_min_tolerance=OFFSET_MIN_TOLERANCE_S,
            velocity_tolerance=VELOCITY_TOLERANCE,
            **common,
        )
        out["note_offset_velocity"] = Counts(len(vel), n_ref, n_est)
    else:
        out["note_offset_velocity"] = None
    return out


def score_notes(reference: NoteArray, estimate: NoteArray, *, with_velocity: bool = True) -> dict[str, Counts | None]:
    """All metrics of one file, as :class:`Counts` keyed by :data:`METRICS` (drum notes ignored).

    ``with_velocity=False`` when the reference has no velocities: ``note_offset_velocity`` is None.
    """
    reference = reference.pitched()
    estimate = estimate.pitched()
    out: dict[str, Counts | None] = {"frame": frame_counts(reference, estimate)}
    out.update(note_counts(reference, estimate, with_velocity=with_velocity))
    return out


# ---------------------------------------------------------------------------------- pooling


def aggregate(per_file: list[dict[str, Counts | None]]) -> dict[str, dict[str, dict[str, float] | None]]:
    """``{"micro": {metric: {precision, recall, f1}}, "macro": {...}}`` over files.

    Micro pools the counts of all files; macro is the mean of per-file scores. A metric missing
    (None) in some files is pooled over the others; missing everywhere gives None.
    """
    micro: dict[str, dict[str, float] | None] = {}
    macro: dict[str, dict[str, float] | None] = {}
    for metric in METRICS:
        got = [f[metric] for f in per_file if f.get(metric) is not None]
        if not got:
            micro[metric] = macro[metric] = None
            continue
        total = got[0]
        for c in got[1:]:
            total = total + c
        micro[metric] = {**total.scores(), "tp": total.tp, "n_ref": total.n_ref, "n_est": total.n_est}
        macro[metric] = {k: float(np.mean([getattr(c, k) for c in got])) for k in ("precision", "recall", "f1")}
        macro[metric]["n_files"] = len(got)
    return {"micro": micro, "macro": macro}
