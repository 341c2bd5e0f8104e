"""Retrieval measures against hand-computed ranks, chance levels, and the evaluation on a tiny dataset."""

from __future__ import annotations

import numpy as np
import pytest

from amtcli.evaluation.retrieval import (
    chance_metrics,
    chance_transcription_measure,
    ranks_from_similarity,
    retrieval_metrics,
    score_retrieval,
    transcription_measure,
)


def test_ranks_by_hand():
    sim = np.array(
        [
            [0.9, 0.1, 0.2, 0.0],  # own match best -> rank 1
            [0.5, 0.3, 0.4, 0.1],  # 0.5 and 0.4 beat 0.3 -> rank 3
            [0.2, 0.8, 0.1, 0.9],  # everything beats 0.1 -> rank 4
            [0.0, 0.6, 0.0, 0.5],  # only 0.6 beats it -> rank 2
        ]
    )
    assert ranks_from_similarity(sim).tolist() == [1, 3, 4, 2]


def test_ties_count_against_the_query():
    assert ranks_from_similarity(np.ones((3, 3))).tolist() == [3, 3, 3]


def test_metrics_by_hand():
    m = retrieval_metrics(np.array([1, 3, 4, 2]), ks=(1, 2, 25))
    assert m["R@1"] == 0.25 and m["R@2"] == 0.5 and m["R@25"] == 1.0
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 4 + 1 / 2) / 4)
    assert m["MR"] == 2.5


def test_chance_matches_random_rankings(rng):
    n = 50
    c = chance_metrics(n)
    assert c["R@1"] == 1 / 50 and c["R@5"] == 5 / 50 and c["R@25"] == 0.5
    assert c["MRR"] == pytest.approx(sum(1 / k for k in range(1, 51)) / 50)
    assert c["MR"] == 25.5
    # a simulation of random similarity agrees with the expectations
    ranks = np.concatenate([ranks_from_similarity(rng.random((n, n))) for _ in range(200)])
    sim = retrieval_metrics(ranks)
    assert sim["R@5"] == pytest.approx(c["R@5"], abs=0.01)
    assert sim["MRR"] == pytest.approx(c["MRR"], abs=0.01)
    assert abs(sim["MR"] - c["MR"]) <= 1.0


def test_transcription_measure_by_hand():
    true = np.zeros((2, 2, 3))
    pred = np.zeros((2, 2, 3))
    true[0, :, 0] = 1  # 2 cells
    pred[0, 0, 0] = pred[0, 0, 1] = 1  # 1 TP, 1 FP, 1 FN
    true[1, 0, 2] = pred[1, 0, 2] = 1  # 1 TP
    assert transcription_measure(pred, true) == pytest.approx(2 / 2)
    assert transcription_measure(true, true) == float("inf")


def test_chance_transcription_measure_by_hand():
    rolls = np.zeros((2, 1, 2))
    rolls[0, 0, 0] = 1
    rolls[1, 0, :] = 1
    # pairs (i, j): (0,0) TP1 err0; (0,1) TP1 err1; (1,0) TP1 err1; (1,1) TP2 err0 -> TP 5/2, errors 2/2
    assert chance_transcription_measure(rolls) == pytest.approx(2.5 / 1.0)


def test_score_retrieval_perfect_embedding():
    rolls = np.eye(4).reshape(4, 1, 4)
    emb = np.eye(4, dtype=np.float32)
    m = score_retrieval(emb, emb, rolls)
    assert m["R@1"] == 1.0 and m["MRR"] == 1.0 and m["MR"] == 1.0 and m["TM"] == float("inf")
    # a shuffled score side: every nearest neighbour is wrong
    m = score_retrieval(emb, emb[[1, 2, 3, 0]], rolls)
    assert m["R@1"] == 0.0 and m["MR"] == 4.0 and m["TM"] == 0.0


def test_evaluate_on_tiny_dataset(tmp_path):
    import torch
    from test_embedding import TINY, make_pair_dataset

    from amtcli.config import FeatureConfig
    from amtcli.datasets.embedding_pairs import load_pair_items
    from amtcli.evaluation.retrieval import evaluate_retrieval
    from amtcli.nets import build_model

    root = make_pair_dataset(tmp_path, n_pieces=3, renders=2, splits=["test"] * 3, duration_s=4.0)
    items = load_pair_items(root, feature_config=FeatureConfig(), splits=["test"])
    torch.manual_seed(1)
    model = build_model("embedding", TINY)
    report = evaluate_retrieval(model, items, n_snippets=1000, seed=0)
    n = report.n  # every non-overlapping window with notes: about 4 per 4-second piece
    assert 9 <= n <= 15 and report.n_pieces == 3
    assert set(report.rows) == {"model", "untrained", "chance"}
    assert report.rows["chance"]["R@1"] == pytest.approx(1 / n)
    assert report.rows["chance"]["MR"] == (n + 1) / 2
    for row in report.rows.values():
        assert 0 <= row["R@1"] <= row["R@5"] <= row["R@25"] == 1.0
    small = evaluate_retrieval(model, items, n_snippets=5, seed=0, with_untrained=False)
    assert small.n == 5 and set(small.rows) == {"model", "chance"}


def test_amt_evaluate_task_retrieval(tmp_path):
    import json

    import torch
    from test_embedding import TINY, make_pair_dataset
    from typer.testing import CliRunner

    from amtcli.cli import app
    from amtcli.nets import build_model
    from amtcli.zoo.release import save_release

    root = make_pair_dataset(tmp_path / "ds", n_pieces=3, renders=1, splits=["test", "test", "train"], duration_s=4.0)
    torch.manual_seed(0)
    release = save_release(build_model("embedding", TINY), tmp_path / "emb")
    runner = CliRunner()
    args = ["evaluate", "--task", "retrieval", "-d", "synthetic", "--root", str(root), "-m", str(release)]
    out = tmp_path / "r.json"
    result = runner.invoke(app, args + ["--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("untrained (same shape)", "chance", "R@1 ↑", "MR ↓", "from 2 pieces"):
        assert name in result.output
    doc = json.loads(out.read_text())
    assert doc["dataset"]["split"] == "test" and doc["n_pieces"] == 2
    n = doc["n"]
    assert doc["rows"]["chance"]["MR"] == (n + 1) / 2
    assert set(doc["rows"]) == {str(release), "untrained (same shape)", "chance"}
    again = runner.invoke(app, args + ["--json", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    wrong = runner.invoke(app, ["evaluate", "--task", "retrieval", "-d", "maestro", "-m", str(release)])
    assert wrong.exit_code == 2 and "-d synthetic" in wrong.output
