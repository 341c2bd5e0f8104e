"""model.onnx and the onnxruntime transcription path: export checked against torch, the choice of
backend, stale exports refused, the same notes as torch, and no torch import on the CLI path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import render_sines
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.errors import BadInput, ConfigMismatch, MissingDependency
from amtcli.inference import backends
from amtcli.notes import NoteArray

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "piano.flac"
runner = CliRunner()


@pytest.fixture(scope="module")
def onnx_release(tmp_path_factory):
    """A copy of the bundled tiny-test release with a model.onnx written by amt."""
    from amtcli.zoo import resolve
    from amtcli.zoo.export import write_onnx

    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(resolve("tiny-test"), folder)
    write_onnx(folder)
    return folder


@pytest.fixture
def short_wav(tmp_path):
    from amtcli.audio.io import save_audio

    notes = NoteArray.from_lists([(0.2, 0.7, 60, 100), (0.9, 1.5, 67, 90), (1.6, 2.3, 72, 80)])
    return save_audio(tmp_path / "x.wav", render_sines(notes, duration_s=2.5), sample_rate=16000)


def test_output_kinds_table_matches_the_classes():
    """nets.output_kind answers without importing an architecture; the table must say what the classes say."""
    from amtcli.nets import ARCHITECTURES, OUTPUT_KINDS, _lookup

    assert set(OUTPUT_KINDS) == set(ARCHITECTURES)
    for arch in ARCHITECTURES:
        assert OUTPUT_KINDS[arch] == getattr(_lookup(arch)[0], "output_kind", "frames"), arch


def test_write_onnx_matches_torch_at_any_batch_and_length(onnx_release, rng):
    import torch

    from amtcli.zoo import load_release
    from amtcli.zoo.registry import sha256_file

    model, cfg = load_release(onnx_release)
    net = backends.OnnxTranscriber(onnx_release)
    meta = net.session.get_modelmeta().custom_metadata_map
    assert meta["amtcli.weights_sha256"] == sha256_file(onnx_release / "model.safetensors")
    assert "LSTM" in {node.op_type for node in __import__("onnx").load(str(onnx_release / "model.onnx")).graph.node}
    for shape in [(1, 1), (1, 37), (3, 200)]:
        x = rng.normal(-4.0, 2.0, size=(*shape, cfg.feature_config.n_bins)).astype(np.float32)
        got = net.predict(x)
        with torch.inference_mode():
            want = model.predict(torch.from_numpy(x))
        for head, value in got.items():
            assert value.shape == (*shape, cfg.feature_config.n_keys)
            np.testing.assert_allclose(value, want[head].numpy(), atol=1e-5)


def test_write_onnx_refuses_to_overwrite_and_other_architectures(onnx_release):
    from amtcli.errors import OutputExists
    from amtcli.zoo import resolve
    from amtcli.zoo.export import write_onnx

    with pytest.raises(OutputExists, match="--overwrite"):
        write_onnx(onnx_release)
    with pytest.raises(BadInput, match="no ONNX export"):
        write_onnx(resolve("synthetic-transformer"))


def test_amt_models_onnx_writes_it_again(onnx_release, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(onnx_release, folder)
    (folder / "model.onnx").unlink()
    r = runner.invoke(app, ["models", "onnx", str(folder)])
    assert r.exit_code == 0, r.output
    assert "largest probability difference" in " ".join(r.output.split())  # rich may wrap the line
    assert (folder / "model.onnx").read_bytes() == (onnx_release / "model.onnx").read_bytes()  # reproducible
    r = runner.invoke(app, ["models", "onnx", str(tmp_path / "nowhere")])
    assert r.exit_code != 0 and "no such release folder" in r.output


def _choose(backend, folder, *, device="cpu", architecture="unet-bilstm", precision="auto"):
    return backends.choose_backend(
        backend, device=device, folder=folder, architecture=architecture, precision=precision
    )


def test_choose_backend(onnx_release, tmp_path, monkeypatch):
    assert _choose("auto", onnx_release).name == "onnx"
    assert _choose("onnx", onnx_release).name == "onnx"
    assert _choose("auto", onnx_release, precision="fp32").name == "onnx"
    assert _choose("torch", onnx_release) == backends.Backend("torch", "asked for")
    # auto falls back to torch, saying why; onnx refuses, saying why
    cases = [
        ({"device": "cuda"}, "CPU only"),
        ({"architecture": "transformer"}, "token model"),
        ({"precision": "bf16"}, "precision bf16"),
    ]
    for kwargs, why in cases:
        chosen = _choose("auto", onnx_release, **kwargs)
        assert chosen.name == "torch" and why in chosen.reason
        with pytest.raises(BadInput, match=why):
            _choose("onnx", onnx_release, **kwargs)
    assert "no model.onnx" in _choose("auto", tmp_path).reason
    monkeypatch.setattr(backends, "onnxruntime_version", lambda: None)
    assert _choose("auto", onnx_release).reason == "onnxruntime is not installed"
    with pytest.raises(MissingDependency, match="not installed"):
        _choose("onnx", onnx_release)
    with pytest.raises(BadInput, match="--backend 'tf'"):
        _choose("tf", onnx_release)


def test_a_stale_model_onnx_is_refused(onnx_release, tmp_path, short_wav):
    """New weights without a new model.onnx: refused with the command that fixes it, never used."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "stale"
    shutil.copytree(onnx_release, folder)
    state = load_file(str(folder / "model.safetensors"))
    state["key_bias"] = state["key_bias"] + 1.0
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ConfigMismatch, match="amt models onnx"):
        backends.OnnxTranscriber(folder)
    r = runner.invoke(app, ["transcribe", str(short_wav), "-o", str(tmp_path / "x.mid"), "--model", str(folder)])
    assert r.exit_code != 0
    assert "was not exported from the model.safetensors beside it" in r.output
    assert "Traceback" not in r.output
    # torch still runs the new weights when asked
    r = runner.invoke(
        app,
        ["transcribe", str(short_wav), "-o", str(tmp_path / "x.mid"), "--model", str(folder), "--backend", "torch"],
    )
    assert r.exit_code == 0, r.output


def test_a_broken_model_onnx_is_one_clear_error(onnx_release, tmp_path, short_wav):
    folder = tmp_path / "broken"
    shutil.copytree(onnx_release, folder)
    (folder / "model.onnx").write_bytes(b"not a protobuf")
    r = runner.invoke(app, ["transcribe", str(short_wav), "-o", str(tmp_path / "x.mid"), "--model", str(folder)])
    assert r.exit_code != 0 and "onnxruntime cannot load it" in r.output and "Traceback" not in r.output


def test_cli_backend_errors(short_wav, tmp_path):
    out = str(tmp_path / "x.mid")
    r = runner.invoke(app, ["transcribe", str(short_wav), "-o", out, "--model", "tiny-test", "--backend", "onnx"])
    assert r.exit_code == 2 and "has no model.onnx" in r.output
    r = runner.invoke(app, ["transcribe", str(short_wav), "-o", out, "--backend", "tf"])
    assert r.exit_code == 2 and "expected one of auto, torch, onnx" in r.output
    r = runner.invoke(app, ["transcribe", str(short_wav), "-o", out, "--backend", "onnx", "--precision", "bf16"])
    assert r.exit_code == 2 and "onnxruntime runs fp32" in r.output


def test_explain_names_the_backend_and_the_precision(onnx_release, short_wav, tmp_path):
    r = runner.invoke(
        app, ["transcribe", str(short_wav), "-o", str(tmp_path / "a.mid"), "--model", str(onnx_release), "--explain"]
    )
    assert r.exit_code == 0, r.output
    assert "backend auto -> onnx (onnxruntime" in r.output
    assert "precision auto -> fp32 (onnxruntime)" in r.output
    r = runner.invoke(
        app, ["transcribe", str(short_wav), "-o", str(tmp_path / "b.mid"), "--model", "tiny-test", "--explain"]
    )
    assert r.exit_code == 0, r.output
    assert "backend auto -> torch (" in r.output and "has no model.onnx" in r.output
    assert "precision auto -> fp32 (" in r.output


def test_cli_onnx_and_torch_write_the_same_notes(tmp_path):
    """The bundled model on 12 s of the example: the two backends write identical note lists."""
    from amtcli.audio.io import load_audio, save_audio

    wav = save_audio(tmp_path / "ex.wav", load_audio(EXAMPLE, sample_rate=16000)[: 12 * 16000], sample_rate=16000)
    outputs = {}
    for backend in ("onnx", "torch"):
        out = tmp_path / f"{backend}.csv"
        r = runner.invoke(app, ["transcribe", str(wav), "-o", str(out), "--backend", backend, "--device", "cpu"])
        assert r.exit_code == 0, r.output
        outputs[backend] = out.read_text()
    assert outputs["onnx"].count("\n") > 20
    assert outputs["onnx"] == outputs["torch"]


def test_jobs_on_onnx_give_the_files_one_by_one_gives(onnx_release, tmp_path):
    from amtcli.audio.io import save_audio

    folder = tmp_path / "in"
    folder.mkdir()
    for i, pitch in enumerate((60, 64, 69)):
        notes = NoteArray.from_lists([(0.2, 0.9, pitch, 100), (1.1, 1.8, pitch + 7, 90)])
        save_audio(folder / f"f{i}.wav", render_sines(notes, duration_s=2.0), sample_rate=16000)
    common = ["--model", str(onnx_release), "--format", "csv", "--backend", "onnx"]
    r1 = runner.invoke(app, ["transcribe", str(folder), "-o", str(tmp_path / "one"), *common])
    r2 = runner.invoke(app, ["transcribe", str(folder), "-o", str(tmp_path / "two"), "--jobs", "2", *common])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    for i in range(3):
        assert (tmp_path / "one" / f"f{i}.csv").read_text() == (tmp_path / "two" / f"f{i}.csv").read_text()


DRIVER = """
import sys
from amtcli.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("exit", code, "torch imported:", "torch" in sys.modules)
"""


def test_amt_transcribe_imports_no_torch(short_wav, tmp_path):
    """The whole command on the default model, in a fresh process: torch is never imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("AMT_REGISTRY", None)
    cmd = [sys.executable, "-c", DRIVER, "transcribe", str(short_wav), "-o", str(tmp_path / "x.mid"), "--explain"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert "exit 0 torch imported: False" in proc.stdout, proc.stdout + proc.stderr
    assert "backend auto -> onnx" in proc.stdout
    assert (tmp_path / "x.mid").is_file()
    # the driver can tell: with --backend torch the same command imports it
    cmd += ["--backend", "torch", "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert "exit 0 torch imported: True" in proc.stdout, proc.stdout + proc.stderr


def test_auto_device_without_a_gpu_driver_imports_no_torch(monkeypatch):
    from amtcli import devices

    monkeypatch.setattr(devices, "cuda_possible", lambda: False)
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now raises
    assert devices.resolve_device("auto") == "cpu"
    assert devices.resolve_device("cpu") == "cpu"
    assert devices.check_precision(None) == "auto"
    with pytest.raises(BadInput, match="--precision"):
        devices.check_precision("fp8")


def test_cuda_is_not_possible_with_a_cpu_build_of_torch(monkeypatch):
    import importlib.metadata

    from amtcli import devices

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.13.0+cpu")
    assert devices.cuda_possible() is False


def test_amt_info_names_the_backend(monkeypatch):
    r = runner.invoke(app, ["info", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "backend auto -> onnx for models with a model.onnx (onnxruntime" in " ".join(r.output.split())
    monkeypatch.setattr(backends, "onnxruntime_version", lambda: None)
    r = runner.invoke(app, ["info", "--device", "cpu"])
    assert "backend auto -> torch (onnxruntime is not installed)" in " ".join(r.output.split())


def test_amt_identify_by_transcription_imports_no_torch(short_wav, tmp_path):
    """amt identify transcribes on the same backend as amt transcribe: onnxruntime for the default model."""
    from amtcli.notes import NoteArray, notes_to_midi

    library = tmp_path / "library"
    library.mkdir()
    notes = NoteArray.from_lists([(0.2 * i, 0.2 * i + 0.3, 60 + (i * 5) % 12, 90) for i in range(20)])
    notes_to_midi(notes, library / "a.mid")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("AMT_REGISTRY", None)
    cmd = [sys.executable, "-c", DRIVER, "identify", str(short_wav), "--library", str(library)]
    cmd += ["--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert "exit 0 torch imported: False" in proc.stdout, proc.stdout + proc.stderr
    assert "notes transcribed" in proc.stdout and "a.mid" in proc.stdout
