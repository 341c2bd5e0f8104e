"""Per-note confidence and the two offsets (key release, sounding end) through NoteArray and MIDI."""

import numpy as np

from amtcli.config import DecodeConfig
from amtcli.inference.decoding import decode_frames
from amtcli.notes import NoteArray, concat_notes, extend_by_pedal, midi_to_notes, notes_to_midi


def test_defaults_confidence_nan_and_release_equal_to_offset(three_notes):
    assert np.isnan(three_notes.confidence).all()
    np.testing.assert_array_equal(three_notes.release_s, three_notes.offset_s)


def test_fields_follow_indexing_sorting_shifting_and_concat():
    n = NoteArray([1.0, 0.0], [2.0, 1.0], [60, 62], [80, 80], [0, 0], confidence=[0.9, 0.4], release_s=[1.5, 0.5])
    s = n.sorted()
    np.testing.assert_allclose(s.confidence, [0.4, 0.9])
    np.testing.assert_allclose(s.release_s, [0.5, 1.5])
    sh = s.shifted(seconds=1.0)
    np.testing.assert_allclose(sh.release_s, [1.5, 2.5])
    c = concat_notes([s[:1], s[1:]])
    np.testing.assert_allclose(c.confidence, [0.4, 0.9])
    cl = s.clipped(0.0, 1.2)
    np.testing.assert_allclose(cl.release_s, [0.5, 1.2])


def test_decode_frames_confidence_is_the_peak_onset_probability():
    onset = np.zeros((50, 88), np.float32)
    frame = np.zeros((50, 88), np.float32)
    onset[5:8, 39] = [0.6, 0.93, 0.7]
    frame[5:20, 39] = 0.9
    onset[30, 10] = 0.55
    frame[30:40, 10] = 0.9
    notes = decode_frames(onset, frame, frame_rate=10.0, config=DecodeConfig(onset_threshold=0.5, min_note_s=0.0))
    assert len(notes) == 2
    np.testing.assert_allclose(sorted(notes.confidence), [0.55, 0.93], atol=1e-6)


def test_extend_by_pedal_keeps_key_releases():
    keys = NoteArray.from_lists([(0.0, 0.3, 60), (0.5, 0.8, 64), (2.0, 2.2, 67)])
    sounding = extend_by_pedal(keys, [(0.1, 1.5)])
    np.testing.assert_allclose(sounding.offset_s, [1.5, 1.5, 2.2])
    np.testing.assert_allclose(sounding.release_s, [0.3, 0.8, 2.2])


def test_pedal_in_midi_round_trip(tmp_path):
    """Notes written with the pedal end at their key release; reading with sustain gives the sounding ends."""
    notes = NoteArray([0.0, 0.5], [1.5, 1.5], [60, 64], [80, 80], [0, 0], release_s=[0.3, 0.8])
    path = notes_to_midi(notes, tmp_path / "p.mid", pedal=np.array([[0.1, 1.5]]))
    keys = midi_to_notes(path)
    np.testing.assert_allclose(keys.offset_s, [0.3, 0.8], atol=2e-3)
    sounding = midi_to_notes(path, sustain=True)
    np.testing.assert_allclose(sounding.offset_s, [1.5, 1.5], atol=2e-3)
    np.testing.assert_allclose(sounding.release_s, [0.3, 0.8], atol=2e-3)


def test_fields_of_different_lengths_are_one_clear_error():
    import pytest

    from amtcli.errors import BadInput

    with pytest.raises(BadInput, match="same length"):
        NoteArray([0.0, 1.0], [0.5, 1.5], [60, 62], [80, 80], [0, 0], confidence=[0.5])
    with pytest.raises(BadInput, match="same length"):
        NoteArray([0.0, 1.0], [0.5], [60, 62], [80, 80], [0, 0])
