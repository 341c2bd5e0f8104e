"""`amt transcribe` with beats, quantization, MusicXML, pedal, confidence velocity and --explain."""

import json

import numpy as np
import pytest
from conftest import render_sines
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.config import DECODE_HELP
from amtcli.notes import NoteArray, load_pretty_midi

runner = CliRunner()


@pytest.fixture
def wav(tmp_path):
    from amtcli.audio.io import save_audio

    rows = [(0.5 + 0.5 * i, 0.9 + 0.5 * i, (60, 64, 67, 72)[i % 4], 90) for i in range(8)]
    return save_audio(tmp_path / "in.wav", render_sines(NoteArray.from_lists(rows), duration_s=5.0), sample_rate=16000)


def test_threshold_help_is_the_documented_meaning():
    r = runner.invoke(app, ["transcribe", "--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    for meaning in DECODE_HELP.values():
        assert " ".join(meaning.split()[:6]) in text
    for flag in ("--quantize", "--tempo", "--pedal", "--velocity-from", "--explain", "musicxml"):
        assert flag in text


def test_explain_prints_the_settings_in_use(wav, tmp_path):
    r = runner.invoke(
        app,
        [
            "transcribe",
            str(wav),
            "-o",
            str(tmp_path / "e.mid"),
            "--model",
            "tiny-test",
            "--onset-threshold",
            "0.7",
            "--explain",
        ],
        env={"COLUMNS": "300"},
    )
    assert r.exit_code == 0, r.output
    assert "--onset-threshold" in r.output and "0.7" in r.output and "set (model's" in r.output
    assert "--min-note-s" in r.output and "model's" in r.output
    assert (tmp_path / "e.mid").exists()


def test_musicxml_by_suffix_and_by_format(wav, tmp_path):
    from music21 import converter

    r = runner.invoke(
        app, ["transcribe", str(wav), "-o", str(tmp_path / "s.musicxml"), "--model", "tiny-test", "--tempo", "120"]
    )
    assert r.exit_code == 0, r.output
    converter.parse(str(tmp_path / "s.musicxml"))
    r = runner.invoke(
        app, ["transcribe", str(wav), "-o", str(tmp_path / "out"), "--format", "musicxml", "--model", "tiny-test"]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "in.musicxml").exists()
    # never overwritten without --overwrite
    before = (tmp_path / "s.musicxml").read_bytes()
    r = runner.invoke(app, ["transcribe", str(wav), "-o", str(tmp_path / "s.musicxml"), "--model", "tiny-test"])
    assert r.exit_code != 0 and "already exist" in r.output
    assert (tmp_path / "s.musicxml").read_bytes() == before


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--quantize", "1/7"], "--quantize"),
        (["--quantize", "sixteenth"], "--quantize"),
        (["--velocity-from", "loudness"], "--velocity-from"),
        (["--tempo", "1000"], "--tempo"),
        (["--beats-per-bar", "11"], "--beats-per-bar"),
    ],
)
def test_bad_options_are_one_line_before_any_work(wav, tmp_path, args, needle):
    out = tmp_path / "bad.mid"
    r = runner.invoke(app, ["transcribe", str(wav), "-o", str(out), "--model", "tiny-test", *args])
    assert r.exit_code == 2
    assert needle in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_tempo_quantize_pedal_and_confidence_velocity(wav, tmp_path):
    out = tmp_path / "q.mid"
    r = runner.invoke(
        app,
        [
            "transcribe",
            str(wav),
            "-o",
            str(out),
            "--model",
            "tiny-test",
            "--tempo",
            "90",
            "--quantize",
            "1/8",
            "--pedal",
            "--velocity-from",
            "confidence",
            "--beats-per-bar",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "90 BPM" in r.output and "3/4" in r.output and "quantized" in r.output and "sustain pedal" in r.output
    pm = load_pretty_midi(out)
    _, tempi = pm.get_tempo_changes()
    assert tempi[-1] == pytest.approx(90, abs=0.01)
    assert pm.time_signature_changes[-1].numerator == 3


def test_json_has_confidence_and_beats(wav, tmp_path):
    out = tmp_path / "n.json"
    r = runner.invoke(
        app, ["transcribe", str(wav), "-o", str(out), "--model", "tiny-test", "--quantize", "1/16", "--min-note-s", "0"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert "beats_s" in data and "time_signature" in data
    if data["notes"]:
        assert 0.0 <= data["notes"][0]["confidence"] <= 1.0


@pytest.mark.slow
def test_known_piece_to_musicxml_with_the_bundled_model(tmp_path):
    """A melody at 120 BPM, rendered, transcribed with the bundled model to MusicXML and to JSON with
    the same forced tempo and 1/8 grid: the score holds exactly the JSON's notes, on eighth-note
    positions, and the melody's pitches are among them."""
    from music21 import converter

    from amtcli.audio.io import save_audio

    seq = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65]
    rows = [(0.5 + 0.5 * i, 0.9 + 0.5 * i, p, 100) for i, p in enumerate(seq)]
    wav = save_audio(tmp_path / "m.wav", render_sines(NoteArray.from_lists(rows), duration_s=7.0), sample_rate=16000)
    opts = ["--tempo", "120", "--quantize", "1/8", "--device", "cpu"]
    for out in (tmp_path / "m.musicxml", tmp_path / "m.json"):
        r = runner.invoke(app, ["transcribe", str(wav), "-o", str(out), *opts])
        assert r.exit_code == 0, r.output
    notes = json.loads((tmp_path / "m.json").read_text())["notes"]
    score = converter.parse(str(tmp_path / "m.musicxml"))
    got = sorted(
        (float(n.offset), p.midi) for part in score.parts for n in part.stripTies().flatten().notes for p in n.pitches
    )
    assert sorted(p for _, p in got) == sorted(n["pitch"] for n in notes)
    assert set(seq) <= {p for _, p in got}
    on = np.array([t for t, _ in got])
    np.testing.assert_allclose(on * 2, np.rint(on * 2), atol=1e-9)  # eighth notes
    # the JSON's onsets are 0.25 s apart on the grid from the first note; the score's quarter notes match
    json_on = np.array(sorted(n["onset_s"] for n in notes))
    np.testing.assert_allclose(np.sort(on) - on.min(), (json_on - json_on.min()) * 2, atol=1e-6)
