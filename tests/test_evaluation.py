"""Metrics (known scores for known errors), pooling, evaluation runs, noise sweeps and reports."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
from dataset_fixtures import write_pairs

from amtcli.datasets import load_dataset
from amtcli.errors import BadInput
from amtcli.evaluation.metrics import METRICS, Counts, aggregate, frame_counts, onset_matches, score_notes
from amtcli.evaluation.reports import plot_robustness, runs_to_dict, write_csv, write_json
from amtcli.evaluation.robustness import f1_by_condition, snr_conditions
from amtcli.evaluation.suites import (
    CLEAN,
    Condition,
    ModelSystem,
    PredictionFolder,
    parse_snrs,
    run_evaluation,
)
from amtcli.notes import NoteArray, notes_to_midi


@pytest.fixture
def ref():
    """Ten notes, 200 ms long, 300 ms apart, with distinct velocities."""
    return NoteArray.from_lists([(0.1 + 0.3 * i, 0.3 + 0.3 * i, 50 + i, 20 + 10 * i) for i in range(10)])


def f1s(scores):
    return {m: (None if c is None else round(c.f1, 6)) for m, c in scores.items()}


# ------------------------------------------------------------------------------------ metrics


def test_reference_against_itself_scores_one(ref):
    s = score_notes(ref, ref)
    assert f1s(s) == {m: 1.0 for m in METRICS}
    assert s["note"] == Counts(10, 10, 10)


@pytest.mark.parametrize("shift_s, note_f1", [(0.06, 0.0), (0.03, 1.0), (-0.03, 1.0), (-0.06, 0.0)])
def test_onset_shift_gives_known_note_score(ref, shift_s, note_f1):
    s = score_notes(ref, ref.shifted(seconds=shift_s))
    assert s["note"].f1 == note_f1
    assert s["note_offset"].f1 == note_f1  # offsets moved by the same amount: within 50 ms iff onsets are
    # 10 ms frames: a 200 ms note overlaps its shifted copy for 200 - |shift| ms
    assert s["frame"].f1 == pytest.approx((0.2 - abs(shift_s)) / 0.2, abs=0.051)


def test_half_the_notes_dropped(ref):
    s = score_notes(ref, ref[::2])
    for m in ("note", "note_offset", "note_offset_velocity", "frame"):
        assert s[m].precision == 1.0 and s[m].recall == 0.5
    assert s["note"].f1 == pytest.approx(2 / 3)


def test_offsets_decide_note_with_offset(ref):
    # 200 ms notes: tolerance max(0.2 * 0.2, 0.05) = 50 ms
    late = NoteArray(ref.onset_s, ref.offset_s + 0.07, ref.pitch, ref.velocity, ref.program)
    near = NoteArray(ref.onset_s, ref.offset_s + 0.04, ref.pitch, ref.velocity, ref.program)
    assert f1s(score_notes(ref, late))["note"] == 1.0 and f1s(score_notes(ref, late))["note_offset"] == 0.0
    assert f1s(score_notes(ref, near))["note_offset"] == 1.0


def test_onset_matches_are_the_pairs_the_note_score_counts(ref):
    half = ref[::2].shifted(seconds=0.03)
    rows = [(a, b, int(p), int(v)) for a, b, p, v in zip(half.onset_s, half.offset_s, half.pitch, half.velocity)]
    est = NoteArray.from_lists([*rows, (0.1, 0.2, 90, 50)])  # and one note nobody played
    ri, ei = onset_matches(ref, est)
    assert len(ri) == score_notes(ref, est)["note"].tp == 5
    assert np.array_equal(ref.pitch[ri], est.pitch[ei]) and set(ri.tolist()) == set(range(0, 10, 2))
    assert len(onset_matches(ref, NoteArray.empty())[0]) == 0


def test_wrong_pitch_is_a_miss(ref):
    s = score_notes(ref, ref.shifted(semitones=1))
    assert s["note"].tp == 0
    # one semitone up: note i+1's pitch at note i's time never sounds there, so no frame matches
    assert s["frame"].tp == 0


def test_velocity_is_judged_after_linear_rescaling(ref):
    scaled = NoteArray(ref.onset_s, ref.offset_s, ref.pitch, ref.velocity // 2 + 30, ref.program)
    assert score_notes(ref, scaled)["note_offset_velocity"].f1 == pytest.approx(1.0)
    # reversed velocities are still a line (negative slope): mir_eval's fit undoes that too
    assert score_notes(ref, NoteArray(ref.onset_s, ref.offset_s, ref.pitch, ref.velocity[::-1], ref.program))[
        "note_offset_velocity"
    ].f1 == pytest.approx(1.0)
    shuffled = NoteArray(
        ref.onset_s, ref.offset_s, ref.pitch, ref.velocity[[3, 7, 0, 9, 1, 5, 8, 2, 6, 4]], ref.program
    )
    s = score_notes(ref, shuffled)
    assert s["note_offset"].f1 == 1.0 and s["note_offset_velocity"].tp == 2  # measured: 2 of 10 within 0.1
    assert score_notes(ref, ref, with_velocity=False)["note_offset_velocity"] is None


def test_empty_sets_without_warnings(ref):
    empty = NoteArray.empty()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = score_notes(empty, empty)
        no_est = score_notes(ref, empty)
        no_ref = score_notes(empty, ref)
    assert f1s(both) == {m: 1.0 for m in METRICS}
    assert f1s(no_est) == {m: 0.0 for m in METRICS} and no_est["note"] == Counts(0, 10, 0)
    assert f1s(no_ref) == {m: 0.0 for m in METRICS} and no_ref["note"].precision == 0.0


def test_zero_length_and_drum_estimates_are_handled(ref):
    est = NoteArray(
        np.r_[ref.onset_s, 0.5],
        np.r_[ref.onset_s, 0.6],
        np.r_[ref.pitch, 36],
        np.r_[ref.velocity, 100],
        np.r_[ref.program, -1],
    )
    s = score_notes(ref, est)  # zero-length notes (mir_eval refuses them) and a drum hit (ignored)
    assert s["note"] == Counts(10, 10, 10)


def test_frame_counts_agree_with_mir_eval_multipitch(rng):
    import mir_eval.multipitch

    def random_notes(n):
        on = rng.uniform(0, 3, n)
        return NoteArray(on, on + rng.uniform(0.05, 0.8, n), rng.integers(40, 80, n), np.full(n, 80), np.zeros(n))

    ref, est = random_notes(30), random_notes(30)
    ours = frame_counts(ref, est)
    times = np.arange(int(np.ceil(max(ref.end_s, est.end_s) * 100)) + 1) / 100.0

    def freqs(notes):
        return [
            np.array(
                sorted(
                    {
                        440.0 * 2 ** ((p - 69) / 12)
                        for on, off, p in zip(notes.onset_s, notes.offset_s, notes.pitch)
                        if on <= t < off
                    }
                )
            )
            for t in times
        ]

    theirs = mir_eval.multipitch.evaluate(times, freqs(ref), times, freqs(est))
    assert 0 < ours.precision < 1
    assert ours.precision == pytest.approx(theirs["Precision"], abs=1e-9)
    assert ours.recall == pytest.approx(theirs["Recall"], abs=1e-9)


def test_micro_and_macro_differ_in_a_hand_computed_case():
    # file A: 3 notes, all found -> F1 1. File B: 1 note, answered with a wrong pitch -> F1 0.
    a = NoteArray.from_lists([(0.1, 0.3, 60), (0.5, 0.7, 62), (0.9, 1.1, 64)])
    b = NoteArray.from_lists([(0.1, 0.3, 60)])
    per_file = [score_notes(a, a), score_notes(b, b.shifted(semitones=5))]
    agg = aggregate(per_file)
    assert agg["micro"]["note"]["tp"] == 3 and agg["micro"]["note"]["n_ref"] == 4
    assert agg["micro"]["note"]["f1"] == pytest.approx(0.75)  # 3 of 4 on both sides
    assert agg["macro"]["note"]["f1"] == pytest.approx(0.5)  # mean of 1 and 0
    assert agg["micro"]["frame"]["f1"] == pytest.approx(60 / 80)  # 60 matched of 80 frames each side


def test_aggregate_skips_files_without_velocity(ref):
    agg = aggregate([score_notes(ref, ref), score_notes(ref, ref[:5], with_velocity=False)])
    assert agg["macro"]["note_offset_velocity"]["n_files"] == 1
    assert agg["micro"]["note_offset_velocity"]["f1"] == 1.0
    assert aggregate([score_notes(ref, ref, with_velocity=False)])["micro"]["note_offset_velocity"] is None


# ---------------------------------------------------------------------------------------- runs


@pytest.fixture
def pairs(tmp_path):
    return write_pairs(tmp_path / "pairs", ["a/take1", "a/take2", "b/take3"])


def write_predictions(folder, items, transform=lambda n: n):
    for it in items:
        notes_to_midi(transform(it.load_notes()), folder / f"{it.audio.stem}.mid")
    return folder


def test_prediction_folder_run_scores_references_as_one(pairs, tmp_path):
    items = load_dataset("pairs", root=pairs, split="all")
    preds = write_predictions(tmp_path / "preds", items)
    (run,) = run_evaluation(items, [PredictionFolder(preds)], root=pairs)
    assert [f.item_id for f in run.files] == ["a/take1", "a/take2", "b/take3"]
    agg = run.aggregate()
    assert all(agg[s][m]["f1"] == pytest.approx(1.0) for s in ("micro", "macro") for m in METRICS)


def test_prediction_folder_half_dropped_and_missing(pairs, tmp_path):
    items = load_dataset("pairs", root=pairs, split="all")
    preds = write_predictions(tmp_path / "half", items, lambda n: n[::2])
    (run,) = run_evaluation(items, [PredictionFolder(preds)])
    micro = run.aggregate()["micro"]["note"]
    assert micro["precision"] == 1.0 and micro["recall"] == 0.5
    (preds / "take3.mid").unlink()
    with pytest.raises(BadInput, match="no MIDI file for 1 of 3.*take3.mid"):
        run_evaluation(items, [PredictionFolder(preds)])


def test_prediction_folder_same_stem_in_two_folders(tmp_path):
    root = write_pairs(tmp_path / "pairs", ["x/take", "y/take"])
    items = load_dataset("pairs", root=root, split="all")
    preds = tmp_path / "preds"
    for it in items:  # x's prediction is right, y's is one semitone off
        notes = it.load_notes() if it.id == "x/take" else it.load_notes().shifted(semitones=1)
        notes_to_midi(notes, preds / it.id.split("/")[0] / "take.mid")
    (run,) = run_evaluation(items, [PredictionFolder(preds)], root=root)
    assert [round(f.counts["note"].f1, 3) for f in run.files] == [1.0, 0.0]
    with pytest.raises(BadInput, match="2 files named take"):
        run_evaluation(items, [PredictionFolder(preds)])  # without the root the folders cannot be told apart


def test_references_are_clipped_to_the_audio(tmp_path):
    root = write_pairs(tmp_path / "pairs", ["short"], audio_duration_s=0.5)
    items = load_dataset("pairs", root=root, split="all")
    full = items[0].load_notes()
    assert full.end_s > 0.5
    preds = write_predictions(tmp_path / "p", items, lambda n: n.clipped(0.0, 0.5))
    (clipped,) = run_evaluation(items, [PredictionFolder(preds)])
    assert clipped.files[0].counts["note_offset"].f1 == 1.0
    assert clipped.files[0].counts["note"].n_ref == int(np.sum(full.onset_s < 0.5)) < len(full)
    (whole,) = run_evaluation(items, [PredictionFolder(preds)], clip_to_audio=False)
    assert whole.files[0].counts["note"].recall < 1.0


class RecordingSystem(ModelSystem):
    """Answers with the reference notes while the audio is clean, nothing once noise is mixed in;
    records the audio it was given."""

    def __init__(self, items, name="oracle"):
        super().__init__(None, name=name)
        self.clean = {}
        self.refs = {it.id: it.load_notes() for it in items}
        self.heard = []

    @property
    def sample_rate(self):
        return 16000

    def transcribe(self, audio):
        self.heard.append(audio)
        for item_id, clean in self.clean.items():
            if len(clean) == len(audio) and np.array_equal(clean, audio):
                return self.refs[item_id]
        return NoteArray.empty()


def test_snr_sweep_mixes_seeded_noise(pairs):
    from amtcli.audio.io import load_audio

    items = load_dataset("pairs", root=pairs, split="all")[:2]
    system = RecordingSystem(items)
    system.clean = {it.id: load_audio(it.audio, sample_rate=16000) for it in items}
    conditions = snr_conditions([0, 20, 20], noise="pink")
    assert [c.name for c in conditions] == ["clean", "20 dB pink", "0 dB pink"]
    runs = run_evaluation(items, [system], conditions=conditions, seed=3)
    assert [r.condition.name for r in runs] == ["clean", "20 dB pink", "0 dB pink"]
    assert runs[0].aggregate()["micro"]["note"]["f1"] == 1.0
    assert runs[2].aggregate()["micro"]["note"]["f1"] == 0.0
    clean, at20, at0 = system.heard[:3]  # first item: clean, 20 dB, 0 dB
    n20, n0 = at20 - clean, at0 - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(n0.astype(np.float64) ** 2))
    assert snr == pytest.approx(0.0, abs=0.05)
    # one noise signal per file, only scaled between SNRs (10 ** (20 / 20) = 10x quieter at 20 dB)
    np.testing.assert_allclose(n20 * 10, n0, atol=1e-4)
    again = RecordingSystem(items)
    again.clean = system.clean
    run_evaluation(items, [again], conditions=conditions, seed=3)
    np.testing.assert_array_equal(again.heard[2], at0)  # reproducible
    assert not np.allclose(system.heard[3 + 2] - system.clean[items[1].id], n0[: len(system.heard[5])], atol=1e-3)
    sys_, conds, table = f1_by_condition(runs)
    assert sys_ == ["oracle"] and table[("oracle", CLEAN)] == 1.0 and table[("oracle", Condition(0.0, "pink"))] == 0.0


def test_snr_refused_for_prediction_folders(pairs, tmp_path):
    items = load_dataset("pairs", root=pairs, split="all")
    preds = write_predictions(tmp_path / "preds", items)
    with pytest.raises(BadInput, match="--snr needs --model"):
        run_evaluation(items, [PredictionFolder(preds)], conditions=snr_conditions([10]))


def test_parse_snrs():
    assert parse_snrs("30,20, 10,0,-5") == [30, 20, 10, 0, -5]
    assert parse_snrs("6dB") == [6.0]
    for bad in ("", "ten", "inf"):
        with pytest.raises(BadInput):
            parse_snrs(bad)
    with pytest.raises(BadInput):
        snr_conditions([10], noise="violet")


def test_tiny_network_end_to_end(pairs):
    """Our real transcribe path on a randomly initialised tiny network (scores are meaningless, the plumbing is not)."""
    import torch

    from amtcli.config import FeatureConfig
    from amtcli.nets import build_model
    from amtcli.zoo.release import ReleaseConfig

    torch.manual_seed(0)
    cfg = {"channels": (2, 4, 4), "lstm_hidden": 4}
    net = build_model("unet-bilstm", cfg, FeatureConfig())
    release = ReleaseConfig(architecture="unet-bilstm", model_config=cfg, feature_config=FeatureConfig())
    items = load_dataset("pairs", root=pairs, split="all")[:1]
    runs = run_evaluation(
        items, [ModelSystem((net, release), device="cpu", name="tiny")], conditions=snr_conditions([10])
    )
    assert [r.condition.name for r in runs] == ["clean", "10 dB white"]
    counts = runs[0].files[0].counts["note"]
    assert counts.n_ref == 4 and 0 <= counts.tp <= min(counts.n_ref, counts.n_est)


# ------------------------------------------------------------------------------------ reports


@pytest.fixture
def two_runs(pairs):
    from amtcli.audio.io import load_audio

    items = load_dataset("pairs", root=pairs, split="all")
    systems = []
    for name in ("a", "b"):
        s = RecordingSystem(items, name=name)
        if name == "a":
            s.clean = {it.id: load_audio(it.audio, sample_rate=16000) for it in items}
        systems.append(s)
    return run_evaluation(items, systems, conditions=snr_conditions([20, 0]))


def test_json_and_csv_reports(two_runs, tmp_path):
    data = runs_to_dict(two_runs, meta={"dataset": {"name": "pairs"}})
    assert data["settings"]["onset_tolerance_s"] == 0.05 and data["dataset"]["name"] == "pairs"
    assert [(r["system"], r["condition"]) for r in data["runs"]][:3] == [
        ("a", "clean"),
        ("a", "20 dB white"),
        ("a", "0 dB white"),
    ]
    first = data["runs"][0]
    assert first["aggregate"]["micro"]["note"]["f1"] == 1.0 and first["files"][0]["note"]["n_ref"] == 4
    assert data["runs"][3]["aggregate"]["micro"]["note"]["recall"] == 0.0  # system b never answers
    path = write_json(tmp_path / "out" / "r.json", two_runs)
    assert json.loads(path.read_text())["runs"][0]["snr_db"] is None
    rows = list(csv.DictReader(open(write_csv(tmp_path / "r.csv", two_runs))))
    assert len(rows) == 6 * (3 + 2)  # 2 systems x 3 conditions x (3 files + micro + macro)
    micro = [r for r in rows if r["system"] == "a" and r["condition"] == "clean" and r["scope"] == "micro"][0]
    assert float(micro["note_f1"]) == 1.0 and int(micro["note_n_ref"]) == 12
    assert [r for r in rows if r["scope"] == "file"][0]["file"] == "a/take1"


def test_robustness_plot_is_a_png(two_runs, tmp_path):
    path = plot_robustness(tmp_path / "snr.png", two_runs)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert not list(tmp_path.glob(".*tmp*"))
