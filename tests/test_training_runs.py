"""Run folders of every model type, as `amt train` writes them: resume from what the CLI wrote, a
failed start that is no dead end, a crash between checkpoint files, damaged checkpoints, and
kill -9 at a random point followed by --resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from amtcli.config import FeatureConfig, to_dict
from amtcli.training.checkpoints import load_checkpoint

UNET = {"channels": [4, 8, 8], "lstm_hidden": 8}
TRANSFORMER = {
    "conv_channels": [4, 4],
    "d_model": 32,
    "n_heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "ff_dim": 64,
    "dropout": 0.0,
    "segment_frames": 32,
    "max_tokens": 24,
    "disc_hidden": 16,
}
EMBEDDING = {"channels": [4, 8], "embed_dim": 8, "snippet_frames": 32}
MODELS = {"unet-bilstm": UNET, "transformer": TRANSFORMER, "embedding": EMBEDDING}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pair_dataset(tmp_path_factory):
    from test_embedding import make_pair_dataset

    return make_pair_dataset(
        tmp_path_factory.mktemp("pairs"),
        n_pieces=4,
        renders=1,
        splits=["train", "train", "train", "validation"],
        duration_s=4.0,
    )


def _toml(tmp_path: Path, model: str, **train) -> Path:
    """A --config file with a tiny [model] and a short [train] table."""
    train = {
        "val_items": 1,
        "threads": 1,
        "precision": "fp32",
        "checkpoint_every": 1,
        "warmup_steps": 1,
        "calibrate": False,
        **train,
    }
    if model == "embedding":
        train = {k: v for k, v in train.items() if k in ("threads", "precision", "checkpoint_every")}
        train.update(valid_every=2, valid_snippets=8, log_every=1)
    body = "[model]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in MODELS[model].items())
    body += "[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in train.items())
    path = tmp_path / f"{model}.toml"
    path.write_text(body)
    return path


def _data(model: str, sine_dataset: Path, pair_dataset: Path) -> Path:
    return pair_dataset if model == "embedding" else sine_dataset


def _train_args(model: str, data: Path, out: Path, toml: Path, steps: int, *extra: str) -> list[str]:
    args = [
        "train",
        "--model",
        model,
        "--data",
        str(data),
        "--out",
        str(out),
        "--config",
        str(toml),
        "--steps",
        str(steps),
        "--batch-size",
        "2" if model != "embedding" else "3",
        "--device",
        "cpu",
    ]
    if model == "unet-bilstm":
        args += ["--crop-s", "2"]
    return args + list(extra)


def _invoke(args: list[str]):
    from amtcli.cli import app

    return CliRunner().invoke(app, args)


def _one_line_error(res, *words: str) -> None:
    """An amt error: exit code 1 or 2 (not 70, an internal error), one line that says ``words``."""
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code in (1, 2) and len(lines) == 1 and "internal error" not in lines[0], res.output
    for w in words:
        assert w in lines[0], res.output


# ---------------------------------------------------------------------------- resume from the CLI


@pytest.mark.parametrize("model", ["unet-bilstm", "transformer", "embedding"])
def test_resume_from_a_checkpoint_the_cli_wrote(model, sine_dataset, pair_dataset, tmp_path):
    data, run = _data(model, sine_dataset, pair_dataset), tmp_path / "run"
    toml = _toml(tmp_path, model)
    res = _invoke(_train_args(model, data, run, toml, 2))
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    res = _invoke(_train_args(model, data, run, toml, 3, "--resume"))
    assert res.exit_code == 0, res.output
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["step"] == 3
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == sorted(set(steps)) and steps[-1] == 3
    # a different model is still refused, in one line
    other = dict(MODELS[model])
    key = next(iter(other))
    other[key] = [2 * c for c in other[key]] if isinstance(other[key], list) else other[key] + 1
    toml.write_text(
        toml.read_text().replace(f"{key} = {json.dumps(MODELS[model][key])}", f"{key} = {json.dumps(other[key])}")
    )
    res = _invoke(_train_args(model, data, run, toml, 4, "--resume"))
    _one_line_error(res, "different model")


def test_a_run_from_before_a_config_field_existed_resumes(one_step, sine_dataset, tmp_path):
    """A field added to a config class since the run started (with its default) is no difference."""
    run, toml = _one_step_run(one_step, tmp_path)
    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    config = json.loads(state["config"])
    del config["feature_config"]["kind"]  # as if written before the field existed (it is at its default)
    state["config"] = json.dumps(config)
    torch.save(state, last)
    res = _invoke(_train_args("unet-bilstm", sine_dataset, run, toml, 2, "--resume"))
    assert res.exit_code == 0, res.output


def test_config_comparison_ignores_tuples_lists_and_key_order():
    from amtcli.training.solver import same_config

    assert same_config({"a": (1, 2), "b": {"c": (3,)}}, {"b": {"c": [3]}, "a": [1, 2]})
    assert not same_config({"a": (1, 2)}, {"a": [1, 3]})
    assert same_config({"a": 1.0}, {"a": 1})  # TOML 1 and JSON 1.0 are one value


# ---------------------------------------------------------------------------- failed starts


@pytest.mark.parametrize("model", ["unet-bilstm", "embedding"])
def test_a_failed_start_is_no_dead_end(model, sine_dataset, pair_dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.jsonl").write_text("")
    data, run, toml = _data(model, sine_dataset, pair_dataset), tmp_path / "run", _toml(tmp_path, model)
    res = _invoke(_train_args(model, empty, run, toml, 1))
    assert res.exit_code != 0 and "Traceback" not in res.output
    res = _invoke(_train_args(model, data, run, toml, 1))  # the same folder, now with data
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_starts_again(resume, sine_dataset, tmp_path, monkeypatch):
    run, toml = tmp_path / "run", _toml(tmp_path, "unet-bilstm")
    with monkeypatch.context() as m:
        _crash_at(m, 0)  # dies while writing its first checkpoint: config.json and metrics are there
        with pytest.raises(Crash):
            _invoke(_train_args("unet-bilstm", sine_dataset, run, toml, 1))
    assert (run / "config.json").is_file() and not (run / "checkpoints" / "last.pt").exists()
    res = _invoke(_train_args("unet-bilstm", sine_dataset, run, toml, 1, *(["--resume"] if resume else [])))
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1]
    # a folder that never held a run has nothing to resume
    res = _invoke(_train_args("unet-bilstm", sine_dataset, tmp_path / "nothing", toml, 1, "--resume"))
    _one_line_error(res, "nothing to resume")


# ---------------------------------------------------------------------------- crashes between files


class Crash(BaseException):
    pass


def _crash_at(monkeypatch, n: int):
    """Make the n-th checkpoint file write (0-based) of the training loops raise Crash instead."""
    from amtcli.training import checkpoints

    real = checkpoints.save_checkpoint
    calls = []

    def save(state, path):
        calls.append(Path(path).name)
        if len(calls) - 1 == n:
            raise Crash(Path(path).name)
        return real(state, path)

    monkeypatch.setattr(checkpoints, "save_checkpoint", save)
    for module in list(sys.modules.values()):  # loops that imported the function by name
        if (
            getattr(module, "__name__", "").startswith("amtcli.training.")
            and getattr(module, "save_checkpoint", None) is real
        ):
            monkeypatch.setattr(module, "save_checkpoint", save)
    return calls


def _unet_spec(ds, steps):
    from amtcli.config import FeatureConfig, TrainConfig
    from amtcli.training.loop import RunSpec

    tc = TrainConfig(
        steps=steps,
        batch_size=2,
        crop_s=2.0,
        val_every=1,
        val_items=1,
        checkpoint_every=1,
        warmup_steps=1,
        lr=3e-3,
        precision="fp32",
        calibrate=False,
        threads=1,
    )
    return RunSpec("unet-bilstm", UNET, FeatureConfig(), tc, data=[str(ds)])


def test_last_pt_never_claims_a_best_checkpoint_that_is_not_on_disk(sine_dataset, tmp_path, monkeypatch):
    from amtcli.training.loop import train_transcriber

    calls = _crash_at(monkeypatch, 10**9)
    train_transcriber(_unet_spec(sine_dataset, 3), out_dir=tmp_path / "probe")
    n_writes = len(calls)
    assert "best.pt" in calls
    for n in range(n_writes):
        run = tmp_path / f"crash{n}"
        _crash_at(monkeypatch, n)
        with pytest.raises(Crash):
            train_transcriber(_unet_spec(sine_dataset, 3), out_dir=run)
        last, best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
        if last.exists():
            state = load_checkpoint(last)
            if state["best_f1"] >= 0:
                assert best.exists(), f"crash at write {n} ({calls[n]}): last.pt claims a best F1 that best.pt lacks"
                assert load_checkpoint(best)["best_f1"] >= state["best_f1"]
        monkeypatch.undo()
        train_transcriber(_unet_spec(sine_dataset, 3), out_dir=run, resume=True)  # and the run goes on from there
        state = load_checkpoint(last)
        assert state["step"] == 3 and load_checkpoint(best)["best_f1"] == state["best_f1"]


# ---------------------------------------------------------------------------- damaged checkpoints


@pytest.fixture(scope="module")
def one_step(sine_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """A run of one step written by the CLI, and its --config file (copy the run before changing it)."""
    root = tmp_path_factory.mktemp("one-step")
    run, toml = root / "run", _toml(root, "unet-bilstm")
    res = _invoke(_train_args("unet-bilstm", sine_dataset, run, toml, 1))
    assert res.exit_code == 0, res.output
    return run, toml


def _one_step_run(one_step, tmp_path) -> tuple[Path, Path]:
    import shutil

    run, toml = one_step
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", toml


@pytest.mark.parametrize(
    "damage", ["empty", "garbage", "not a dict", "no model", "wrong shapes", "wrong keys", "config not JSON"]
)
def test_a_damaged_last_pt_is_one_line_naming_the_file(damage, one_step, sine_dataset, tmp_path):
    run, toml = _one_step_run(one_step, tmp_path)
    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    if damage == "empty":
        last.write_bytes(b"")
    elif damage == "garbage":
        last.write_bytes(b"\x80\x02garbage" * 10)
    elif damage == "not a dict":
        torch.save([1, 2, 3], last)
    elif damage == "no model":
        del state["model"]
        torch.save(state, last)
    elif damage == "wrong shapes":
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3, 1, 7)
        torch.save(state, last)
    elif damage == "wrong keys":
        state["model"]["extra.weight"] = torch.zeros(1)
        torch.save(state, last)
    elif damage == "config not JSON":
        state["config"] = "{not json"
        torch.save(state, last)
    res = _invoke(_train_args("unet-bilstm", sine_dataset, run, toml, 2, "--resume"))
    _one_line_error(res, str(last))


def test_a_damaged_checkpoint_is_one_line_for_export_too(one_step, tmp_path):
    run, _ = _one_step_run(one_step, tmp_path)
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    res = _invoke(["models", "export", str(run), "-o", str(tmp_path / "rel")])
    _one_line_error(res, "best.pt")


def test_stale_temporary_checkpoints_are_removed(one_step, sine_dataset, tmp_path):
    run, toml = _one_step_run(one_step, tmp_path)
    ckpts = run / "checkpoints"
    for name in (".step-000000099.pt.tmp", ".best.pt.tmp", ".last.pt.tmp"):
        (ckpts / name).write_bytes(b"half a checkpoint")
    res = _invoke(_train_args("unet-bilstm", sine_dataset, run, toml, 2, "--resume"))
    assert res.exit_code == 0, res.output
    assert not list(ckpts.glob(".*.tmp"))


# ---------------------------------------------------------------------------- kill -9


def _amt() -> list[str]:
    exe = Path(sys.executable).with_name("amt")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from amtcli.cli import app; app()"]


def test_kill_9_at_a_random_point_then_resume_gives_an_intact_run(cached_sines, tmp_path):
    """CI-sized fault injection: three kills at random times (seed printed), each followed by --resume."""
    seed = int(os.environ.get("AMT_FAULT_SEED", random.randrange(10**6)))
    print(f"AMT_FAULT_SEED={seed}")
    rng = random.Random(seed)
    run, toml = tmp_path / "run", _toml(tmp_path, "unet-bilstm", val_every=3, checkpoint_every=4, keep_checkpoints=2)
    steps = 16
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AMT_DEBUG": ""}
    base = _amt() + _train_args("unet-bilstm", cached_sines, run, toml, steps)
    for kill in range(3):
        resume = ["--resume"] if (run / "config.json").exists() else []  # nothing written yet: start it
        proc = subprocess.Popen(base + resume, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill == 0:  # anywhere, start-up included
            delay_from = time.monotonic()
            delay = rng.uniform(0.0, 4.0)
        else:  # while it trains: from the moment it has written its first file
            while proc.poll() is None and not (run / "metrics.jsonl").exists():
                time.sleep(0.005)
            delay_from, delay = time.monotonic(), rng.uniform(0.0, 1.0)
        while proc.poll() is None and time.monotonic() - delay_from < delay:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    resume = ["--resume"] if (run / "config.json").exists() else []
    res = subprocess.run(base + resume, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    ckpts = run / "checkpoints"
    last, best = load_checkpoint(ckpts / "last.pt"), load_checkpoint(ckpts / "best.pt")
    assert last["step"] == steps and best["step"] <= steps and best["best_f1"] == last["best_f1"]
    assert not list(ckpts.glob(".*.tmp"))
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]  # no torn line
    logged = [r["step"] for r in records if "loss" in r]
    assert logged == sorted(set(logged)) and logged[-1] == steps  # no step twice, none lost at the end
    vals = [r["step"] for r in records if "val" in r]
    assert vals == sorted(set(vals)) == [*range(3, steps + 1, 3), steps]
    res = _invoke(["models", "export", str(run), "-o", str(tmp_path / "rel")])
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def cached_sines(sine_dataset, tmp_path_factory):
    """The sine dataset with stored features (so a training process starts in about a second)."""
    import shutil

    from conftest import store_features

    root = tmp_path_factory.mktemp("cached") / "sines"
    shutil.copytree(sine_dataset, root)
    return store_features(root)


# ---------------------------------------------------------------------------- embedding on two processes


@pytest.mark.slow
def test_embedding_trains_on_two_processes(pair_dataset, tmp_path):
    run, toml = tmp_path / "run", _toml(tmp_path, "embedding")
    res = _invoke(_train_args("embedding", pair_dataset, run, toml, 2, "--nproc", "2"))
    assert res.exit_code == 0, res.output
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    (replicas,) = [r["replicas"] for r in records if "replicas" in r]
    assert [r["rank"] for r in replicas] == [0, 1]
    assert replicas[0]["weights_sha256"] == replicas[1]["weights_sha256"]  # one model ...
    assert replicas[0]["data_crc32"] != replicas[1]["data_crc32"]  # ... trained on other batches per rank
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["step"] == 2 and len(last["rng_ranks"]) == 2  # every rank's generators: resumable exactly


# ---------------------------------------------------------------------------- --init from a release


def test_init_starts_from_the_release_weights_and_configs(sine_dataset, tmp_path):
    from amtcli.training.checkpoints import load_checkpoint
    from amtcli.zoo import load_release, resolve

    toml = tmp_path / "train.toml"
    toml.write_text(
        '[train]\nval_items = 1\nthreads = 1\nprecision = "fp32"\ncheckpoint_every = 1\ncalibrate = false\n'
    )
    out = tmp_path / "run"
    args = ["train", "--init", "tiny-test", "--data", str(sine_dataset), "--out", str(out), "--config", str(toml)]
    args += ["--steps", "1", "--lr", "0", "--batch-size", "2", "--crop-s", "2", "--device", "cpu"]
    res = _invoke(args)
    assert res.exit_code == 0, res.output
    release, cfg = load_release(resolve("tiny-test"), device="cpu")
    run_cfg = json.loads((out / "config.json").read_text())
    assert run_cfg["model_config"]["channels"] == list(cfg.model_config["channels"])
    state = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    for name, value in release.named_parameters():  # a learning rate of 0: still the release's weights
        assert torch.equal(state[name], value), name  # (batch-norm statistics move in training mode)
    assert any(not torch.equal(state[n], v) for n, v in release.state_dict().items())  # the step did run


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--channels", "4,4,4"], ("--init takes the model and feature configs",)),
        (["--model", "transformer"], ("--init starts a unet-bilstm",)),
        (["--init-bad"], ()),
    ],
)
def test_init_refuses_what_would_change_the_release(extra, words, sine_dataset, tmp_path):
    if extra == ["--init-bad"]:
        args = ["train", "--init", "no-such-model-xyz", "--data", str(sine_dataset), "--out", str(tmp_path / "r")]
        res = _invoke(args)
        _one_line_error(res, "no-such-model-xyz")
    else:
        args = ["train", "--init", "tiny-test", "--data", str(sine_dataset), "--out", str(tmp_path / "r"), *extra]
        _one_line_error(_invoke(args), *words)
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------- the pitch-balanced prior, every checkpoint


def test_pitch_balanced_runs_validate_and_export_without_the_prior(sine_dataset, tmp_path, monkeypatch):
    from amtcli.config import FeatureConfig, from_dict
    from amtcli.nets.unet_bilstm import HEADS
    from amtcli.training import loop
    from amtcli.training.calibrate import prior_offsets
    from amtcli.training.checkpoints import load_checkpoint, save_checkpoint
    from amtcli.training.data import load_examples
    from amtcli.training.losses import count_positives, pitch_balance_weights
    from amtcli.zoo import load_release

    seen = []  # the key biases of every model validation ran on
    real_validate = loop.validate
    monkeypatch.setattr(
        loop,
        "validate",
        lambda model, *a, **kw: seen.append(model.key_bias.detach().clone()) or real_validate(model, *a, **kw),
    )
    out = tmp_path / "run"
    toml = _toml(tmp_path, "unet-bilstm", val_every=2)
    res = _invoke(_train_args("unet-bilstm", sine_dataset, out, toml, 2, "--pitch-balanced"))
    assert res.exit_code == 0, res.output
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    offsets = {h: last["prior_offsets"][h].numpy() for h in ("onset", "frame", "offset")}
    spec = json.loads(last["config"])
    fc = from_dict(FeatureConfig, spec["feature_config"])
    examples = load_examples(spec["data"], split="train", feature_config=fc)
    expected = prior_offsets(pitch_balance_weights(count_positives(examples, feature_config=fc)))
    for h, v in expected.items():
        np.testing.assert_allclose(offsets[h], v, rtol=1e-6)
    # validation saw the weights of last.pt plus the offsets, not the raw (over-predicting) ones
    raw = last["model"]["key_bias"]
    shifted = raw.clone()
    for h, v in offsets.items():
        shifted[:, HEADS.index(h)] += torch.from_numpy(v)
    assert torch.allclose(seen[-1], shifted) and not torch.allclose(seen[-1], raw)

    # any checkpoint exports release-ready: the stored offsets, or counted again from the data
    _invoke(["models", "export", str(out), "--checkpoint", "last", "-o", str(tmp_path / "rel")])
    model, _ = load_release(tmp_path / "rel", device="cpu")
    assert torch.allclose(model.key_bias, shifted)
    del last["prior_offsets"]  # as a checkpoint written before they were stored
    save_checkpoint(last, tmp_path / "old.pt")
    res = _invoke(
        ["models", "export", str(out), "--checkpoint", str(tmp_path / "old.pt"), "-o", str(tmp_path / "rel2")]
    )
    assert res.exit_code == 0, res.output
    assert torch.allclose(load_release(tmp_path / "rel2", device="cpu")[0].key_bias, shifted, atol=1e-5)
    last["config"] = json.dumps({**spec, "data": [str(tmp_path / "gone")]})
    save_checkpoint(last, tmp_path / "orphan.pt")
    res = _invoke(
        ["models", "export", str(out), "--checkpoint", str(tmp_path / "orphan.pt"), "-o", str(tmp_path / "rel3")]
    )
    _one_line_error(res, "orphan.pt", "training data")


# ---------------------------------------------------------------------------- front end of a new run


def _leveled_copy(src: Path, dst: Path, level_db: float) -> Path:
    import shutil

    from conftest import store_features

    shutil.copytree(src, dst)
    return store_features(dst, feature_config=FeatureConfig(level_db=level_db))


def test_a_new_run_takes_the_front_end_of_the_stored_features(sine_dataset, tmp_path):
    data = _leveled_copy(sine_dataset, tmp_path / "data", -24.0)
    run, toml = tmp_path / "run", _toml(tmp_path, "unet-bilstm")
    res = _invoke(_train_args("unet-bilstm", data, run, toml, 1))
    assert res.exit_code == 0, res.output
    assert "input level -24 dBFS" in " ".join(res.output.split())
    assert json.loads((run / "config.json").read_text())["feature_config"]["level_db"] == -24.0
    # a [features] table still decides
    toml.write_text(toml.read_text() + "[features]\nlevel_db = -30.0\n")
    res = _invoke(_train_args("unet-bilstm", data, tmp_path / "run2", toml, 1))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["feature_config"]["level_db"] == -30.0


def test_datasets_with_different_front_ends_leave_the_default(sine_dataset, tmp_path):
    a = _leveled_copy(sine_dataset, tmp_path / "a", -24.0)
    b = _leveled_copy(sine_dataset, tmp_path / "b", -20.0)
    run, toml = tmp_path / "run", _toml(tmp_path, "unet-bilstm")
    res = _invoke(_train_args("unet-bilstm", a, run, toml, 1, "--data", str(b)))
    assert res.exit_code == 0, res.output
    assert json.loads((run / "config.json").read_text())["feature_config"] == to_dict(FeatureConfig())
