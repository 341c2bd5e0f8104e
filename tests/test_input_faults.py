"""Bad input is said out loud: truncated audio, malformed JSAMS/JAMS, unreadable references in `amt evaluate`."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from dataset_fixtures import write_guitarset, write_pairs
from typer.testing import CliRunner

from amtcli.audio.io import load_audio, save_audio
from amtcli.cli import app
from amtcli.datasets import load_dataset
from amtcli.datasets.base import read_jams_notes
from amtcli.errors import AmtWarning, BadMidi
from amtcli.notes import notes_to_midi

runner = CliRunner()


# ------------------------------------------------------------------------ item 8: truncated WAV


def _truncated_wav(tmp_path, keep: float):
    full = save_audio(
        tmp_path / "full.wav", (0.1 * np.sin(np.arange(160000) / 7)).astype(np.float32), sample_rate=16000
    )
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def test_a_truncated_wav_warns_with_how_much_is_missing(tmp_path):
    cut = _truncated_wav(tmp_path, keep=0.01)
    with pytest.warns(AmtWarning, match=r"cut\.wav: truncated.* 10\.0 s.* 0\.1 s"):
        y = load_audio(cut)
    assert 0 < len(y) < 16000 * 0.2


def test_a_complete_wav_does_not_warn(tmp_path):
    full = save_audio(tmp_path / "full.wav", np.zeros(16000, np.float32), sample_rate=16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AmtWarning)
        load_audio(full)


def test_amt_transcribe_shows_the_truncation_warning(tmp_path):
    cut = _truncated_wav(tmp_path, keep=0.5)
    r = runner.invoke(
        app, ["transcribe", str(cut), "-o", str(tmp_path / "cut.mid"), "-m", "tiny-test", "--device", "cpu"]
    )
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "truncated" in r.output and "Traceback" not in r.output


def test_a_batch_names_the_truncated_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _truncated_wav(tmp_path, keep=0.5).rename(folder / "cut.wav")
    save_audio(folder / "ok.wav", np.zeros(16000, np.float32), sample_rate=16000)
    r = runner.invoke(
        app, ["transcribe", str(folder), "-o", str(tmp_path / "out"), "-m", "tiny-test", "--device", "cpu"]
    )
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "cut.wav: truncated" in r.output


# ------------------------------------------------------------------ items 7, 8: JAMS structure


def _jams(tmp_path, data, *, namespace="note_midi", doc=None):
    path = tmp_path / "x.jams"
    path.write_text(json.dumps(doc if doc is not None else {"annotations": [{"namespace": namespace, "data": data}]}))
    return path


@pytest.mark.parametrize(
    "data, field",
    [
        ([{"time": 0.5, "value": 60.0}], "duration"),
        ([{"time": 0.5, "duration": 0.2, "value": "C4"}], "value"),
        ([{"time": 0.5, "duration": 0.2, "value": float("nan")}], "value"),
        ([{"time": 0.5, "duration": 0.2, "value": 300}], "value"),
        ([{"time": -1.0, "duration": 0.2, "value": 60}], "time"),
        ([{"time": 0.5, "duration": float("inf"), "value": 60}], "duration"),
        ([{"time": True, "duration": 0.2, "value": 60}], "time"),
        ([7], "observation"),
        ({"time": [0.5, 1.0], "duration": [0.2], "value": [60, 62]}, "length"),
        ({"time": [0.5], "duration": [0.2], "value": [None]}, "value"),
        ("notes", "data"),
    ],
)
def test_malformed_jams_is_one_line_naming_the_file_and_field(tmp_path, data, field):
    path = _jams(tmp_path, data)
    with pytest.raises(BadMidi) as info:
        read_jams_notes(path)
    message = str(info.value)
    assert str(path) in message and field in message and "\n" not in message


@pytest.mark.parametrize(
    "doc", [[1, 2], {"annotations": "none"}, {"annotations": [5]}, {"annotations": [{"namespace": "note_midi"}]}]
)
def test_jams_that_is_not_shaped_like_jams(tmp_path, doc):
    with pytest.raises(BadMidi, match="x.jams"):
        read_jams_notes(_jams(tmp_path, None, doc=doc))


def test_good_jams_still_reads(tmp_path):
    notes = read_jams_notes(_jams(tmp_path, [{"time": 0.5, "duration": 0.25, "value": 59.7, "confidence": None}]))
    assert notes.pitch.tolist() == [60] and notes.offset_s.tolist() == [0.75]


# ------------------------------------------------------------------- item 8: amt evaluate


def _evaluate(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_evaluate_names_what_the_reader_skipped(tmp_path):
    root = write_pairs(tmp_path / "takes", ["take1", "take2"])
    save_audio(root / "lonely.wav", np.zeros(8000, np.float32), sample_rate=16000)
    preds = tmp_path / "preds"
    for it in load_dataset("pairs", root=root, split="all"):
        notes_to_midi(it.load_notes(), preds / f"{it.audio.stem}.mid")
    r = _evaluate("--root", root, "-p", preds)
    assert r.exit_code == 0, r.output
    assert "lonely.wav" in r.output and "no same-stem MIDI" in r.output


def test_a_corrupt_reference_is_skipped_with_its_name(tmp_path):
    root = write_guitarset(tmp_path / "gs", ["00_BN1-129-Eb_comp", "00_BN1-129-Eb_solo", "01_Jazz2-110-Bb_comp"])
    preds = tmp_path / "preds"
    for it in load_dataset("guitarset", root=root, split="all"):
        notes_to_midi(it.load_notes(), preds / f"{it.id}.mid")
    bad = root / "annotation" / "00_BN1-129-Eb_solo.jams"
    doc = json.loads(bad.read_text())
    notes = next(a for a in doc["annotations"] if a["namespace"] == "note_midi" and a["data"])
    notes["data"][0]["value"] = float("nan")
    bad.write_text(json.dumps(doc))
    js = tmp_path / "r.json"
    r = _evaluate("-d", "guitarset", "--root", root, "--split", "all", "-p", preds, "--json", js)
    assert r.exit_code == 0, r.output
    assert "00_BN1-129-Eb_solo" in r.output and "value" in r.output and "Traceback" not in r.output
    data = json.loads(js.read_text())
    assert [f["id"] for f in data["runs"][0]["files"]] == ["00_BN1-129-Eb_comp", "01_Jazz2-110-Bb_comp"]
    assert any("00_BN1-129-Eb_solo" in s["path"] for s in data["dataset"]["skipped"])


def test_evaluate_with_every_reference_unreadable_is_one_error(tmp_path):
    root = write_pairs(tmp_path / "takes", ["take1"])
    preds = tmp_path / "preds"
    notes_to_midi(load_dataset("pairs", root=root, split="all")[0].load_notes(), preds / "take1.mid")
    (root / "take1.mid").write_bytes(b"MThd junk")
    r = _evaluate("--root", root, "-p", preds)
    assert r.exit_code not in (0, 70), r.output
    assert "take1" in r.output and "Traceback" not in r.output


@pytest.mark.data
def test_real_annotations_and_recordings_pass_the_checks(shared_data):
    """The checks refuse damage, not real data: every real JAMS, MAPS text and MAESTRO MIDI reads, and
    no real recording is taken for truncated."""
    real = shared_data / "real"
    for name, folder in (
        ("guitarset", "guitarset"),
        ("guitarset", "guitarset_real"),
        ("maps", "maps"),
        ("maestro", "maestro"),
    ):
        for item in load_dataset(name, root=real / folder, split="all"):
            assert len(item.load_notes()) > 0, item.label
            with warnings.catch_warnings():
                warnings.simplefilter("error", AmtWarning)
                load_audio(item.audio)
