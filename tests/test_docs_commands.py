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
