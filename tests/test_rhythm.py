"""Beat grids, beat tracking, meter, quantization and MIDI tempo maps (amtcli.rhythm)."""

import numpy as np
import pytest

from amtcli.errors import BadInput
from amtcli.notes import NoteArray, load_pretty_midi, midi_to_notes, notes_to_midi
from amtcli.rhythm import (
    BeatGrid,
    estimate_grid,
    estimate_meter,
    estimate_tempo,
    fixed_grid,
    midi_tempo_map,
    onset_strength_from_notes,
    parse_quantize,
    quantize_notes,
    track_beats,
)


def curved_beats(n=60, start=0.8, base=0.5, depth=0.08):
    """Beat times of a tempo that swings +-8 % around 120 BPM."""
    ibi = base * (1 + depth * np.sin(np.arange(n) / 4.0))
    return start + np.concatenate([[0.0], np.cumsum(ibi[:-1])])


def bar_notes(beats, *, per_bar=3, first_downbeat=1, rng=None):
    """A melody on every beat and a low, long bass note on each downbeat."""
    rows = []
    for i, b in enumerate(beats[:-1]):
        rows.append((b, b + 0.2, 72 + (i * 5) % 7, 70))
        if (i - first_downbeat) % per_bar == 0:
            rows.append((b, b + 0.9 * (beats[i + 1] - b) * per_bar, 40 + (i // per_bar) % 5, 90))
    return NoteArray.from_lists(rows)


def test_grid_positions_and_inverse():
    g = BeatGrid(np.array([1.0, 1.5, 2.5, 3.0]))
    np.testing.assert_allclose(g.to_beats([1.0, 1.25, 2.0, 3.0]), [0, 0.5, 1.5, 3.0])
    np.testing.assert_allclose(g.to_beats([0.0, 4.0]), [-2.0, 5.0])  # extrapolated with the edge periods
    t = np.linspace(-1, 6, 50)
    np.testing.assert_allclose(g.to_seconds(g.to_beats(t)), t, atol=1e-9)
    assert g.lead_in_beats() == 2 and g.pickup_beats() == 2


def test_bad_grids_and_tempos_are_refused():
    with pytest.raises(BadInput):
        BeatGrid(np.array([1.0, 1.0, 2.0]))
    with pytest.raises(BadInput):
        BeatGrid(np.array([0.0, 1.0]), beats_per_bar=4, first_downbeat=4)
    with pytest.raises(BadInput):
        fixed_grid(0.0, duration_s=10)


def test_estimate_tempo_of_clicks():
    env = np.zeros(3000)
    env[(np.arange(0, 30, 0.6) * 100).astype(int)] = 1.0  # 100 BPM at 100 frames/s
    assert estimate_tempo(env, frame_rate=100.0) == pytest.approx(100.0, rel=0.02)


def test_track_beats_follows_a_tempo_curve():
    import mir_eval

    beats = curved_beats()
    notes = bar_notes(beats)
    env = onset_strength_from_notes(notes, n_frames=int((beats[-1] + 1) * 100), frame_rate=100.0)
    est = track_beats(env, frame_rate=100.0)
    assert mir_eval.beat.f_measure(beats, est) > 0.95


def test_meter_and_downbeat_from_the_notes():
    beats = curved_beats()
    assert estimate_meter(bar_notes(beats, per_bar=3, first_downbeat=1), beats) == (3, 1)
    assert estimate_meter(bar_notes(beats, per_bar=4, first_downbeat=2), beats) == (4, 2)


def test_estimate_grid_with_a_forced_tempo_starts_at_the_first_note():
    notes = NoteArray.from_lists([(0.4, 0.6, 60), (3.0, 3.5, 62)])
    g = estimate_grid(notes, tempo_bpm=90)
    assert not g.tracked and g.beats_s[0] == pytest.approx(0.4)
    assert g.tempo_bpm == pytest.approx(90)
    assert g.beats_s[-1] >= 3.5


def test_parse_quantize():
    assert parse_quantize("1/16") == (4,)
    assert parse_quantize("1/8t") == (3,)
    assert parse_quantize("1/16, 1/8t") == (4, 3)
    for bad in ("1/3", "2/16", "1/2", "sixteenth", "1/4t"):
        with pytest.raises(BadInput):
            parse_quantize(bad)


def test_quantize_moves_jittered_notes_onto_the_grid_and_reports_it():
    g = BeatGrid(curved_beats(20))
    pos = np.array([0, 0.25, 0.5, 1, 1.75, 2, 3])
    jitter = np.array([0.02, -0.03, 0.01, 0.0, 0.04, -0.02, 0.01])
    on = g.to_seconds(pos + jitter)
    off = g.to_seconds(pos + 0.25 + 0.01)
    notes = NoteArray(on, off, 60 + np.arange(7), np.full(7, 80), np.zeros(7))
    q, report = quantize_notes(notes, g, steps=(4,))
    np.testing.assert_allclose(g.to_beats(q.onset_s), pos, atol=1e-9)
    np.testing.assert_allclose(g.to_beats(q.offset_s), pos + 0.25, atol=1e-9)
    moved = np.abs(q.onset_s - on) * 1000
    assert report.n_notes == 7
    assert report.onset_mean_ms == pytest.approx(moved.mean())
    assert report.onset_max_ms == pytest.approx(moved.max())
    assert "1/16" in report.as_text()


def test_quantize_picks_triplets_per_beat():
    g = fixed_grid(60, duration_s=10)  # one beat per second
    on = np.array([0.0, 1 / 3 + 0.01, 2 / 3 - 0.01, 1.0, 1.25, 1.5, 1.75])
    notes = NoteArray(on, on + 0.2, np.arange(60, 67), np.full(7, 80), np.zeros(7))
    q16, _ = quantize_notes(notes, g, steps=(4,))
    q, _ = quantize_notes(notes, g, steps=(4, 3))
    np.testing.assert_allclose(q.onset_s, [0, 1 / 3, 2 / 3, 1.0, 1.25, 1.5, 1.75], atol=1e-9)
    assert not np.allclose(q16.onset_s[1], 1 / 3)


def test_quantize_merges_notes_that_land_together_and_cuts_overlaps():
    g = fixed_grid(60, duration_s=10)
    notes = NoteArray.from_lists([(0.02, 0.5, 60), (0.05, 1.5, 60), (1.01, 2.0, 60)])
    q, report = quantize_notes(notes, g, steps=(4,))
    assert report.n_notes == len(q) == 2
    np.testing.assert_allclose(q.onset_s, [0.0, 1.0])
    np.testing.assert_allclose(q.offset_s, [1.0, 2.0])  # the longer of the merged pair, cut at the next onset


def test_midi_tempo_map_keeps_note_times_and_lines_up_bars(tmp_path):
    beats = curved_beats(40, start=0.8)
    g = BeatGrid(beats, beats_per_bar=3, first_downbeat=1)
    notes = bar_notes(beats, per_bar=3, first_downbeat=1)
    tempo_map, signatures = midi_tempo_map(g)
    path = notes_to_midi(notes, tmp_path / "t.mid", tempo_map=tempo_map, time_signatures=signatures)
    back = midi_to_notes(path)
    np.testing.assert_allclose(back.onset_s, notes.onset_s, atol=1e-3)
    np.testing.assert_allclose(back.offset_s, notes.offset_s, atol=1e-3)
    pm = load_pretty_midi(path)
    file_beats = pm.get_beats()
    lead = g.lead_in_beats()
    np.testing.assert_allclose(file_beats[lead : lead + len(beats) - 1], beats[:-1], atol=1e-3)
    # the DAW's bar lines (after the pickup bar) are the grid's downbeats
    file_down = pm.get_downbeats()
    expected = g.downbeats_s[:-1]
    assert np.min(np.abs(file_down[:, None] - expected[None, :]), axis=0).max() < 1e-3
    assert [ts.numerator for ts in pm.time_signature_changes][-1] == 3
