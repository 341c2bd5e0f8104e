"""`amt transcribe` end to end: a tiny model trained here for a few seconds, and bad input."""

import json

import numpy as np
import pytest
from conftest import render_sines
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.config import FeatureConfig, TrainConfig
from amtcli.notes import NoteArray, midi_to_notes

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_trained(sine_dataset, tmp_path_factory):
    """A tiny U-Net+BiLSTM trained on the sine dataset, exported as a release folder."""
    from amtcli.nets import build_model
    from amtcli.training.checkpoints import load_checkpoint
    from amtcli.training.loop import RunSpec, train_transcriber
    from amtcli.zoo.release import save_release

    root = tmp_path_factory.mktemp("tiny")
    tc = TrainConfig(
        steps=150, batch_size=4, crop_s=3.0, val_every=50, warmup_steps=5, lr=1e-2, lr_min=1e-3, pitch_balanced=True
    )
    spec = RunSpec(
        "unet-bilstm", {"channels": [4, 8, 8], "lstm_hidden": 8}, FeatureConfig(), tc, data=[str(sine_dataset)]
    )
    best = train_transcriber(spec, out_dir=root / "run")
    model = build_model("unet-bilstm", spec.model_config)
    model.load_state_dict(load_checkpoint(best)["model"])
    cfg = json.loads((root / "run" / "config.json").read_text())
    from amtcli.config import DecodeConfig, from_dict

    return save_release(
        model, root / "release", decode_config=from_dict(DecodeConfig, cfg["decode_config"]), card="tiny"
    )


@pytest.mark.slow
def test_transcribes_a_rendered_example(tiny_trained, tmp_path):
    from amtcli.audio.io import save_audio
    from amtcli.evaluation.metrics import note_counts

    notes = NoteArray.from_lists([(0.3, 0.8, 60, 100), (1.0, 1.4, 67, 90), (1.6, 2.2, 72, 80), (2.5, 3.0, 64, 100)])
    wav = save_audio(tmp_path / "x.wav", render_sines(notes, duration_s=3.5), sample_rate=16000)
    out = tmp_path / "x.mid"
    r = runner.invoke(app, ["transcribe", str(wav), "-o", str(out), "--model", str(tiny_trained), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    est = midi_to_notes(out)
    assert note_counts(notes, est, with_velocity=False)["note"].f1 >= 0.75
    # csv and json outputs and the plot
    r = runner.invoke(
        app, ["transcribe", str(wav), "-o", str(tmp_path / "x.json"), "--model", str(tiny_trained), "--plot"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "x.json").read_text())
    assert {"onset_s", "offset_s", "pitch", "velocity"} <= set(data["notes"][0])
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_never_overwrites(tmp_path):
    from amtcli.audio.io import save_audio

    wav = save_audio(tmp_path / "a.wav", np.zeros(16000, np.float32), sample_rate=16000)
    out = tmp_path / "a.mid"
    out.write_bytes(b"precious")
    r = runner.invoke(app, ["transcribe", str(wav), "-o", str(out), "--model", "tiny-test"])
    assert r.exit_code != 0
    assert "already exists" in r.output and "Traceback" not in r.output
    assert out.read_bytes() == b"precious"
    r = runner.invoke(app, ["transcribe", str(wav), "-o", str(out), "--model", "tiny-test", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"MThd"


def test_folder_goes_on_after_a_bad_file(tmp_path):
    from amtcli.audio.io import save_audio

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    save_audio(src / "good.wav", np.zeros(8000, np.float32), sample_rate=16000)
    save_audio(src / "sub" / "good2.flac", np.zeros(8000, np.float32), sample_rate=16000)
    (src / "bad.wav").write_text("not audio")
    r = runner.invoke(
        app, ["transcribe", str(src), "-o", str(tmp_path / "out"), "--model", "tiny-test", "--format", "csv"]
    )
    assert r.exit_code == 1
    assert (tmp_path / "out" / "good.csv").is_file()
    assert (tmp_path / "out" / "sub" / "good2.csv").is_file()
    assert "bad.wav" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.wav"], "no such file"),
        (["{wav}", "--device", "tpu"], "--device"),
        (["{wav}", "--model", "no-such-model"], "no-such-model"),
        (["{wav}", "--format", "mp4"], "--format"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    from amtcli.audio.io import save_audio

    wav = save_audio(tmp_path / "a.wav", np.zeros(1600, np.float32), sample_rate=16000)
    args = [a.replace("{wav}", str(wav)) for a in args]
    r = runner.invoke(app, ["transcribe", *args, "-o", str(tmp_path / "o.mid")])
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
