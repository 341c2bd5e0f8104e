"""The commands in our own docs run as typed (issue 20 item 11): defaults a user expects."""

from __future__ import annotations

import json

import pytest
from dataset_fixtures import write_pairs
from typer.testing import CliRunner

from amtcli.cli import app

runner = CliRunner()


def test_evaluate_without_model_or_predictions_uses_the_default_model(tmp_path):
    root = write_pairs(tmp_path / "takes", ["take1"])
    js = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", "-d", "pairs", "--root", str(root), "--json", str(js), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "synthetic" in r.output
    assert [s["source"] for s in json.loads(js.read_text())["systems"]] == ["synthetic"]


def test_evaluate_maps_without_data_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AMT_DATA", raising=False)
    r = runner.invoke(app, ["evaluate", "--dataset", "maps"])
    assert r.exit_code == 1, r.output
    assert "AMT_DATA" in r.output and "--root" in r.output and "nothing to score" not in r.output
    monkeypatch.setenv("AMT_DATA", str(tmp_path))
    r = runner.invoke(app, ["evaluate", "--dataset", "maps"])
    assert r.exit_code == 1, r.output
    assert str(tmp_path / "maps") in r.output and "put the data there" in r.output


def test_evaluate_maps_reads_amt_data(tmp_path, monkeypatch):
    """`amt evaluate --dataset maps` with the data in $AMT_DATA/maps runs the default model on it."""
    from dataset_fixtures import write_maps

    write_maps(tmp_path / "maps", {"ENSTDkCl": ["MAPS_MUS-a_ENSTDkCl"]})
    monkeypatch.setenv("AMT_DATA", str(tmp_path))
    r = runner.invoke(app, ["evaluate", "--dataset", "maps", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "maps" in r.output and "synthetic" in r.output


@pytest.fixture
def captured_run(monkeypatch, tmp_path):
    """`amt finetune` up to the training: the arguments run_finetune was called with (nothing trains)."""
    from amtcli.training import finetune

    calls = []
    monkeypatch.setattr(finetune, "run_finetune", lambda **kw: calls.append(kw))
    monkeypatch.chdir(tmp_path)
    return calls


def test_finetune_without_out_gets_a_run_folder_named_after_the_transfer(captured_run, tmp_path):
    r = runner.invoke(app, ["finetune", "--from", "synthetic", "--to", "guitarset"])
    assert r.exit_code == 0, r.output
    assert str(captured_run[-1]["out"]) == "runs/synthetic-to-guitarset"
    assert "runs/synthetic-to-guitarset" in r.output


def test_finetune_never_reuses_an_existing_run_folder_silently(captured_run, tmp_path):
    (tmp_path / "runs" / "synthetic-to-guitarset").mkdir(parents=True)
    (tmp_path / "runs" / "synthetic-to-guitarset" / "metrics.jsonl").write_text("{}\n")
    r = runner.invoke(app, ["finetune", "--from", "synthetic", "--to", "guitarset"])
    assert r.exit_code == 0, r.output
    assert str(captured_run[-1]["out"]) == "runs/synthetic-to-guitarset-2"
    assert "runs/synthetic-to-guitarset-2" in r.output and "already" in r.output
    # --resume continues the latest of them; an explicit --out is used as given
    (tmp_path / "runs" / "synthetic-to-guitarset-2").mkdir()
    r = runner.invoke(app, ["finetune", "--from", "synthetic", "--to", "guitarset", "--resume"])
    assert r.exit_code == 0, r.output
    assert str(captured_run[-1]["out"]) == "runs/synthetic-to-guitarset-2"
    r = runner.invoke(app, ["finetune", "--from", "hf://someone/model@main", "--to", "pairs", "--out", "mine"])
    assert r.exit_code == 0, r.output
    assert str(captured_run[-1]["out"]) == "mine"


def test_finetune_default_folder_names_are_plain(captured_run, tmp_path):
    r = runner.invoke(app, ["finetune", "--from", "hf://someone/my model@v1", "--to", "pairs"])
    assert r.exit_code == 0, r.output
    assert str(captured_run[-1]["out"]) == "runs/my-model-to-pairs"
