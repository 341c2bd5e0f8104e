"""A manifest names files inside its dataset folder only (issue 20 item 9): a crafted line cannot make
amt read (or, rerunning `amt synth`, delete) files elsewhere."""

from __future__ import annotations

import json

import pytest
from conftest import write_sine_dataset
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.datasets import load_dataset
from amtcli.datasets.manifest import read_manifest, row_path
from amtcli.errors import DatasetNotFound

runner = CliRunner()


@pytest.mark.parametrize("field", ["audio", "label", "features"])
@pytest.mark.parametrize(
    "path",
    [
        "../outside.flac",
        "audio/../../outside.flac",
        "/etc/passwd",
        "~/x.flac",
        "audio\\..\\..\\x.flac",
        "audio/./x.flac\0",
    ],
)
def test_paths_that_leave_the_dataset_are_refused(tmp_path, field, path):
    root = write_sine_dataset(tmp_path / "ds", n_items=3, duration_s=1.0)
    (tmp_path / "outside.flac").write_bytes((root / "audio" / "item000.flac").read_bytes())
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    rows[1][field] = path
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetNotFound, match=rf"manifest.jsonl:2: .*{field}"):
        read_manifest(root)
    with pytest.raises(DatasetNotFound, match="manifest.jsonl:2"):
        load_dataset("synthetic", root=root, split="all")
    r = runner.invoke(app, ["evaluate", "-d", "synthetic", "--root", str(root), "--split", "all", "-p", str(tmp_path)])
    assert r.exit_code == 1 and "manifest.jsonl:2" in r.output and "Traceback" not in r.output, r.output


def test_row_path_refuses_a_row_that_was_not_read_from_a_manifest(tmp_path):
    with pytest.raises(DatasetNotFound, match="outside"):
        row_path(tmp_path, {"audio": "../outside.flac"}, "audio")
    assert row_path(tmp_path, {"audio": "audio/a.flac"}, "audio") == tmp_path / "audio" / "a.flac"
    assert row_path(tmp_path, {"features": None}, "features") is None


def test_ordinary_relative_paths_still_read(tmp_path):
    root = write_sine_dataset(tmp_path / "ds", n_items=3, duration_s=1.0)
    assert len(load_dataset("synthetic", root=root, split="all")) == 3
