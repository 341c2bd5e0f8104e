"""`amt evaluate` through the CLI: prediction folders, messages and exit codes, JSON/CSV outputs."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from dataset_fixtures import write_guitarset, write_maestro, write_pairs
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.datasets import load_dataset
from amtcli.notes import notes_to_midi

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, ["evaluate", *map(str, args)], **kwargs)


@pytest.fixture
def pairs_and_preds(tmp_path):
    root = write_pairs(tmp_path / "takes", ["take1", "take2", "sub/take3", "sub/take4"])
    preds = tmp_path / "tool"
    for it in load_dataset("pairs", root=root, split="all"):
        notes = it.load_notes()
        notes_to_midi(notes if it.id != "take2" else notes[:2], preds / f"{it.audio.stem}.mid")
    return root, preds


def test_predictions_on_pairs(pairs_and_preds):
    root, preds = pairs_and_preds
    result = invoke("--root", root, "--predictions", preds, "--per-file")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "4 recording(s)" in out and "take2" in out and "sub/take3" in out
    # 14 of 16 notes found, none wrong: micro note P 1.000, R 0.875
    note_row = [line for line in out.splitlines() if re.search(r"│ Note\s+│", line)]
    assert len(note_row) == 1
    cells = [c.strip() for c in note_row[0].split("│")[3:-1]]  # micro P R F1, macro P R F1
    assert cells == ["1.000", "0.875", "0.933", "1.000", "0.875", "0.917"]


def test_json_and_csv_outputs_and_overwrite(pairs_and_preds, tmp_path):
    root, preds = pairs_and_preds
    js, cs = tmp_path / "out" / "scores.json", tmp_path / "scores.csv"
    result = invoke("-d", "pairs", "--root", root, "-p", preds, "--json", js, "--csv", cs)
    assert result.exit_code == 0, result.output
    data = json.loads(js.read_text())
    assert data["dataset"]["n_items"] == 4 and data["systems"][0] == {
        "name": "tool",
        "kind": "predictions",
        "source": str(preds),
    }
    micro = data["runs"][0]["aggregate"]["micro"]["note"]
    assert (micro["tp"], micro["n_ref"], micro["n_est"]) == (14, 16, 14)
    assert data["runs"][0]["aggregate"]["macro"]["note"]["recall"] == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    rows = list(csv.DictReader(cs.open()))
    assert [r["scope"] for r in rows] == ["file"] * 4 + ["micro", "macro"]
    before = js.read_text()
    again = invoke("--root", root, "-p", preds, "--json", js)
    assert again.exit_code == 1 and "already exists" in again.stderr and "--overwrite" in again.stderr
    assert js.read_text() == before
    assert invoke("--root", root, "-p", preds, "--json", js, "--overwrite").exit_code == 0


def test_limit_and_split(pairs_and_preds, tmp_path):
    root, preds = pairs_and_preds
    js = tmp_path / "l.json"
    assert invoke("--root", root, "-p", preds, "--limit", "2", "--json", js).exit_code == 0
    assert [f["id"] for f in json.loads(js.read_text())["runs"][0]["files"]] == ["sub/take3", "sub/take4"]
    result = invoke("--root", root, "-p", preds, "--split", "train", "--json", js, "--overwrite")
    assert result.exit_code == 0 and json.loads(js.read_text())["dataset"]["split"] == "train"


def test_two_prediction_folders_side_by_side(pairs_and_preds, tmp_path):
    root, preds = pairs_and_preds
    other = tmp_path / "other"
    for it in load_dataset("pairs", root=root, split="all"):
        notes_to_midi(it.load_notes().shifted(seconds=0.1), other / f"{it.audio.stem}.mid")
    js = tmp_path / "both.json"
    result = invoke("--root", root, "-p", preds, "-p", other, "--json", js)
    assert result.exit_code == 0, result.output
    runs = json.loads(js.read_text())["runs"]
    assert [r["system"] for r in runs] == ["tool", "other"]
    assert runs[1]["aggregate"]["micro"]["note"]["f1"] == 0.0  # onsets 100 ms late


def test_missing_dataset_is_one_line_and_exit_1(tmp_path, monkeypatch):
    monkeypatch.delenv("AMT_DATA", raising=False)
    result = invoke("-d", "maestro", "-p", tmp_path)
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("error: maestro:") and "AMT_DATA" in err and "--root" in err
    assert "magenta.tensorflow.org/datasets/maestro" in err and "Traceback" not in result.output
    monkeypatch.setenv("AMT_DATA", str(tmp_path))
    result = invoke("-d", "guitarset", "-p", tmp_path)
    assert result.exit_code == 1 and str(tmp_path / "guitarset") in result.stderr


def test_user_errors_exit_2(pairs_and_preds, tmp_path):
    root, preds = pairs_and_preds
    cases = [
        (("-p", preds, "--snr", "10,0"), "--snr needs --model"),
        (("-p", preds, "--plot", tmp_path / "x.png"), "give --snr too"),
        (("-p", preds, "--task", "retrieval"), "--predictions is for transcription"),
        (("-p", preds, "--task", "dance"), "unknown --task"),
        (("-p", preds, "--split", "dev"), "unknown split"),
        (("-p", preds, "--noise", "violet"), "unknown --noise"),
        (("-p", tmp_path / "nope"), "not a folder"),
        (("-p", preds, "--audio-variant", "mono-mic"), "guitarset only"),
    ]
    for args, message in cases:
        result = invoke("--root", root, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_missing_prediction_file_is_named(pairs_and_preds):
    root, preds = pairs_and_preds
    (preds / "take3.mid").unlink()
    result = invoke("--root", root, "-p", preds)
    assert result.exit_code == 2 and "take3.mid" in result.stderr


def test_empty_split_says_what_there_is(tmp_path):
    root = write_maestro(
        tmp_path / "maestro",
        fmt="v3csv",
        records=[
            (
                "2004/MIDI-Unprocessed_XP_01_R1_2004_01-02_ORIG_MID--AUDIO_01_R1_2004_01_Track01_wav",
                "train",
                "Bach",
                "Fugue",
            ),
        ],
    )
    result = invoke("-d", "maestro", "--root", root, "-p", tmp_path)
    assert result.exit_code == 2 and "no recordings in split 'test' (found: train 1)" in result.stderr


def test_guitarset_with_predictions_has_no_velocity_score(tmp_path):
    root = write_guitarset(tmp_path / "gs", ["00_BN1-129-Eb_comp", "00_BN1-129-Eb_solo"])
    preds = tmp_path / "preds"
    for it in load_dataset("guitarset", root=root, split="all"):
        notes_to_midi(it.load_notes(), preds / f"{it.id}.mid")  # named by the item id, not the _mic audio stem
    js = tmp_path / "gs.json"
    result = invoke("-d", "guitarset", "--root", root, "--split", "all", "-p", preds, "--json", js)
    assert result.exit_code == 0, result.output
    agg = json.loads(js.read_text())["runs"][0]["aggregate"]["micro"]
    assert agg["note"]["f1"] == 1.0 and agg["note_offset_velocity"] is None


@pytest.mark.slow
def test_model_end_to_end_with_snr_sweep(tmp_path):
    """The bundled tiny random model through transcribe, a noise sweep, the plot and the JSON."""
    root = write_pairs(tmp_path / "takes", ["take1"])
    js, png = tmp_path / "r.json", tmp_path / "snr.png"
    result = invoke(
        "--root",
        root,
        "-m",
        "tiny-test",
        "--device",
        "cpu",
        "--snr",
        "10",
        "--noise",
        "brown",
        "--json",
        js,
        "--plot",
        png,
    )
    assert result.exit_code == 0, result.output
    assert "F1 against SNR (brown noise" in result.stdout and "10 dB" in result.stdout
    data = json.loads(js.read_text())
    assert data["systems"][0]["kind"] == "model" and data["noise"] == {"snr_db": [10.0], "kind": "brown", "seed": 0}
    assert [r["condition"] for r in data["runs"]] == ["clean", "10 dB brown"]
    note = data["runs"][0]["files"][0]["note"]
    assert note["n_ref"] == 4 and 0 <= note["tp"] <= note["n_est"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = invoke("--root", root, "-m", "no-such-model")
    assert bad.exit_code != 0 and "no-such-model" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_snr_sweep_with_a_noise_recording(tmp_path):
    from amtcli.audio.io import save_audio

    root = write_pairs(tmp_path / "takes", ["take1"])
    fan = save_audio(
        tmp_path / "fan.wav",
        0.1 * np.random.default_rng(0).standard_normal(24000).astype(np.float32),
        sample_rate=16000,
    )
    js = tmp_path / "r.json"
    args = ("--root", root, "-m", "tiny-test", "--device", "cpu", "--snr", "10", "--noise", fan, "--json", js)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "F1 against SNR (fan.wav noise" in result.stdout
    data = json.loads(js.read_text())
    assert data["noise"]["kind"] == str(fan.resolve())  # the file it was, for a rerun
    assert [r["condition"] for r in data["runs"]] == ["clean", "10 dB fan.wav"]
    # without --snr a noise file has nothing to do; a bad one fails before any work, in one line
    no_snr = invoke("--root", root, "-m", "tiny-test", "--noise", fan)
    assert no_snr.exit_code == 2 and "give --snr too" in no_snr.stderr
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000, np.float32), sample_rate=16000)
    bad = invoke("--root", root, "-m", "tiny-test", "--snr", "10", "--noise", silent)
    assert bad.exit_code != 0 and "silence" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
