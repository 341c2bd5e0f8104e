import numpy as np
import pretty_midi
import pytest

from amtcli.errors import BadMidi
from amtcli.notes import NoteArray, extend_by_pedal, midi_to_notes, notes_to_midi, notes_to_rolls


def test_midi_round_trip(tmp_path, three_notes):
    p = notes_to_midi(three_notes, tmp_path / "x.mid", program=0)
    back = midi_to_notes(p)
    assert len(back) == 3
    np.testing.assert_allclose(back.onset_s, three_notes.onset_s, atol=1e-3)
    np.testing.assert_allclose(back.offset_s, three_notes.offset_s, atol=1e-3)
    assert back.pitch.tolist() == [60, 64, 67]
    assert back.velocity.tolist() == [90, 70, 50]


def test_rolls(three_notes):
    fr = 10.0
    r = notes_to_rolls(three_notes, n_frames=25, frame_rate=fr)
    assert r["frame"].shape == (25, 88)
    k = 60 - 21
    assert r["onset"][1, k] == 1 and r["onset"].sum() == 3
    assert r["frame"][1:6, k].all() and not r["frame"][6, k]
    assert r["offset"][6, k] == 1
    assert r["velocity"][1, k] == pytest.approx(90 / 127)


def test_out_of_range_and_drums_dropped():
    n = NoteArray.from_lists([(0.0, 0.5, 10), (0.0, 0.5, 120), (0.0, 0.5, 60)])
    n.program[n.pitch == 60] = -1
    r = notes_to_rolls(n, n_frames=10, frame_rate=10)
    assert r["frame"].sum() == 0


def test_pedal_extension():
    n = NoteArray.from_lists([(0.0, 0.5, 60), (1.5, 2.0, 60), (0.2, 0.4, 64)])
    out = extend_by_pedal(n, [(0.3, 3.0)])
    by = {(p, round(o, 2)): e for p, o, e in zip(out.pitch, out.onset_s, out.offset_s)}
    assert by[(60, 0.0)] == pytest.approx(1.5)  # cut at the restrike of the same key
    assert by[(64, 0.2)] == pytest.approx(3.0)  # held to the pedal release
    assert by[(60, 1.5)] == pytest.approx(3.0)


def test_pedal_from_midi(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.5))
    inst.control_changes += [pretty_midi.ControlChange(64, 127, 0.2), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    p = tmp_path / "ped.mid"
    pm.write(str(p))
    assert midi_to_notes(p).offset_s[0] == pytest.approx(0.5, abs=1e-3)
    assert midi_to_notes(p, sustain=True).offset_s[0] == pytest.approx(2.0, abs=1e-3)


def test_bad_midi(tmp_path):
    with pytest.raises(BadMidi, match="no such file"):
        midi_to_notes(tmp_path / "nope.mid")
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    with pytest.raises(BadMidi, match="not a readable MIDI"):
        midi_to_notes(bad)


def test_clip_and_shift(three_notes):
    c = three_notes.shifted(semitones=2).clipped(0.5, 1.5)
    assert c.pitch.tolist() == [66, 69]
    assert c.onset_s[0] == pytest.approx(0.2)
    assert c.offset_s[1] == pytest.approx(1.0)
