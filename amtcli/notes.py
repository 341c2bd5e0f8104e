"""The one note model: NoteArray, MIDI <-> notes, notes <-> piano rolls.

Pitch is a MIDI number everywhere; times are seconds. Rolls have shape ``(n_frames, n_keys)``
with key 0 = MIDI ``fmin_midi`` (21, A0, by default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import MIDI_MIN, N_KEYS
from .errors import BadInput, BadMidi


@dataclass
class NoteArray:
    """Notes as parallel arrays, sorted by onset then pitch.

    ``onset_s``, ``offset_s``: float64 ``(n,)``; ``pitch``: int ``(n,)`` MIDI numbers;
    ``velocity``: int ``(n,)`` in 1..127; ``program``: int ``(n,)`` GM program (-1 for drums).

    Two optional fields, filled in when not given:

    ``confidence``: float ``(n,)``, the transcriber's onset probability of each note in [0, 1]
    (NaN where unknown, e.g. notes read from a MIDI file or written by a token model).
    ``release_s``: float64 ``(n,)``, when the key was let go. ``offset_s`` is always when the note
    stops *sounding*; the two differ only where a sustain pedal holds the note on
    (``release_s <= offset_s``). Default: ``offset_s``.
    """

    onset_s: np.ndarray
    offset_s: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    confidence: np.ndarray | None = None
    release_s: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.onset_s)
        given = [self.offset_s, self.pitch, self.velocity, self.program, self.confidence, self.release_s]
        if any(a is not None and np.size(a) != n for a in given):
            raise BadInput("NoteArray fields must have the same length")
        self.onset_s = np.asarray(self.onset_s, dtype=np.float64).reshape(n)
        self.offset_s = np.asarray(self.offset_s, dtype=np.float64).reshape(n)
        self.pitch = np.asarray(self.pitch, dtype=np.int64).reshape(n)
        self.velocity = np.asarray(self.velocity, dtype=np.int64).reshape(n)
        self.program = np.asarray(self.program, dtype=np.int64).reshape(n)
        conf = np.full(n, np.nan) if self.confidence is None else self.confidence
        self.confidence = np.asarray(conf, dtype=np.float64).reshape(n)
        rel = self.offset_s.copy() if self.release_s is None else self.release_s
        self.release_s = np.asarray(rel, dtype=np.float64).reshape(n)

    @classmethod
    def empty(cls) -> "NoteArray":
        z = np.zeros(0)
        return cls(z, z, z, z, z)

    @classmethod
    def from_lists(cls, notes, *, velocity: int = 80, program: int = 0) -> "NoteArray":
        """From ``[(onset_s, offset_s, pitch[, velocity]), ...]``."""
        rows = [tuple(n) + (velocity,) * (4 - len(n)) for n in notes]
        if not rows:
            return cls.empty()
        a = np.array(rows, dtype=np.float64)
        return cls(a[:, 0], a[:, 1], np.rint(a[:, 2]), np.rint(a[:, 3]), np.full(len(a), program)).sorted()

    def __len__(self) -> int:
        return len(self.onset_s)

    def __getitem__(self, index) -> "NoteArray":
        return NoteArray(
            self.onset_s[index],
            self.offset_s[index],
            self.pitch[index],
            self.velocity[index],
            self.program[index],
            self.confidence[index],
            self.release_s[index],
        )

    def sorted(self) -> "NoteArray":
        order = np.lexsort((self.pitch, self.onset_s))
        return self[order]

    def shifted(self, *, semitones: int = 0, seconds: float = 0.0) -> "NoteArray":
        """Transposed by ``semitones`` (drum notes keep their pitch) and moved by ``seconds``."""
        pitch = np.where(self.program >= 0, self.pitch + semitones, self.pitch)
        return NoteArray(
            self.onset_s + seconds,
            self.offset_s + seconds,
            pitch,
            self.velocity,
            self.program,
            self.confidence,
            self.release_s + seconds,
        )

    def clipped(self, start_s: float, end_s: float) -> "NoteArray":
        """Notes that start in ``[start_s, end_s)``, times relative to ``start_s``, offsets cut at ``end_s``."""
        keep = (self.onset_s >= start_s) & (self.onset_s < end_s)
        n = self[keep]
        return NoteArray(
            n.onset_s - start_s,
            np.minimum(n.offset_s, end_s) - start_s,
            n.pitch,
            n.velocity,
            n.program,
            n.confidence,
            np.minimum(n.release_s, end_s) - start_s,
        )

    def pitched(self) -> "NoteArray":
        """Without drum notes."""
        return self[self.program >= 0]

    @property
    def end_s(self) -> float:
        return float(self.offset_s.max()) if len(self) else 0.0

    def to_mir_eval(self) -> tuple[np.ndarray, np.ndarray]:
        """(intervals ``(n, 2)`` in s, pitches ``(n,)`` in Hz) as mir_eval.transcription wants them."""
        intervals = np.stack([self.onset_s, self.offset_s], axis=1) if len(self) else np.zeros((0, 2))
        return intervals, 440.0 * 2.0 ** ((self.pitch.astype(np.float64) - 69) / 12)


def concat_notes(parts: list[NoteArray]) -> NoteArray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return NoteArray.empty()
    fields = ("onset_s", "offset_s", "pitch", "velocity", "program", "confidence", "release_s")
    return NoteArray(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields)).sorted()


# --------------------------------------------------------------------------------------------- MIDI


def _pedal_intervals(control_changes, end_s: float, *, threshold: int = 64) -> list[tuple[float, float]]:
    intervals, down_at = [], None
    for cc in sorted((c for c in control_changes if c.number == 64), key=lambda c: c.time):
        if cc.value >= threshold and down_at is None:
            down_at = cc.time
        elif cc.value < threshold and down_at is not None:
            intervals.append((down_at, cc.time))
            down_at = None
    if down_at is not None:
        intervals.append((down_at, end_s))
    return intervals


def end_before_next_onset(notes: NoteArray, offset_s: np.ndarray) -> np.ndarray:
    """``offset_s`` ``(n,)`` (one per note of ``notes``) cut so that no note runs into the next onset of
    its pitch and program; a note keeps at least 1 ms."""
    off = np.array(offset_s, np.float64)
    if len(notes) < 2:
        return off
    order = np.lexsort((notes.onset_s, notes.pitch, notes.program))
    pitch, program = notes.pitch[order], notes.program[order]
    same = (pitch[1:] == pitch[:-1]) & (program[1:] == program[:-1])
    a, b = order[:-1][same], order[1:][same]
    off[a] = np.maximum(np.minimum(off[a], notes.onset_s[b]), notes.onset_s[a] + 1e-3)
    return off


def extend_by_pedal(notes: NoteArray, pedal: list[tuple[float, float]]) -> NoteArray:
    """Offsets released while the sustain pedal is down move to the pedal release (MAESTRO convention),
    but never past the next onset of the same pitch. The key releases (the offsets given) are kept
    as ``release_s``. ``pedal``: ``[(down_s, up_s), ...]`` sorted by time."""
    if not len(notes) or not pedal:
        return notes
    notes = notes.sorted()
    off = notes.offset_s.copy()
    starts = np.array([p[0] for p in pedal])
    ends = np.array([p[1] for p in pedal])
    idx = np.searchsorted(starts, off, side="right") - 1
    for i in np.nonzero(idx >= 0)[0]:
        j = idx[i]
        if starts[j] <= off[i] < ends[j]:
            off[i] = ends[j]
    off = end_before_next_onset(notes, off)
    return NoteArray(
        notes.onset_s,
        off,
        notes.pitch,
        notes.velocity,
        notes.program,
        notes.confidence,
        np.minimum(notes.offset_s, off),
    )


def pretty_midi_to_notes(pm, *, sustain: bool = False, include_drums: bool = False) -> NoteArray:
    """A ``pretty_midi.PrettyMIDI`` -> NoteArray (optionally with pedal-extended offsets)."""
    parts = []
    end = pm.get_end_time()
    for inst in pm.instruments:
        if inst.is_drum and not include_drums:
            continue
        if not inst.notes:
            continue
        a = np.array([(n.start, n.end, n.pitch, n.velocity) for n in inst.notes], dtype=np.float64)
        prog = -1 if inst.is_drum else inst.program
        part = NoteArray(a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.full(len(a), prog))
        if sustain and not inst.is_drum:
            part = extend_by_pedal(part, _pedal_intervals(inst.control_changes, end))
        parts.append(part)
    return concat_notes(parts)


def load_pretty_midi(path: str | os.PathLike):
    """Open a MIDI file with pretty_midi, raising :class:`BadMidi` with a one-line reason."""
    import warnings

    import pretty_midi

    path = Path(path)
    if not path.exists():
        raise BadMidi(f"{path}: no such file")
    if path.is_dir():
        raise BadMidi(f"{path}: is a folder, not a MIDI file")
    if path.stat().st_size == 0:
        raise BadMidi(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadMidi(f"{path}: not a readable MIDI file ({reason})") from None


def midi_to_notes(path: str | os.PathLike, *, sustain: bool = False, include_drums: bool = False) -> NoteArray:
    """Read a MIDI file's notes. ``sustain=True`` extends offsets by the sustain pedal (CC64)."""
    return pretty_midi_to_notes(load_pretty_midi(path), sustain=sustain, include_drums=include_drums)


def notes_to_pretty_midi(
    notes: NoteArray,
    *,
    program: int | None = None,
    tempo_map: list[tuple[int, float]] | None = None,
    time_signatures: list[tuple[int, int, int]] = (),
    pedal: np.ndarray | None = None,
    resolution: int = 960,
):
    """NoteArray -> ``pretty_midi.PrettyMIDI``, one instrument per program (or all as ``program``).

    ``tempo_map``: ``[(tick, seconds_per_tick), ...]`` starting at tick 0 (default: 120 BPM) and
    ``time_signatures``: ``[(numerator, denominator, tick), ...]``, e.g. from
    :func:`amtcli.rhythm.midi_tempo_map`; note times stay the same seconds whatever the map.
    ``pedal``: sustain-pedal intervals ``(n, 2)`` in s, written as CC64 127/0 on every pitched
    instrument; the notes then end at their key release (``release_s``), so a player that honours
    the pedal sounds them until ``offset_s``.
    """
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=resolution)
    if tempo_map:
        pm._tick_scales = [(int(t), float(s)) for t, s in tempo_map]  # pretty_midi has no public setter
        pm._update_tick_to_time(int(tempo_map[-1][0]) + 1)
        for num, den, tick in time_signatures:
            pm.time_signature_changes.append(
                pretty_midi.TimeSignature(int(num), int(den), float(pm.tick_to_time(int(tick))))
            )
    ends = notes.release_s if pedal is not None else notes.offset_s
    programs = [program] if program is not None else sorted(set(notes.program.tolist())) or [0]
    for prog in programs:
        sel = np.ones(len(notes), bool) if program is not None else notes.program == prog
        is_drum = prog is not None and prog < 0
        inst = pretty_midi.Instrument(program=max(0, prog), is_drum=is_drum)
        for on, off, p, v in zip(notes.onset_s[sel], ends[sel], notes.pitch[sel], notes.velocity[sel]):
            if off <= on:
                off = on + 1e-3
            inst.notes.append(
                pretty_midi.Note(
                    velocity=int(np.clip(v, 1, 127)), pitch=int(np.clip(p, 0, 127)), start=float(on), end=float(off)
                )
            )
        if pedal is not None and not is_drum:
            for down, up in np.asarray(pedal, dtype=np.float64).reshape(-1, 2):
                inst.control_changes.append(pretty_midi.ControlChange(64, 127, float(down)))
                inst.control_changes.append(pretty_midi.ControlChange(64, 0, float(up)))
        pm.instruments.append(inst)
    return pm


def notes_to_midi(notes: NoteArray, path: str | os.PathLike, *, program: int | None = None, **kwargs) -> Path:
    """Write notes as a MIDI file (atomically: temp file, then rename); ``kwargs`` go to
    :func:`notes_to_pretty_midi` (tempo map, time signatures, pedal)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    notes_to_pretty_midi(notes, program=program, **kwargs).write(str(tmp))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------- rolls


def notes_to_rolls(
    notes: NoteArray,
    *,
    n_frames: int,
    frame_rate: float,
    fmin_midi: int = MIDI_MIN,
    n_keys: int = N_KEYS,
    onset_frames: int = 1,
    offset_frames: int = 1,
) -> dict[str, np.ndarray]:
    """Notes -> training targets, each float32 ``(n_frames, n_keys)``.

    ``onset``: 1 for ``onset_frames`` frames from the onset frame; ``offset``: 1 for ``offset_frames``
    frames from the offset frame; ``frame``: 1 from the onset frame up to (not including) the offset
    frame, at least one frame; ``velocity``: velocity/127 on onset frames.
    Frame ``i`` covers time ``i / frame_rate`` (frames are centred on their times).
    Notes outside the key range are dropped.
    """
    rolls = {k: np.zeros((n_frames, n_keys), np.float32) for k in ("onset", "offset", "frame", "velocity")}
    if not len(notes) or n_frames <= 0:
        return rolls
    keys = notes.pitch - fmin_midi
    ok = (keys >= 0) & (keys < n_keys) & (notes.program >= 0)
    on = np.rint(notes.onset_s * frame_rate).astype(np.int64)
    off = np.rint(notes.offset_s * frame_rate).astype(np.int64)
    off = np.maximum(off, on + 1)
    order = np.argsort(on, kind="stable")  # later notes win where notes of one key overlap
    for i in order:
        if not ok[i] or on[i] >= n_frames or off[i] <= 0:
            continue
        k, a, b = keys[i], on[i], off[i]
        if a >= 0:
            rolls["onset"][a : min(n_frames, a + onset_frames), k] = 1
            rolls["velocity"][a : min(n_frames, a + onset_frames), k] = notes.velocity[i] / 127.0
        rolls["frame"][max(0, a) : min(n_frames, b), k] = 1
        if b < n_frames:
            rolls["offset"][b : min(n_frames, b + offset_frames), k] = 1
    return rolls
