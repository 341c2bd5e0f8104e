"""MusicXML: key, hands, voices, ties and rests, parsed back with music21."""

from fractions import Fraction

import numpy as np
import pytest

from amtcli.notes import NoteArray, midi_to_notes, notes_to_midi
from amtcli.rhythm import BeatGrid, fixed_grid
from amtcli.score import assign_voices, estimate_key, key_sharps, spell, split_hands, write_musicxml


def parse(path):
    """[(staff index, onset in quarters, midi pitches, quarter length)] with ties joined, and the score."""
    from music21 import converter

    score = converter.parse(str(path))
    out = []
    for k, part in enumerate(score.parts):
        for n in part.stripTies().flatten().notes:
            for p in n.pitches:
                out.append(
                    (
                        k,
                        Fraction(n.offset).limit_denominator(48),
                        p.midi,
                        Fraction(n.quarterLength).limit_denominator(48),
                    )
                )
    return sorted(out), score


def test_key_estimates():
    # I-IV-V-I in E-flat major, and in A minor (with the raised leading tone)
    eb = [
        (i, i + 1, p) for i, chord in enumerate([(63, 67, 70), (68, 72, 75), (70, 74, 77), (63, 67, 70)]) for p in chord
    ]
    am = [
        (i, i + 1, p) for i, chord in enumerate([(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]) for p in chord
    ]
    assert estimate_key(NoteArray.from_lists(eb)) == (3, "major")
    assert estimate_key(NoteArray.from_lists(am)) == (9, "minor")
    assert key_sharps(3, "major") == -3 and key_sharps(9, "minor") == 0 and key_sharps(7, "major") == 1
    assert spell(63, -3) == "E-4" and spell(66, 1) == "F#4"


def test_split_hands_keeps_each_hand_within_reach():
    rows = [(0, 1, 36), (0, 1, 43), (0, 1, 64), (0, 1, 67), (0, 1, 72), (1, 2, 59), (1, 2, 62), (2, 3, 50), (2, 3, 79)]
    notes = NoteArray.from_lists(rows).sorted()
    right = split_hands(notes)
    assert set(notes.pitch[right]) == {64, 67, 72, 59, 62, 79}
    assert set(notes.pitch[~right]) == {36, 43, 50}
    # one wide chord: cut between the hands
    wide = NoteArray.from_lists([(0, 1, p) for p in (40, 47, 52, 60, 64, 67, 72)]).sorted()
    r = split_hands(wide)
    assert set(wide.pitch[~r]) == {40, 47, 52}


def test_assign_voices_overlaps_and_the_voice_cap():
    on = [Fraction(0), Fraction(1), Fraction(2)]
    off = [Fraction(4), Fraction(2), Fraction(3)]
    voice, offs = assign_voices(on, off, max_voices=2)
    assert voice == [0, 1, 1]
    assert offs == off
    # a third overlapping chord with only 2 voices: the voice that frees first is cut short
    voice, offs = assign_voices(
        [Fraction(0), Fraction(0.5), Fraction(1)], [Fraction(4), Fraction(3), Fraction(2)], max_voices=2
    )
    assert voice == [0, 1, 1] and offs[1] == Fraction(1)


def grid_piece():
    """A known piece on the grid at 120 BPM, 3/4: a chord, a tie over the bar line, rests, two voices."""
    q = 0.5  # seconds per quarter
    rows = [
        (0 * q, 1 * q, 72),
        (1 * q, 1.5 * q, 74),
        (1.5 * q, 2 * q, 76),
        (2 * q, 4 * q, 77),  # F5 tied over bar 1-2
        (5 * q, 6 * q, 79),  # beat 3 of bar 2, after a rest
        (6 * q, 9 * q, 67),
        (6 * q, 7 * q, 72),
        (7 * q, 8 * q, 74),  # a held G4 under moving notes: two voices
        (0 * q, 3 * q, 48),
        (0 * q, 3 * q, 55),
        (3 * q, 6 * q, 43),
        (7.5 * q, 8 * q, 50),
    ]
    return NoteArray.from_lists(rows)


def test_round_trip_of_a_known_midi_on_the_grid(tmp_path):
    notes = midi_to_notes(notes_to_midi(grid_piece(), tmp_path / "known.mid"))
    path = write_musicxml(notes, tmp_path / "known.musicxml", grid=fixed_grid(120, duration_s=5, beats_per_bar=3))
    got, score = parse(path)
    expected = sorted(
        (0 if r else 1, Fraction(on * 2).limit_denominator(48), int(p), Fraction((off - on) * 2).limit_denominator(48))
        for on, off, p, r in zip(notes.onset_s, notes.offset_s, notes.pitch, notes.pitch >= 60)
    )
    assert got == expected
    text = path.read_text()
    assert "<staves>2</staves>" in text and text.count("<part ") == 1
    assert '<tie type="start"' in text  # F5 over the bar line
    assert "<beats>3</beats>" in text
    # voice 1 of the right hand rests on the first beat of bar 2 (a visible rest)
    rh = score.parts[0]
    visible_rests = [r for r in rh.recurse().getElementsByClass("Rest") if not r.style.hideObjectOnPrint]
    assert any(abs(float(r.getOffsetInHierarchy(rh)) - 4.0) < 1e-6 for r in visible_rests)
    # every bar of every staff adds up to 3 quarters in each voice
    for part in score.parts:
        for m in part.getElementsByClass("Measure"):
            for v in m.voices or [m]:
                assert sum(float(e.quarterLength) for e in v.notesAndRests) == pytest.approx(3.0)


def test_played_notes_land_on_the_grid_with_the_same_pitches_and_count(tmp_path, rng):
    known = grid_piece()
    beats = 0.3 + np.cumsum(np.full(14, 0.5) * (1 + 0.05 * np.sin(np.arange(14))))
    g = BeatGrid(np.concatenate([[0.3], beats]), beats_per_bar=3, first_downbeat=0)
    # the known piece played with this tempo curve and +-20 ms of timing noise
    on_b, off_b = known.onset_s * 2, known.offset_s * 2
    played = NoteArray(
        g.to_seconds(on_b) + rng.uniform(-0.02, 0.02, len(known)),
        g.to_seconds(off_b) + rng.uniform(-0.02, 0.02, len(known)),
        known.pitch,
        known.velocity,
        known.program,
    )
    got, _ = parse(write_musicxml(played, tmp_path / "played.musicxml", grid=g, steps=(4,)))
    assert len(got) == len(known)
    assert sorted(p for _, _, p, _ in got) == sorted(known.pitch.tolist())
    # onsets relative to the first note: the known quarter positions
    first = min(o for _, o, _, _ in got)
    assert sorted((o - first, p) for _, o, p, _ in got) == sorted(
        (Fraction(o).limit_denominator(8), int(p)) for o, p in zip(on_b, known.pitch)
    )


def test_pickup_bar_and_flat_key(tmp_path):
    # E-flat major, 4/4 with one pickup beat: the first bar line falls on the second beat
    g = BeatGrid(np.arange(0, 8.5, 0.5), beats_per_bar=4, first_downbeat=1)
    rows = [(0.0, 0.5, 70)] + [
        (0.5 + 0.5 * i, 1.0 + 0.5 * i, p) for i, p in enumerate([63, 67, 70, 75, 74, 72, 70, 68])
    ]
    rows += [(0.5, 2.5, 51), (2.5, 4.5, 44)]
    got, score = parse(write_musicxml(NoteArray.from_lists(rows), tmp_path / "pickup.musicxml", grid=g))
    # the first downbeat (E-flat, at 0.5 s) sits at the start of a bar
    eb = [o for _, o, p, _ in got if p == 63][0]
    assert eb % 4 == 0
    assert score.parts[0].recurse().getElementsByClass("KeySignature")[0].sharps == -3
    assert "E-" in [p.name for p in score.parts[0].pitches]
