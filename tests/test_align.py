"""Score alignment and score-informed correction (amtcli.align), the test-score generator, and `amt align`.

The fixtures are posteriorgrams made from notes: a score, and the same notes played along a known
non-linear tempo curve (a performance), so the right answer is known to the frame."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from amtcli.align import (
    AlignConfig,
    CorrectConfig,
    align_notes,
    banded_dtw,
    correct_transcription,
    dtw_path,
    performance_features,
    snap_onsets,
    warp_times,
)
from amtcli.cli import app
from amtcli.notes import NoteArray, notes_to_midi, notes_to_rolls

FR = 31.25
ROOT = Path(__file__).resolve().parents[1]


def perf_time(score_s):
    """The performance's clock: slower, then faster, with a pause-like bend (up to ~2.5 s away from the score)."""
    s = np.asarray(score_s, np.float64)
    return 1.15 * s + 0.8 * np.sin(s / 2.5) + 0.5


def make_score(rng, n=70):
    on = np.cumsum(rng.choice([0.25, 0.5, 0.5, 0.75], size=n)) + 0.5
    pitch = rng.integers(48, 84, size=n)
    return NoteArray(on, on + 0.4, pitch, np.full(n, 64), np.zeros(n)).sorted()


def posteriors_of(notes, *, duration_s, rng, noise=0.02):
    n_frames = int(np.ceil(duration_s * FR))
    rolls = notes_to_rolls(notes, n_frames=n_frames, frame_rate=FR)
    onset = np.clip(0.9 * rolls["onset"] + noise * rng.random(rolls["onset"].shape), 0, 1).astype(np.float32)
    frame = np.clip(0.8 * rolls["frame"] + noise * rng.random(rolls["frame"].shape), 0, 1).astype(np.float32)
    return {"onset": onset, "frame": frame, "velocity": np.full_like(onset, 0.5)}


def performance_of(score):
    return NoteArray(perf_time(score.onset_s), perf_time(score.offset_s), score.pitch, score.velocity, score.program)


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    score = make_score(rng)
    perf = performance_of(score)
    post = posteriors_of(perf, duration_s=perf.end_s + 1.0, rng=rng)
    return score, perf, post


@pytest.mark.parametrize("max_cells", [4_000_000, 20_000])  # one full DTW, one coarse-then-banded
def test_alignment_recovers_a_known_tempo_curve(case, max_cells):
    score, perf, post = case
    assert np.max(np.abs(perf.onset_s - score.onset_s)) > 2.0  # without alignment the notes are far off
    al = align_notes(score, post, frame_rate=FR, config=AlignConfig(max_cells=max_cells))
    err = np.abs(al.notes.onset_s - perf.onset_s)
    assert np.median(err) < 0.75 / FR  # on the performance's own onsets (which lie between frames)
    assert err.max() < 2.0 / FR
    assert al.snapped.all()
    assert np.array_equal(al.notes.pitch, score.pitch) and np.array_equal(al.notes.velocity, score.velocity)
    # the warping path alone, between the notes, follows the curve too
    mid = np.linspace(2.0, score.end_s - 2.0, 20)
    assert np.max(np.abs(al.score_to_performance(mid) - perf_time(mid))) < 0.4


def test_banded_dtw_with_a_full_band_equals_librosa(case):
    import librosa

    score, perf, post = case
    y = performance_features(post["onset"], post["frame"])[:200]
    x = performance_features(post["onset"], post["frame"])[40:190]
    path, total = banded_dtw(x, y, np.zeros(len(x), np.int64), np.full(len(x), len(y) - 1, np.int64))
    cost = 1.0 - x.astype(np.float64) @ y.astype(np.float64).T
    acc, ref_path = librosa.sequence.dtw(C=cost, step_sizes_sigma=np.array([[1, 1], [1, 0], [0, 1]]), backtrack=True)
    assert total == pytest.approx(acc[-1, -1], rel=1e-5)
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(acc[-1, -1], rel=1e-5)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (len(x) - 1, len(y) - 1)
    with pytest.raises(ValueError):
        banded_dtw(x, y, np.full(len(x), 5), np.full(len(x), len(y) - 1))  # does not start at (0, 0)


def test_dtw_path_of_identical_features_is_the_diagonal(case):
    _, _, post = case
    x = performance_features(post["onset"], post["frame"])[:300]
    for cells in (10**9, 5_000):
        path, cost = dtw_path(x, x, max_cells=cells)
        assert np.array_equal(path[:, 0], path[:, 1]) and cost < 1e-5


def test_warp_times_takes_the_first_frame_reached():
    path = np.array([[0, 0], [1, 1], [1, 2], [1, 3], [2, 4], [3, 5]])
    out = warp_times(np.array([0.0, 1.0, 1.5, 3.0, 4.0]) / FR, path, frame_rate=FR) * FR
    assert out == pytest.approx([0.0, 1.0, 2.5, 5.0, 6.0])


def test_snap_onsets_nearest_free_peak_above_threshold():
    onset = np.zeros((100, 88), np.float32)
    key = 60 - 21
    onset[[30, 36], key] = [0.8, 0.6]
    onset[70, key] = 0.05  # below the threshold
    t = np.array([31, 32, 70]) / FR  # two notes near the peaks, one near the weak bump
    out, snapped, peak = snap_onsets(t, np.array([60, 60, 60]), onset, frame_rate=FR, window_s=0.2, threshold=0.1)
    assert snapped.tolist() == [True, True, False]
    assert sorted(np.rint(out[:2] * FR).astype(int).tolist()) == [30, 36]  # one peak each, never shared
    assert peak[2] == 0 and out[2] == t[2]


def test_correction_adds_supported_drops_weak_keeps_strong():
    rng = np.random.default_rng(3)
    score = NoteArray.from_lists([(1.0, 1.5, 60), (2.0, 2.5, 64), (3.0, 3.5, 67), (4.0, 4.5, 72)], velocity=64)
    post = posteriors_of(score[:3], duration_s=6.0, rng=rng, noise=0.0)
    post["onset"][int(round(2.0 * FR)), 64 - 21] = 0.05  # the model barely heard 64: missed at its threshold
    post["onset"][int(round(5.0 * FR)), 50 - 21] = 0.95  # a strong note the score lacks
    post["onset"][int(round(5.2 * FR)), 53 - 21] = 0.4  # a weak one
    post["velocity"][int(round(2.0 * FR)), 64 - 21] = 0.3
    transcribed = NoteArray(
        np.array([1.0, 3.0, 5.0, 5.2]),
        np.array([1.5, 3.5, 5.3, 5.4]),
        np.array([60, 67, 50, 53]),
        np.array([90, 90, 90, 40]),
        np.zeros(4),
        confidence=np.array([0.9, 0.9, 0.95, 0.4]),
    )
    al = align_notes(score, post, frame_rate=FR)
    # the score is trusted by default: every note of it the model missed is added, 72 without support too
    trusting = correct_transcription(transcribed, al, post, frame_rate=FR)
    got = {(int(p), round(float(t), 1)) for p, t in zip(trusting.notes.pitch, trusting.notes.onset_s)}
    assert {(p, t) for p, t in got if p != 72} == {(60, 1.0), (64, 2.0), (67, 3.0), (50, 5.0)}  # 53: weak, unscored
    assert 72 in trusting.notes.pitch.tolist()  # where the path puts it: the recording has nothing of it
    assert (trusting.kept, trusting.added, trusting.unsupported) == (2, 2, 0)
    # asking for support: 64 (onset 0.05) is added, 72 (no support) is not
    fixed = correct_transcription(
        transcribed, al, post, frame_rate=FR, config=CorrectConfig(add_threshold=0.01, add_frame_threshold=0.05)
    )
    got = {(int(p), round(float(t), 1)) for p, t in zip(fixed.notes.pitch, fixed.notes.onset_s)}
    assert got == {(60, 1.0), (64, 2.0), (67, 3.0), (50, 5.0)}  # 72 has no support; 53 is weak and unscored
    assert (fixed.kept, fixed.kept_unscored, fixed.dropped, fixed.added, fixed.unsupported) == (2, 1, 1, 1, 1)
    added = fixed.notes[fixed.notes.pitch == 64]
    assert added.velocity[0] == round(0.3 * 127)  # the velocity heard, not the score's 64
    kept = fixed.notes[fixed.notes.pitch == 60]
    assert kept.velocity[0] == 90  # the performance's velocity
    strict = correct_transcription(
        transcribed, al, post, frame_rate=FR, config=CorrectConfig(add_threshold=0.5, add_frame_threshold=1.0)
    )
    assert 64 not in strict.notes.pitch.tolist()


def test_align_refuses_an_empty_score(case):
    from amtcli.errors import BadInput

    _, _, post = case
    with pytest.raises(BadInput):
        align_notes(NoteArray.empty(), post, frame_rate=FR)


# ---------------------------------------------------------------------------------- generator


def _generator():
    spec = importlib.util.spec_from_file_location("make_test_scores", ROOT / "scripts" / "make_test_scores.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_test_scores_follow_the_recipe():
    gen = _generator()
    rng = np.random.default_rng(0)
    n = 400
    on = np.sort(rng.uniform(0, 60, n))
    ref = NoteArray(on, on + 0.3, rng.integers(40, 90, n), np.full(n, 80), np.zeros(n)).sorted()
    notes, source, deleted, info, (t, tau) = gen.make_score(ref, rng=np.random.default_rng(1))
    slope = np.diff(tau) / np.diff(t)
    assert slope.min() >= 0.8 - 1e-6 and slope.max() <= 1.2 + 1e-6 and slope.max() - slope.min() > 0.1
    assert np.all(notes.velocity == 64)
    steps = notes.onset_s / info["grid_s"]
    assert np.allclose(steps, np.rint(steps))
    assert info["n_deleted"] == len(deleted) == round(0.03 * n) and info["n_inserted"] == round(0.03 * n)
    assert np.sum(source == -1) == info["n_inserted"] and not np.isin(deleted, source).any()
    kept = source >= 0
    assert np.array_equal(notes.pitch[kept], ref.pitch[source[kept]])
    again = gen.make_score(ref, rng=np.random.default_rng(1))[0]
    assert np.array_equal(again.onset_s, notes.onset_s)  # seeded


# ---------------------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_align_writes_and_refuses(tmp_path):
    from conftest import render_sines

    from amtcli.notes import midi_to_notes

    notes = NoteArray.from_lists([(0.5, 1.0, 60), (1.2, 1.8, 64), (2.0, 2.6, 67)])
    wav = tmp_path / "take.wav"
    sf.write(wav, render_sines(notes, duration_s=3.0), 16000)
    score = notes_to_midi(notes, tmp_path / "score.mid")
    out = tmp_path / "aligned.mid"
    args = ["align", str(wav), str(score), "-o", str(out), "--model", "tiny-test", "--device", "cpu"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    aligned = midi_to_notes(out)
    assert sorted(aligned.pitch.tolist()) == [60, 64, 67]
    r = runner.invoke(app, args)
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(app, [*args[:3], "-o", str(score), *args[5:]])
    assert r.exit_code != 0 and "score itself" in r.output
    (tmp_path / "bad.mid").write_text("not midi")
    r = runner.invoke(app, ["align", str(wav), str(tmp_path / "bad.mid"), "-o", str(tmp_path / "x.mid")])
    assert r.exit_code != 0 and "Traceback" not in r.output
    r = runner.invoke(app, [*args[:5], "--overwrite", "--model", "tiny-test", "--device", "cpu"])
    assert r.exit_code == 0, r.output


def test_cli_transcribe_with_score(tmp_path):
    from conftest import render_sines

    notes = NoteArray.from_lists([(0.5, 1.0, 60), (1.2, 1.8, 64), (2.0, 2.6, 67)])
    wav = tmp_path / "take.wav"
    sf.write(wav, render_sines(notes, duration_s=3.0), 16000)
    score = notes_to_midi(notes, tmp_path / "score.mid")
    out = tmp_path / "take.csv"
    base = ["transcribe", str(wav), "--model", "tiny-test", "--device", "cpu"]
    r = runner.invoke(app, [*base, "--score", str(score), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("onset_s,")
    assert "with the score" in r.output
    r = runner.invoke(app, [*base, "--score", str(tmp_path / "none.mid"), "-o", str(tmp_path / "b.mid")])
    assert r.exit_code != 0 and "no such score" in r.output
    r = runner.invoke(app, [*base, "--score", str(score), "--library", str(tmp_path), "-o", str(tmp_path / "c.mid")])
    assert r.exit_code != 0 and "contradict" in r.output


def test_cli_transcribe_with_library(tmp_path):
    from conftest import render_sines

    notes = NoteArray.from_lists([(0.5, 1.0, 60), (1.2, 1.8, 64), (2.0, 2.6, 67)])
    wav = tmp_path / "take.wav"
    sf.write(wav, render_sines(notes, duration_s=3.0), 16000)
    library = tmp_path / "library"
    notes_to_midi(notes, library / "piece.mid")
    notes_to_midi(notes.shifted(semitones=-7), library / "other.mid")
    out = tmp_path / "take.mid"
    args = ["transcribe", str(wav), "--model", "tiny-test", "--device", "cpu", "--library", str(library)]
    r = runner.invoke(app, [*args, "-o", str(out), "--no-beats"], env={"AMT_CACHE_DIR": str(tmp_path / "cache")})
    assert r.exit_code == 0, r.output
    assert "identified:" in r.output and "2 candidates" in r.output and out.is_file()
    r = runner.invoke(app, ["transcribe", str(wav), "--library", str(tmp_path / "none"), "-o", str(tmp_path / "d.mid")])
    assert r.exit_code != 0 and "no such folder" in r.output
