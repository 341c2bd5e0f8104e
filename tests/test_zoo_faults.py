"""The zoo against careless and hostile input: name clashes, hostile Hub revisions, malformed releases."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from zoo_support import COMMIT, REPO_ID, fake_hub, hub_env, make_toy_release, toy_arch  # noqa: F401  (fixtures below)  # noqa: F401

from amtcli import zoo
from amtcli.cli import app
from amtcli.errors import AmtError, BadInput, ConfigMismatch, ModelNotFound

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ------------------------------------------------------------------- item 1: a folder named like a zoo model


def test_a_folder_named_like_a_zoo_model_does_not_replace_it(tmp_path, monkeypatch):
    """``mkdir synthetic && cp models/tiny-test/* synthetic/``: the bare name still means the registry entry."""
    shutil.copytree(ROOT / "models" / "tiny-test", tmp_path / "synthetic")
    monkeypatch.chdir(tmp_path)
    resolved = zoo.resolve_spec("synthetic")
    assert resolved.source == "bundled"
    assert resolved.entry is not None and resolved.entry.name == "synthetic"
    assert resolved.path.resolve() != (tmp_path / "synthetic").resolve()
    # an explicit path still reaches the folder
    for spec in ("./synthetic", str(tmp_path / "synthetic")):
        local = zoo.resolve_spec(spec)
        assert local.source == "local" and local.path.resolve() == (tmp_path / "synthetic").resolve()


def test_a_bare_name_that_is_no_zoo_model_still_reaches_a_folder(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "models" / "tiny-test", tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    assert zoo.resolve_spec("mine").source == "local"


# ------------------------------------------------------------------ item 6: revisions a hostile Hub could send


@pytest.mark.parametrize(
    "revision",
    [
        "../../../escaped",
        "main/../../x",
        "a..b",
        "-rf",
        "bad~1",
        "x:y",
        "a b",
        "refs/heads/../../x",
        "/abs",
        "end.",
        "x.lock",
        "@",
        "a//b",
        "é",
    ],
)
def test_hf_ref_revisions_must_be_a_commit_or_a_git_ref_name(revision, hub_env, tmp_path):
    with pytest.raises(BadInput, match="revision"):
        zoo.resolve(f"hf://someone/model@{revision}")
    assert hub_env.count() == 0  # refused before any request
    assert not any((tmp_path / "hf-cache").rglob("*escaped*"))


@pytest.mark.parametrize("revision", ["main", "v1.0", "release/2024-01", COMMIT, "0123abc"])
def test_good_revisions_pass(revision):
    from amtcli.zoo import hub

    assert hub.parse_hf_ref(f"hf://someone/model@{revision}") == ("someone/model", revision)


def test_a_hub_answering_a_hostile_commit_header_is_refused(hub_env, toy_arch, tmp_path, monkeypatch):
    """``X-Repo-Commit: ../../../escaped``: nothing is written outside the cache, one clear error."""
    files = make_toy_release(tmp_path / "rel")
    hub_env.add("someone/model", COMMIT, files)
    original = hub_env.respond

    def hostile(path):
        status, headers, body = original(path)
        if "X-Repo-Commit" in headers:
            headers["X-Repo-Commit"] = "../../../escaped"
        return status, headers, body

    monkeypatch.setattr(hub_env, "respond", hostile)
    with pytest.raises(AmtError, match="commit"):
        zoo.resolve("hf://someone/model")
    assert not list(tmp_path.rglob("escaped"))
    r = runner.invoke(app, ["models", "download", "hf://someone/model"])
    assert r.exit_code not in (0, 70) and "Traceback" not in r.output, r.output


def test_a_hub_answering_a_hostile_etag_is_refused(hub_env, toy_arch, tmp_path, monkeypatch):
    """The ETag becomes a blob file name in the cache: ``../../x`` would write outside it."""
    files = make_toy_release(tmp_path / "rel")
    hub_env.add("someone/model", COMMIT, files)
    original = hub_env.respond

    def hostile(path):
        status, headers, body = original(path)
        if "ETag" in headers:
            headers["ETag"] = headers["X-Linked-Etag"] = '"../../../escaped-blob"'
        return status, headers, body

    monkeypatch.setattr(hub_env, "respond", hostile)
    with pytest.raises(ModelNotFound, match="ETag"):
        zoo.resolve("hf://someone/model")
    assert not list(tmp_path.rglob("escaped-blob*"))


# --------------------------------------------------------------- item 7: malformed releases, empty messages


def _release(tmp_path: Path, **changes) -> Path:
    folder = tmp_path / "rel"
    shutil.copytree(ROOT / "models" / "tiny-test", folder)
    cfg = json.loads((folder / "config.json").read_text())
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            cfg[section][key] = value
        else:
            cfg[section] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"feature_config__hop_length": 0}, "hop_length"),
        ({"feature_config__hop_length": "512"}, "hop_length"),
        ({"feature_config__sample_rate": -16000}, "sample_rate"),
        ({"feature_config__bins_per_semitone": 1.5}, "bins_per_semitone"),
        ({"feature_config__n_keys": True}, "n_keys"),
        ({"feature_config__log_offset": 0.0}, "log_offset"),
        ({"decode_config__onset_threshold": 7}, "onset_threshold"),
        ({"decode_config__min_note_s": "short"}, "min_note_s"),
        ({"feature_config": [1, 2]}, "feature_config"),
        ({"model_config": "big"}, "model_config"),
        ({"architecture": 3}, "architecture"),
        ({"model_config__channels": "wide"}, "channels"),
        ({"model_config__lstm_hidden": -3}, "model_config"),
    ],
)
def test_release_config_fields_are_checked(tmp_path, changes, field):
    folder = _release(tmp_path, **changes)
    with pytest.raises(AmtError) as info:
        zoo.load_model(str(folder))
    message = str(info.value)
    assert "config.json" in message and field in message and "\n" not in message
    r = runner.invoke(
        app, ["transcribe", str(ROOT / "examples" / "piano.flac"), "-m", str(folder), "-o", str(tmp_path / "o.mid")]
    )
    assert r.exit_code not in (0, 70), r.output
    assert field in r.output and "Traceback" not in r.output


def test_release_config_that_is_not_an_object(tmp_path):
    folder = _release(tmp_path)
    (folder / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ConfigMismatch, match="config.json"):
        zoo.load_model(str(folder))


def test_exceptions_with_empty_messages_still_give_a_line(hub_env, toy_arch, monkeypatch, tmp_path):
    """``str(exc).splitlines()[0]`` on an empty message was an IndexError (exit 70)."""
    import huggingface_hub

    from amtcli.zoo import hub

    hub_env.add("someone/model", COMMIT, make_toy_release(tmp_path / "rel"))

    from huggingface_hub.errors import HFValidationError

    def raise_empty(*args, **kwargs):
        raise HFValidationError()

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", raise_empty)
    with pytest.raises(BadInput, match="HFValidationError"):
        hub.fetch_file("someone/model", "config.json", revision="main", model="m")


def test_weights_that_do_not_load_with_an_empty_message(tmp_path, monkeypatch):
    import torch

    def raise_empty(self, *args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", raise_empty)
    with pytest.raises(ConfigMismatch, match="model.safetensors: RuntimeError"):
        zoo.load_model(str(_release(tmp_path)))


def test_huggingface_value_errors_are_one_line(hub_env, toy_arch, monkeypatch, tmp_path):
    """huggingface_hub raises plain ValueError for some inputs (e.g. a bad cache layout, bad arguments)."""
    import huggingface_hub

    from amtcli.zoo import hub

    hub_env.add("someone/model", COMMIT, make_toy_release(tmp_path / "rel"))

    def raise_value(*args, **kwargs):
        raise ValueError("Invalid revision or something\nmore lines")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", raise_value)
    with pytest.raises(ModelNotFound, match="Invalid revision or something$"):
        hub.fetch_file("someone/model", "config.json", revision="main", model="m")
    r = runner.invoke(app, ["models", "download", "hf://someone/model"])
    assert r.exit_code not in (0, 70) and "Traceback" not in r.output, r.output


def test_unreadable_weights_with_an_empty_message(tmp_path):
    folder = _release(tmp_path)
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigMismatch, match="model.safetensors"):
        zoo.load_model(str(folder))
    (folder / "model.safetensors").write_bytes(b"\xff" * 7)
    with pytest.raises(ConfigMismatch, match="model.safetensors"):
        zoo.load_model(str(folder))


# ------------------------------------------------------------------------- item 9: scripts/fake_hub.py


def test_fake_hub_script_runs_without_pytest(tmp_path):
    """The demo server must not need the test suite's dependencies: it starts, serves, stops on Ctrl-C."""
    import signal
    import urllib.request

    code = (
        "import sys, runpy\n"
        "sys.modules['pytest'] = None  # as if pytest were not installed\n"
        f"sys.argv = ['fake_hub.py', '--registry', {str(tmp_path / 'reg.json')!r}]\n"
        f"runpy.run_path({str(ROOT / 'scripts' / 'fake_hub.py')!r}, run_name='__main__')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        assert "tiny-hub" in json.loads((tmp_path / "reg.json").read_text())["models"]
        req = urllib.request.Request(
            f"{info['HF_ENDPOINT']}/amt-demo/tiny-test/resolve/main/config.json", method="HEAD"
        )
        with urllib.request.urlopen(req, timeout=10) as answer:
            assert len(answer.headers["X-Repo-Commit"]) == 40
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()
