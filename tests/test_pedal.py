"""Sustain pedal: reading CC64, inferring presses from sounding notes, writing them back."""

import numpy as np
import pytest

from amtcli.notes import NoteArray, extend_by_pedal, midi_to_notes, notes_to_midi
from amtcli.pedal import PedalConfig, infer_pedal, pedal_scores, read_pedal


def pedalled_piece():
    """Arpeggios played detached, each bar held by the pedal: (sounding notes, true pedal)."""
    rows, pedal = [], []
    for bar in range(6):
        t0 = 0.5 + 2.0 * bar
        root = 48 + (bar % 3) * 2
        for k, step in enumerate((0, 7, 12, 16, 19, 24)):
            on = t0 + 0.25 * k
            rows.append((on, on + 0.15, root + step, 70))  # the key is let go after 0.15 s
        pedal.append((t0 + 0.1, t0 + 1.9))
    keys = NoteArray.from_lists(rows)
    return extend_by_pedal(keys, pedal), np.array(pedal)


def test_read_pedal_from_midi(tmp_path):
    notes = NoteArray.from_lists([(0.0, 1.0, 60), (1.0, 2.0, 62)])
    path = notes_to_midi(notes, tmp_path / "p.mid", pedal=np.array([[0.2, 0.9], [1.1, 1.8]]))
    np.testing.assert_allclose(read_pedal(path), [[0.2, 0.9], [1.1, 1.8]], atol=2e-3)
    assert read_pedal(notes_to_midi(notes, tmp_path / "none.mid")).shape == (0, 2)


def test_infer_pedal_finds_the_releases_of_a_pedalled_piece():
    sounding, truth = pedalled_piece()
    pedal, notes = infer_pedal(sounding)
    assert len(pedal) == len(truth)
    np.testing.assert_allclose(pedal[:, 1], truth[:, 1], atol=0.01)
    scores = pedal_scores(truth, pedal, window_s=0.1)
    assert scores["offset_f1"] == 1.0
    # the sounding ends are kept; key releases are earlier and inside the press
    np.testing.assert_allclose(notes.offset_s, sounding.sorted().offset_s)
    assert np.all(notes.release_s <= notes.offset_s + 1e-9)
    # a key release is the next onset (the finger moved on); the last note of a bar has none before the release
    not_last = np.arange(len(notes)) % 6 != 5
    np.testing.assert_allclose(notes.release_s[not_last], notes.onset_s[not_last] + 0.25)
    np.testing.assert_allclose(notes.release_s[~not_last], notes.offset_s[~not_last])


def test_notes_played_back_with_the_inferred_pedal_sound_as_transcribed(tmp_path):
    sounding, _ = pedalled_piece()
    pedal, notes = infer_pedal(sounding)
    path = notes_to_midi(notes, tmp_path / "ped.mid", pedal=pedal)
    back = midi_to_notes(path, sustain=True)
    np.testing.assert_allclose(back.offset_s, notes.offset_s, atol=0.02)
    keys = midi_to_notes(path)
    np.testing.assert_allclose(keys.offset_s, notes.release_s, atol=2e-3)


def test_no_pedal_in_dry_playing():
    # detached notes and block chords released together with the hands: one onset per release group
    rows = [(0.5 * i, 0.5 * i + 0.3, 60 + i % 5, 70) for i in range(12)]
    rows += [(8.0, 9.0, p, 70) for p in (48, 52, 55, 60)]
    pedal, notes = infer_pedal(NoteArray.from_lists(rows))
    assert len(pedal) == 0
    np.testing.assert_allclose(notes.release_s, notes.offset_s)


def test_pedal_scores_counts():
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    est = np.array([[1.05, 2.5], [3.02, 4.01], [6.0, 7.0]])
    s = pedal_scores(ref, est, window_s=0.1)
    assert s["onset_precision"] == pytest.approx(2 / 3) and s["onset_recall"] == 1.0
    assert s["offset_recall"] == 0.5
    assert pedal_scores(ref, np.zeros((0, 2)))["onset_f1"] == 0.0


def test_config_changes_the_inference():
    sounding, truth = pedalled_piece()
    strict, _ = infer_pedal(sounding, config=PedalConfig(min_notes=7))
    assert len(strict) == 0
