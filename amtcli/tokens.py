"""MIDI-like event tokens for sequence-to-sequence transcription (pure numpy; no torch, no I/O).

The vocabulary is data: a :class:`Codec` is an ordered tuple of event ranges, and a token id is the
offset of its range plus ``value - range.min_value`` (in the manner of MT3's ``event_codec``).
With the default codec (``Codec()``)::

    id   0          pad        (padding of target batches; never written by the decoder)
    id   1          start      (the decoder's first input)
    id   2          eos        (end of segment)
    id   3          tie        (end of the tie section, see below)
    ids  4..128     shift 1..125      time since the segment start, in steps of 1/steps_per_second
    ids  129..144   velocity 0..15    velocity bin for the note-ons that follow
    ids  145..232   note_on 21..108   (MIDI pitch)
    ids  233..320   note_off 21..108

A segment of ``segment_steps`` steps is written as::

    [note_on p ...]  tie  [shift n | note_off p | velocity b | note_on p ...]  eos

A run of consecutive shift tokens sets the time of the events that follow to the *sum of the run*,
counted from the segment start (as MT3's run-length-encoded shifts): absolute times within the
segment, so each time token points at one encoder frame and errors do not accumulate along the
sequence. Runs of more than one token are needed only past ``max_shift_steps``.

The *tie section* lists (as note-ons, ascending pitch) the notes that began before the segment and
still sound at its start; the decoder of the next segment thus knows which notes carry over.
Events at one time step are written as: note-offs (ascending pitch), then for each note-on
(ascending pitch) a velocity token when the bin changes, then the note-on. A note sounding past the
segment end has no note-off in that segment; it appears in the next segment's tie section.

Decoding is tolerant: a token that makes no sense where it stands (an id outside the vocabulary,
``pad`` / ``start`` / ``tie`` in the event section, a note-off of a silent pitch, a tie for a pitch
that is not sounding, a time past the segment end) is skipped or clamped and counted; reading stops
at the first ``eos``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import MIDI_MIN, N_KEYS
from .notes import NoteArray

PAD, START, EOS, TIE = 0, 1, 2, 3


@dataclass(frozen=True)
class EventRange:
    type: str
    min_value: int
    max_value: int

    @property
    def size(self) -> int:
        return self.max_value - self.min_value + 1


@dataclass(frozen=True)
class Codec:
    """The token vocabulary and time grid.

    ``steps_per_second``: the time grid (default 31.25 = one CQT frame at 16 kHz / hop 512).
    ``max_shift_steps``: the largest single shift token (later times take a run of several).
    ``n_velocity_bins``: velocities 1..127 fall into this many equal bins.
    """

    steps_per_second: float = 31.25
    max_shift_steps: int = 125
    n_velocity_bins: int = 16
    min_pitch: int = MIDI_MIN
    max_pitch: int = MIDI_MIN + N_KEYS - 1
    ranges: tuple[EventRange, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.steps_per_second <= 0 or self.max_shift_steps < 1 or self.n_velocity_bins < 1:
            raise ValueError("steps_per_second, max_shift_steps and n_velocity_bins must be positive")
        ranges = (
            EventRange("pad", 0, 0),
            EventRange("start", 0, 0),
            EventRange("eos", 0, 0),
            EventRange("tie", 0, 0),
            EventRange("shift", 1, self.max_shift_steps),
            EventRange("velocity", 0, self.n_velocity_bins - 1),
            EventRange("note_on", self.min_pitch, self.max_pitch),
            EventRange("note_off", self.min_pitch, self.max_pitch),
        )
        object.__setattr__(self, "ranges", ranges)

    @property
    def vocab_size(self) -> int:
        return sum(r.size for r in self.ranges)

    def offset(self, event_type: str) -> int:
        """The id of the first token of ``event_type``."""
        off = 0
        for r in self.ranges:
            if r.type == event_type:
                return off
            off += r.size
        raise KeyError(event_type)

    def encode_event(self, event_type: str, value: int = 0) -> int:
        """(type, value) -> token id; raises ValueError outside the range."""
        off = 0
        for r in self.ranges:
            if r.type == event_type:
                if not r.min_value <= value <= r.max_value:
                    raise ValueError(f"{event_type} value {value} outside [{r.min_value}, {r.max_value}]")
                return off + value - r.min_value
            off += r.size
        raise KeyError(event_type)

    def decode_event(self, token: int) -> tuple[str, int] | None:
        """Token id -> (type, value), or None for an id outside the vocabulary."""
        token = int(token)
        if token < 0:
            return None
        off = 0
        for r in self.ranges:
            if token < off + r.size:
                return r.type, r.min_value + token - off
            off += r.size
        return None

    # ------------------------------------------------------------------ velocity bins
    def velocity_to_bin(self, velocity: int) -> int:
        """MIDI velocity 1..127 -> bin 0..n_velocity_bins-1 (equal widths)."""
        v = int(np.clip(velocity, 1, 127))
        return min(self.n_velocity_bins - 1, (v - 1) * self.n_velocity_bins // 127)

    def bin_to_velocity(self, b: int) -> int:
        """Bin -> the MIDI velocity at its centre (maps back into the same bin)."""
        lo = 1 + (b * 127 + self.n_velocity_bins - 1) // self.n_velocity_bins
        hi = 1 + ((b + 1) * 127 + self.n_velocity_bins - 1) // self.n_velocity_bins - 1
        return int(np.clip((lo + min(hi, 127)) // 2, 1, 127))


def codec_from_config(config) -> Codec:
    """The codec described by a model config with fields ``steps_per_second``, ``max_shift_steps``,
    ``n_velocity_bins`` (e.g. :class:`amtcli.nets.transformer.TransformerConfig`)."""
    return Codec(
        steps_per_second=config.steps_per_second,
        max_shift_steps=config.max_shift_steps,
        n_velocity_bins=config.n_velocity_bins,
    )


# ---------------------------------------------------------------------------------------- encoding


def quantize_notes(notes: NoteArray, codec: Codec) -> NoteArray:
    """Notes as the codec can represent them: times on the step grid, velocities at bin centres,
    pitches inside the codec's range, at least one step long, and same-pitch notes never
    overlapping (an earlier note ends where the next one of its pitch begins). Drums are dropped."""
    n = notes.pitched()
    keep = (n.pitch >= codec.min_pitch) & (n.pitch <= codec.max_pitch)
    n = n[keep]
    if not len(n):
        return NoteArray.empty()
    sps = codec.steps_per_second
    on = np.rint(n.onset_s * sps).astype(np.int64)
    off = np.maximum(np.rint(n.offset_s * sps).astype(np.int64), on + 1)
    vel = np.array([codec.bin_to_velocity(codec.velocity_to_bin(v)) for v in n.velocity], dtype=np.int64)
    order = np.lexsort((-off, on, n.pitch))  # by pitch, then onset; the longest first among equals
    rows = []
    prev_pitch, prev_on = None, None
    for i in order:
        p = int(n.pitch[i])
        if p == prev_pitch and on[i] == prev_on:
            continue  # the same key struck twice at once: keep one (the longest)
        if p == prev_pitch and rows and rows[-1][1] > on[i]:
            rows[-1][1] = on[i]
        rows.append([int(on[i]), int(off[i]), p, int(vel[i])])
        prev_pitch, prev_on = p, on[i]
    a = np.array(rows, dtype=np.float64)
    return NoteArray(a[:, 0] / sps, a[:, 1] / sps, a[:, 2], a[:, 3], np.zeros(len(a))).sorted()


def notes_to_tokens(
    notes: NoteArray, codec: Codec, *, start_s: float = 0.0, segment_s: float | None = None
) -> np.ndarray:
    """The tokens of one segment ``[start_s, start_s + segment_s)``, ending with ``eos``.

    ``notes`` are in absolute seconds; they are first passed through :func:`quantize_notes`
    relative to ``start_s``. Without ``segment_s`` the segment holds every note. Returns int64 ``(n,)``.
    """
    q = quantize_notes(notes.shifted(seconds=-start_s), codec)
    sps = codec.steps_per_second
    on = np.rint(q.onset_s * sps).astype(np.int64)
    off = np.rint(q.offset_s * sps).astype(np.int64)
    end = np.iinfo(np.int64).max if segment_s is None else round(segment_s * sps)
    tokens: list[int] = []
    # tie section: begun before the segment, still sounding at its start
    tied = np.nonzero((on < 0) & (off > 0))[0]
    for i in sorted(tied, key=lambda i: q.pitch[i]):
        tokens.append(codec.encode_event("note_on", int(q.pitch[i])))
    tokens.append(TIE)
    events: list[tuple[int, int, int, int]] = []  # (step, 0 = off / 1 = on, pitch, velocity)
    for i in range(len(q)):
        if off[i] > 0 and off[i] <= end and (on[i] < end):
            events.append((int(off[i]), 0, int(q.pitch[i]), 0))
        if 0 <= on[i] < end:
            events.append((int(on[i]), 1, int(q.pitch[i]), int(q.velocity[i])))
    events.sort()
    step, vbin = 0, None
    for t, kind, pitch, velocity in events:
        if t != step:  # a new time point: a run of shifts summing to t (steps from the segment start)
            rest = t
            while rest > 0:
                d = min(rest, codec.max_shift_steps)
                tokens.append(codec.encode_event("shift", d))
                rest -= d
            step = t
        if kind == 0:
            tokens.append(codec.encode_event("note_off", pitch))
        else:
            b = codec.velocity_to_bin(velocity)
            if b != vbin:
                tokens.append(codec.encode_event("velocity", b))
                vbin = b
            tokens.append(codec.encode_event("note_on", pitch))
    tokens.append(EOS)
    return np.asarray(tokens, dtype=np.int64)


# ---------------------------------------------------------------------------------------- decoding


@dataclass
class TokenDecoding:
    """What :func:`decode_tokens` read from one segment.

    ``notes``: notes that ended inside the segment (absolute seconds). ``open``: pitch ->
    (onset_s, velocity) of notes still sounding at the end. ``invalid``: tokens skipped.
    """

    notes: NoteArray
    open: dict[int, tuple[float, int]]
    invalid: int = 0
    n_tokens: int = 0


DEFAULT_VELOCITY = 64


def decode_tokens(
    tokens,
    codec: Codec,
    *,
    start_s: float = 0.0,
    segment_s: float | None = None,
    carry: dict[int, tuple[float, int]] | None = None,
) -> TokenDecoding:
    """Read one segment's tokens (as written by :func:`notes_to_tokens`) into notes.

    ``tokens``: int ``(n,)``; ``start_s``: the segment's start in seconds. ``carry``: notes left open
    by the previous segment (its ``open``); a carried note continues when the tie section names its
    pitch and ends at ``start_s`` when it does not. With ``segment_s``, a time past the segment's
    end is clamped to the end. A tie for a pitch that is not carried, a shift past the end, and
    every other token that makes no sense where it stands are skipped and counted in ``invalid``;
    nothing raises. Reading stops at the first ``eos``.
    """
    carry = dict(carry or {})
    sps = codec.steps_per_second
    rows: list[tuple[float, float, int, int]] = []
    active: dict[int, tuple[float, int]] = {}
    invalid = 0
    in_ties = True
    tied: set[int] = set()
    step = 0  # steps from the segment start
    in_run = False  # the previous token was a shift: a further shift adds to the same run
    last_step = None if segment_s is None else round(segment_s * sps)
    velocity = DEFAULT_VELOCITY
    n_read = 0

    def end_ties() -> None:
        # carried notes named in the tie section continue; the others ended at the segment start
        for pitch, (onset, vel) in carry.items():
            if pitch in tied:
                active[pitch] = (onset, vel)
            elif start_s > onset:
                rows.append((onset, start_s, pitch, vel))

    for tok in np.asarray(tokens).reshape(-1).tolist():
        n_read += 1
        ev = codec.decode_event(tok)
        if ev is None:
            invalid += 1
            continue
        kind, value = ev
        if kind == "eos":
            break
        if in_ties:
            if kind == "note_on":
                if value in carry and value not in tied:
                    tied.add(value)
                else:
                    invalid += 1  # a tie for a pitch that is not sounding (or named twice)
                continue
            in_ties = False
            end_ties()
            if kind == "tie":
                continue
        if kind == "shift":
            step = (step if in_run else 0) + value
            in_run = True
            if last_step is not None and step > last_step:
                invalid += 1
                step = last_step
            continue
        in_run = False
        t = start_s + step / sps
        if kind == "velocity":
            velocity = codec.bin_to_velocity(value)
        elif kind == "note_on":
            if value in active:  # restruck without a note-off: the old note ends here
                onset, vel = active.pop(value)
                if t > onset:
                    rows.append((onset, t, value, vel))
            active[value] = (t, velocity)
        elif kind == "note_off":
            if value not in active:
                invalid += 1
                continue
            onset, vel = active.pop(value)
            if t > onset:
                rows.append((onset, t, value, vel))
            else:
                invalid += 1  # a note-off at its own onset: a zero-length note
        else:  # pad, start or a second tie in the event section
            invalid += 1
    if in_ties:
        end_ties()
    return TokenDecoding(NoteArray.from_lists(rows), active, invalid, n_read)


def close_notes(open_notes: dict[int, tuple[float, int]], end_s: float) -> NoteArray:
    """Notes still sounding at ``end_s`` (an ``open`` dict), ended there."""
    return NoteArray.from_lists([(on, end_s, p, v) for p, (on, v) in open_notes.items() if end_s > on])


def tokens_to_notes(
    segments,
    codec: Codec,
    *,
    starts_s,
    end_s: float,
    segment_s: float | None = None,
) -> tuple[NoteArray, int]:
    """Stitch consecutive segments: ``segments[k]`` (token ids) starts at ``starts_s[k]`` and lasts
    ``segment_s`` (when given, times past a segment's end are clamped and counted as invalid).

    Notes left open by one segment carry into the next through its tie section; notes still open at
    the end close at ``end_s``, and nothing lasts past it. Returns ``(notes, invalid token count)``.
    """
    from .notes import concat_notes

    parts, invalid, carry = [], 0, {}
    for toks, s in zip(segments, starts_s):
        d = decode_tokens(toks, codec, start_s=float(s), segment_s=segment_s, carry=carry)
        parts.append(d.notes)
        invalid += d.invalid
        carry = d.open
    parts.append(close_notes(carry, end_s))
    notes = concat_notes(parts)
    notes = notes[notes.onset_s < end_s]
    notes.offset_s = np.minimum(notes.offset_s, end_s)
    return notes, invalid


def segment_targets(
    notes: NoteArray, codec: Codec, *, start_s: float, segment_s: float, max_tokens: int | None = None
) -> np.ndarray:
    """Training targets of one segment: :func:`notes_to_tokens`, cut to ``max_tokens`` (a cut
    sequence has no ``eos``: the model learns that dense segments go on)."""
    toks = notes_to_tokens(notes, codec, start_s=start_s, segment_s=segment_s)
    return toks if max_tokens is None else toks[:max_tokens]
