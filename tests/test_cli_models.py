"""`amt models` through the CLI: list, info, download (against the local fake Hub), export."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner
from zoo_support import COMMIT, REPO_ID, fake_hub, hub_env, no_network, toy_arch, toy_zoo  # noqa: F401

from amtcli.cli import app, common
from amtcli.config import DecodeConfig, FeatureConfig, TrainConfig, to_dict
from amtcli.nets import build_model
from amtcli.zoo import hub, load_release, registry

runner = CliRunner()

TINY = {"harmonics": [1.0, 2.0], "channels": [2, 4, 4], "lstm_hidden": 4, "dropout": 0.0}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Fresh consoles 200 columns wide so table cells are not wrapped in the captured output."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("AMT_REGISTRY", raising=False)
    monkeypatch.setattr(common, "_console", None)
    monkeypatch.setattr(common, "_err_console", None)


def invoke(*args, **kwargs):
    return runner.invoke(app, ["models", *map(str, args)], **kwargs)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


# --------------------------------------------------------------------------------------- list/info


def test_list_shows_the_bundled_test_model(no_network):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "tiny-test" in line)
    size = registry.get_entry("tiny-test").size
    assert "unet-bilstm" in row and "bundled" in row and f"{size / 1000:.1f} kB" in row


def test_list_says_remote_then_cached(toy_zoo):
    fake, _ = toy_zoo
    row = lambda out: next(line for line in out.splitlines() if line.strip("│ ").startswith("toy "))  # noqa: E731
    first = invoke("list")
    assert first.exit_code == 0, first.output
    assert "remote" in row(first.stdout) and "note_f1 0.500" in row(first.stdout)
    assert fake.count() == 0  # listing never touches the network
    assert invoke("download", "toy").exit_code == 0
    assert "cached" in row(invoke("list").stdout)


def test_info_shows_entry_card_and_config(no_network):
    result = invoke("info", "tiny-test")
    assert result.exit_code == 0, result.output
    out = result.stdout
    entry = registry.get_entry("tiny-test")
    assert entry.files["model.safetensors"].sha256 in out
    assert '"architecture": "unet-bilstm"' in out  # config.json
    assert "never trained" in out  # the model card


def test_info_of_a_remote_model_does_not_download(toy_zoo):
    fake, _ = toy_zoo
    result = invoke("info", "toy")
    assert result.exit_code == 0, result.output
    assert "Not downloaded" in result.stdout and f"{REPO_ID} @ {COMMIT}" in result.stdout
    assert fake.count() == 0


def test_info_unknown_name_is_one_line():
    result = invoke("info", "nope")
    assert result.exit_code == 1
    assert "'nope' is not a model name" in one_error_line(result)


# ---------------------------------------------------------------------------------------- download


def test_download_from_the_local_hub(toy_zoo):
    fake, files = toy_zoo
    result = invoke("download", "toy")
    assert result.exit_code == 0, result.output
    assert "downloaded, sha256 verified" in result.stdout and COMMIT in result.stdout
    assert fake.count("GET") == len(files)
    for name, data in files.items():
        assert hub.cached_path(REPO_ID, name, revision=COMMIT).read_bytes() == data
    again = invoke("download", "toy")
    assert again.exit_code == 0 and "already in the Hub cache" in again.output
    assert fake.count("GET") == len(files)


def test_download_tampered_file_is_one_line_error(toy_zoo):
    fake, _ = toy_zoo
    fake.tamper(REPO_ID, COMMIT, "model.safetensors")
    result = invoke("download", "toy")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "model 'toy': model.safetensors" in line and "failed its checksum" in line and "deleted" in line
    assert hub.cached_path(REPO_ID, "model.safetensors", revision=COMMIT) is None


def test_download_offline_names_the_variable(toy_zoo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("download", "toy")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "HF_HUB_OFFLINE=1" in line and "'toy'" in line


def test_download_unknown_name_fails_before_downloading_anything(toy_zoo):
    fake, _ = toy_zoo
    result = invoke("download", "toy", "nope")
    assert result.exit_code == 1 and "'nope'" in one_error_line(result)
    assert fake.count() == 0


def test_download_bundled_model_is_a_no_op(no_network):
    result = invoke("download", "tiny-test")
    assert result.exit_code == 0, result.output
    assert "bundled with amt; nothing to download" in result.output


# ------------------------------------------------------------------------------------------ export


@pytest.fixture
def run_dir(tmp_path):
    """A training run in the layout amtcli.training writes, with a tiny U-Net+BiLSTM."""
    run = tmp_path / "runs" / "demo"
    (run / "checkpoints").mkdir(parents=True)
    spec = {
        "architecture": "unet-bilstm",
        "model_config": TINY,
        "feature_config": to_dict(FeatureConfig()),
        "decode_config": to_dict(DecodeConfig(onset_threshold=0.42)),
        "train_config": to_dict(TrainConfig(steps=40, batch_size=2)),
        "data": ["synthetic:/data/synth-piano"],
        "init_from": None,
    }
    (run / "config.json").write_text(json.dumps(spec))
    torch.manual_seed(1)
    model = build_model("unet-bilstm", TINY, FeatureConfig())
    for step, tag in ((20, "best"), (40, "last")):
        with torch.no_grad():
            model.key_bias.fill_(float(step))
        torch.save(
            {"model": model.state_dict(), "optimizer": {}, "step": step, "best_f1": 0.25, "config": json.dumps(spec)},
            run / "checkpoints" / f"{tag}.pt",
        )
    lines = [
        {"step": 10, "loss": 1.0},
        {"step": 20, "val": {"note_f1": 0.25, "frame_f1": 0.5}, "best_f1": 0.25},
        {"step": 40, "val": {"note_f1": 0.125, "frame_f1": 0.375}, "best_f1": 0.25},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run


def test_export_writes_a_loadable_release_with_a_filled_card(run_dir, tmp_path):
    out = tmp_path / "release" / "demo-model"
    result = invoke("export", run_dir, "-o", out)
    assert result.exit_code == 0, result.output
    model, cfg = load_release(out)
    assert model.key_bias[0, 0].item() == 20.0  # the best checkpoint's weights
    assert cfg.decode_config.onset_threshold == 0.42 and cfg.extra["step"] == 20
    card = (out / "README.md").read_text()
    assert "# demo-model" in card and "Steps: 20 of 40 planned" in card
    assert "synthetic:/data/synth-piano" in card and "| note_f1 | 0.2500 |" in card  # the step-20 validation
    for name in ("config.json", "model.safetensors"):
        digest = registry.sha256_file(out / name)
        assert digest in card and digest in result.stdout
    assert registry.sha256_file(out / "README.md") in result.stdout
    # the folder registers as-is: the hashes come from the files
    entry = registry.entry_from_folder("demo-model", out, description="d", repo_id="me/demo", revision="a" * 40)
    assert entry.architecture == "unet-bilstm" and entry.files["config.json"].sha256 in card


def test_export_last_checkpoint_and_overwrite(run_dir, tmp_path):
    out = tmp_path / "rel"
    assert invoke("export", run_dir, "-o", out).exit_code == 0
    again = invoke("export", run_dir, "-o", out, "--checkpoint", "last")
    assert again.exit_code == 1 and "--overwrite" in one_error_line(again)
    assert invoke("export", run_dir, "-o", out, "--checkpoint", "last", "--overwrite").exit_code == 0
    model, cfg = load_release(out)
    assert model.key_bias[0, 0].item() == 40.0
    assert "| note_f1 | 0.1250 |" in (out / "README.md").read_text()


def test_export_errors_are_one_line(run_dir, tmp_path):
    (run_dir / "checkpoints" / "best.pt").unlink()
    result = invoke("export", run_dir, "-o", tmp_path / "x")
    assert result.exit_code != 0 and "checkpoints/best.pt" in one_error_line(result)

    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    state["model"].pop("key_bias")
    torch.save(state, run_dir / "checkpoints" / "last.pt")
    result = invoke("export", run_dir, "-o", tmp_path / "x", "--checkpoint", "last")
    assert result.exit_code != 0 and "do not match architecture" in one_error_line(result)
    assert not (tmp_path / "x" / "model.safetensors").exists()

    result = invoke("export", tmp_path / "nowhere", "-o", tmp_path / "y")
    assert result.exit_code != 0 and "no such training run folder" in one_error_line(result)


def test_exported_release_loads_through_the_zoo_by_path(run_dir, tmp_path, no_network):
    from amtcli import load_model

    out = tmp_path / "rel"
    assert invoke("export", run_dir, "-o", out).exit_code == 0
    model, cfg = load_model(str(out))
    assert cfg.architecture == "unet-bilstm" and not model.training


def test_hf_ref_download_and_info(hub_env, toy_arch, tmp_path):
    from zoo_support import make_toy_release

    files = make_toy_release(tmp_path / "rel")
    hub_env.add("someone/model", COMMIT, files)
    before = invoke("info", "hf://someone/model")
    assert before.exit_code == 0 and "not in the Hub cache" in before.stdout
    assert hub_env.count() == 0
    result = invoke("download", "hf://someone/model")
    assert result.exit_code == 0, result.output
    assert "downloaded, sha256 verified" in result.stdout
    n_requests = hub_env.count()
    after = invoke("info", "hf://someone/model")
    assert hub_env.count() == n_requests
    assert after.exit_code == 0, after.output
    assert '"architecture": "toy-net"' in after.stdout and "A toy model (seed 0)" in after.stdout
