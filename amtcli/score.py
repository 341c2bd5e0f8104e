"""Notes -> a score: key estimate, hands, voices, and MusicXML through music21.

music21 (BSD-3, maintained at MIT since 2008) writes the MusicXML: it cuts the notes into measures,
ties notes over bar lines, and MuseScore, Finale and Dorico read its files. Everything music21
cannot know is decided here, in functions that can be called on their own: the key
(:func:`estimate_key`), which hand plays each note (:func:`split_hands`), the grid the notes sit on
(:func:`amtcli.rhythm.quantize_positions`) and the voices of each staff (:func:`assign_voices`).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import MissingDependency
from .notes import NoteArray
from .rhythm import BeatGrid, quantize_positions

# Krumhansl-Kessler key profiles (probe-tone ratings), C major / C minor
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")
# sharps (+) or flats (-) of the major key on each pitch class (the simpler spelling where there are two)
_MAJOR_SHARPS = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5)


def estimate_key(notes: NoteArray) -> tuple[int, str]:
    """``(tonic pitch class 0-11, "major" | "minor")`` by Krumhansl-Schmuckler: the correlation of
    the duration-weighted pitch-class histogram with the 24 rotated key profiles. C major when empty."""
    if not len(notes):
        return 0, "major"
    hist = np.zeros(12)
    np.add.at(hist, notes.pitch % 12, np.maximum(notes.offset_s - notes.onset_s, 1e-3))
    if not hist.any() or np.ptp(hist) == 0:
        return 0, "major"
    best = (-np.inf, 0, "major")
    for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
        for tonic in range(12):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1]
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def key_sharps(tonic: int, mode: str) -> int:
    """Sharps (> 0) or flats (< 0) of the key signature: (9, "minor") -> 0, (3, "major") -> -3."""
    relative_major = (tonic + 3) % 12 if mode == "minor" else tonic % 12
    return _MAJOR_SHARPS[relative_major]


def spell(pitch: int, sharps: int) -> str:
    """A MIDI number as a music21 pitch name, with sharps in sharp keys and flats in flat keys: 61 -> C#4 / D-4."""
    names = _FLAT_NAMES if sharps < 0 else _SHARP_NAMES
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def split_hands(notes: NoteArray, *, onset_beats: np.ndarray | None = None, max_span: int = 14) -> np.ndarray:
    """Which notes the right hand plays: bool ``(n,)`` for ``notes`` sorted by onset.

    Notes that start together (same ``onset_beats``, default: same ``onset_s``) are cut at one
    pitch: everything above goes to the right hand, below to the left. The cut is the one that keeps
    each note nearest its hand's recent position (each hand's mean pitch, smoothed over time;
    they start at G4 and C3) with a penalty when a hand would span more than ``max_span`` semitones.
    """
    n = len(notes)
    right = np.zeros(n, bool)
    if n == 0:
        return right
    keys = np.asarray(onset_beats if onset_beats is not None else notes.onset_s, dtype=np.float64)
    centre = {True: 67.0, False: 48.0}
    order = np.lexsort((notes.pitch, keys))
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(keys[order[j + 1]] - keys[order[i]]) < 1e-6:
            j += 1
        idx = order[i : j + 1]  # sorted by pitch
        p = notes.pitch[idx].astype(np.float64)
        best = (np.inf, 0)
        for cut in range(len(p) + 1):  # p[:cut] left, p[cut:] right
            lo, hi = p[:cut], p[cut:]
            cost = np.abs(lo - centre[False]).sum() + np.abs(hi - centre[True]).sum()
            for part in (lo, hi):
                if len(part) and np.ptp(part) > max_span:
                    cost += 12.0 * (np.ptp(part) - max_span)
            if cost < best[0]:
                best = (cost, cut)
        cut = best[1]
        right[idx[cut:]] = True
        if cut:
            centre[False] = 0.7 * centre[False] + 0.3 * p[:cut].mean()
        if cut < len(p):
            centre[True] = 0.7 * centre[True] + 0.3 * p[cut:].mean()
        centre[True] = max(centre[True], centre[False] + 5)
        i = j + 1
    return right


def assign_voices(
    onsets: list[Fraction], offsets: list[Fraction], *, max_voices: int = 3
) -> tuple[list[int], list[Fraction]]:
    """Voices for the chords of one staff, given in onset order: ``(voice of each chord, offsets)``.

    A chord goes to the first voice that is free at its onset; with all ``max_voices`` busy, it goes
    to the voice that frees first, whose last chord is cut short to end at this onset (so the
    returned offsets may be earlier than the ones given).
    """
    ends: list[Fraction] = []
    last: list[int] = []
    voice, offs = [], list(offsets)
    for k, (on, off) in enumerate(zip(onsets, offsets)):
        v = next((i for i, e in enumerate(ends) if e <= on), None)
        if v is None and len(ends) < max_voices:
            ends.append(Fraction(0))
            last.append(-1)
            v = len(ends) - 1
        if v is None:
            v = int(np.argmin(ends))
            offs[last[v]] = on
        voice.append(v)
        ends[v] = off
        last[v] = k
    return voice, offs


def _staff_elements(rows, *, sharps: int, total: Fraction, max_voices: int):
    """One staff: ``rows`` [(onset, offset, pitch), ...] in quarter notes -> music21 Voices (rests filled)."""
    from music21 import chord, note, stream

    chords: dict[tuple[Fraction, Fraction], list[int]] = {}
    for on, off, p in rows:
        chords.setdefault((on, off), []).append(p)
    items = sorted(chords.items(), key=lambda kv: (kv[0][0], -max(kv[1])))
    voice_of, offs = assign_voices([k[0] for k, _ in items], [k[1] for k, _ in items], max_voices=max_voices)
    n_voices = max(voice_of) + 1 if voice_of else 1
    voices = [stream.Voice(id=str(v + 1)) for v in range(n_voices)]
    cursor = [Fraction(0)] * n_voices

    def rest(v: int, start: Fraction, length: Fraction):
        r = note.Rest(quarterLength=length)
        if v > 0:
            r.style.hideObjectOnPrint = True
        voices[v].insert(float(start), r)

    for ((on, _), pitches), v, off in zip(items, voice_of, offs):
        if off <= on:
            continue
        if on > cursor[v]:
            rest(v, cursor[v], on - cursor[v])
        names = [spell(int(p), sharps) for p in sorted(set(pitches))]
        el = note.Note(names[0]) if len(names) == 1 else chord.Chord(names)
        el.quarterLength = off - on
        voices[v].insert(float(on), el)
        cursor[v] = off
    for v in range(n_voices):
        if cursor[v] < total:
            rest(v, cursor[v], total - cursor[v])
    return voices


def notes_to_score(
    notes: NoteArray,
    grid: BeatGrid,
    *,
    steps: tuple[int, ...] = (4,),
    key: tuple[int, str] | None = None,
    two_staves: bool = True,
    title: str | None = None,
    max_voices: int = 3,
):
    """A ``music21.stream.Score`` of ``notes`` on ``grid``: time signature and bars from the grid,
    note values quantized to ``steps`` per beat, key signature from ``key`` (default:
    :func:`estimate_key`), a tempo mark of the grid's median tempo, and for a piano two staves
    joined by a brace (:func:`split_hands`) or one (``two_staves=False``). Drum notes are left out.
    Leading bars without notes are dropped."""
    try:
        from music21 import clef, instrument, layout, metadata, meter, stream, tempo
        from music21 import key as m21key
    except ImportError:  # pragma: no cover - music21 is a dependency
        raise MissingDependency("MusicXML output needs music21: pip install music21") from None

    notes = notes.pitched().sorted()
    m = grid.beats_per_bar
    tonic, mode = key if key is not None else estimate_key(notes)
    sharps = key_sharps(tonic, mode)
    # beat positions from 0 s (the MIDI file's quarter notes), on the grid
    lead = grid.lead_in_beats()
    on_b = grid.to_beats(notes.onset_s) + lead
    off_b = grid.to_beats(notes.offset_s) + lead
    q_on, q_off, _, _ = quantize_positions(np.maximum(on_b, 0.0), np.maximum(off_b, 0.0), steps=steps)
    lcm = int(np.lcm.reduce(np.asarray(steps, dtype=np.int64)))
    on_f = [Fraction(int(round(a * lcm)), lcm) for a in q_on]
    off_f = [Fraction(int(round(b * lcm)), lcm) for b in q_off]
    # bar lines: the first full bar starts at the pickup; shift so that bars are whole from 0
    pickup = grid.pickup_beats()
    shift = Fraction((m - pickup) % m)
    if on_f:
        first_bar = (min(on_f) + shift) // m
        shift -= first_bar * m
    rows = [(a + shift, b + shift, int(p)) for a, b, p in zip(on_f, off_f, notes.pitch)]
    end = max((b for _, b, _ in rows), default=Fraction(m))
    total = Fraction(-(-end // m) * m)

    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title or "Transcription", composer="amt"))
    if two_staves:
        right = split_hands(notes, onset_beats=np.array([float(r[0]) for r in rows]))
        staves = [
            ("right", clef.TrebleClef(), [r for r, h in zip(rows, right) if h]),
            ("left", clef.BassClef(), [r for r, h in zip(rows, right) if not h]),
        ]
    else:
        mean = float(np.mean(notes.pitch)) if len(notes) else 60.0
        staves = [("notes", clef.TrebleClef() if mean >= 60 else clef.BassClef(), rows)]
    parts = []
    for i, (name, cl, staff_rows) in enumerate(staves):
        part = stream.PartStaff(id=name) if two_staves else stream.Part(id=name)
        if i == 0:
            part.insert(0, instrument.Piano())
        part.insert(0, cl)
        part.insert(0, m21key.KeySignature(sharps))
        part.insert(0, meter.TimeSignature(f"{m}/4"))
        if i == 0:
            part.insert(0, tempo.MetronomeMark(number=round(grid.tempo_bpm)))
        for v in _staff_elements(staff_rows, sharps=sharps, total=total, max_voices=max_voices):
            part.insert(0, v)
        parts.append(part)
        score.insert(0, part)
    if two_staves:
        score.insert(0, layout.StaffGroup(parts, name="Piano", abbreviation="Pno.", symbol="brace"))
    return score


def write_musicxml(notes: NoteArray, path: str | os.PathLike, *, grid: BeatGrid, **kwargs) -> Path:
    """Write ``notes`` on ``grid`` as uncompressed MusicXML (atomically); ``kwargs`` go to :func:`notes_to_score`."""
    path = Path(path)
    kwargs.setdefault("title", path.stem)
    score = notes_to_score(notes, grid, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.musicxml")
    score.write("musicxml", fp=str(tmp), makeNotation=True)
    os.replace(tmp, path)
    return path
