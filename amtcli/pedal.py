"""The sustain pedal: reading it from MIDI, and inferring it from the sounding notes of a transcription.

No bundled model has a pedal head, so :func:`infer_pedal` is an inference from note *releases*, not
a measurement of the pedal: it sees only when notes stop sounding. What it relies on: when the
pedal comes up, every note it was holding stops at once, so several notes that started at different
times end together; and a pianist presses the pedal again just after the new harmony is struck.
So a pedal release is placed where at least ``min_notes`` notes with at least two different onsets
end within ``tolerance_s`` of each other, and the press before it ``repress_s`` after the previous
release or ``press_lag_s`` after the first onset of the notes it holds, whichever is later (the
defaults were chosen on validation-split ASAP pieces, ``benchmarks/pedal_eval.py --tune``).
Notes that end at a pedal release get a key release estimated as their next onset of any other
note (the finger moved on), but never before the pedal went down: played back with the pedal, they
sound as transcribed.

What it cannot see: a pedal held over notes that end for other reasons (decay), half-pedalling,
the una corda and sostenuto pedals, and a release with only one note sounding. Measured on 16
held-out ASAP performances (60 s each, +-100 ms, ``benchmarks/pedal_eval.py``): from the true
sounding notes, press F1 0.43 and release F1 0.62; from the bundled model's transcription of the
same notes rendered with a soundfont it never heard, press F1 0.29 and release F1 0.45. Treat the
CC64 it writes as a starting point to edit, not as the pianist's pedalling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .notes import NoteArray, _pedal_intervals


@dataclass(frozen=True)
class PedalConfig:
    """Parameters of :func:`infer_pedal` (chosen on validation pieces by ``benchmarks/pedal_eval.py --tune``)."""

    tolerance_s: float = 0.08  # offsets this close count as one release
    min_notes: int = 3  # notes that must end together (with at least two different onsets)
    repress_s: float = 0.1  # the pedal goes down again this long after a release at the earliest
    press_lag_s: float = 0.1  # ... and this long after the first onset of the notes it will hold
    max_hold_s: float = 12.0  # no single press is inferred to last longer


def read_pedal(midi) -> np.ndarray:
    """Sustain-pedal intervals ``(n, 2)`` (down, up) in s of a MIDI file path or ``pretty_midi.PrettyMIDI``:
    CC64 >= 64 is down. The first pitched instrument that has any CC64 is used."""
    from .notes import load_pretty_midi

    pm = load_pretty_midi(midi) if isinstance(midi, (str, os.PathLike)) else midi
    end = pm.get_end_time()
    for inst in pm.instruments:
        if inst.is_drum or not any(c.number == 64 for c in inst.control_changes):
            continue
        iv = _pedal_intervals(inst.control_changes, end)
        return np.array(iv, dtype=np.float64).reshape(-1, 2)
    return np.zeros((0, 2))


def _release_clusters(
    offsets: np.ndarray, onsets: np.ndarray, *, tolerance_s: float, min_notes: int
) -> list[np.ndarray]:
    """Groups of note indices ``[(k,), ...]`` whose offsets lie within ``tolerance_s`` of the group's
    first offset, with at least ``min_notes`` notes and two distinct onsets (1 frame apart)."""
    order = np.argsort(offsets, kind="stable")
    groups, i = [], 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and offsets[order[j + 1]] - offsets[order[i]] <= tolerance_s:
            j += 1
        g = order[i : j + 1]
        if len(g) >= min_notes and np.ptp(onsets[g]) > 0.03:
            groups.append(g)
        i = j + 1
    return groups


def infer_pedal(notes: NoteArray, *, config: PedalConfig = PedalConfig()) -> tuple[np.ndarray, NoteArray]:
    """Sustain-pedal intervals ``(n, 2)`` in s and the notes with estimated key releases.

    ``notes`` are *sounding* notes (a transcription); their ``offset_s`` is unchanged, and their
    ``release_s`` becomes the estimated key release (equal to ``offset_s`` for notes the pedal
    does not hold). See the module docstring for what is inferred and how.
    """
    notes = notes.sorted()
    n = len(notes)
    if n == 0:
        return np.zeros((0, 2)), notes
    on, off = notes.onset_s, notes.offset_s
    groups = _release_clusters(off, on, tolerance_s=config.tolerance_s, min_notes=config.min_notes)
    intervals: list[tuple[float, float]] = []
    held: list[np.ndarray] = []
    last_up = -np.inf
    for g in groups:
        up = float(np.median(off[g]))
        first = float(on[g].min())
        down = max(first + config.press_lag_s, last_up + config.repress_s, up - config.max_hold_s)
        if down >= up - 0.02:
            continue
        intervals.append((down, up))
        held.append(g)
        last_up = up
    release = off.copy()
    onsets_sorted = np.unique(on)
    for (down, _up), g in zip(intervals, held):
        for k in g:
            if off[k] < down:
                continue
            j = np.searchsorted(onsets_sorted, on[k] + 1e-3, side="left")
            nxt = onsets_sorted[j] if j < len(onsets_sorted) else off[k]
            # the key must still be down when the pedal goes down, or the note would stop there
            earliest = max(down + 0.01, on[k] + 0.01) if on[k] < down else on[k] + 0.01
            release[k] = float(np.clip(nxt, earliest, off[k]))
    pedal = np.array(intervals, dtype=np.float64).reshape(-1, 2)
    out = NoteArray(on, off, notes.pitch, notes.velocity, notes.program, notes.confidence, np.minimum(release, off))
    return pedal, out


def pedal_scores(reference: np.ndarray, estimate: np.ndarray, *, window_s: float = 0.1) -> dict[str, float]:
    """Pedal onset and offset precision / recall / F1 (mir_eval.onset matching within ``window_s``)
    between two interval arrays ``(n, 2)``; ``n_ref`` and ``n_est`` too."""
    import mir_eval

    out = {"n_ref": float(len(reference)), "n_est": float(len(estimate))}
    for name, col in (("onset", 0), ("offset", 1)):
        ref = np.sort(np.asarray(reference, dtype=np.float64).reshape(-1, 2)[:, col])
        est = np.sort(np.asarray(estimate, dtype=np.float64).reshape(-1, 2)[:, col])
        if len(ref) == 0 or len(est) == 0:
            f = p = r = 0.0
        else:
            f, p, r = mir_eval.onset.f_measure(ref, est, window=window_s)
        out[f"{name}_f1"], out[f"{name}_precision"], out[f"{name}_recall"] = float(f), float(p), float(r)
    return out
