"""Test support for the zoo: fixtures around a local stand-in for the Hugging Face Hub
(:mod:`fake_hub_server`, standard library only) and a toy architecture."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import pytest
from fake_hub_server import COMMIT, REPO_ID, FakeHub, Served, git_blob_sha1  # noqa: F401  (re-exported)


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    yield hub
    hub.close()


@pytest.fixture
def hub_env(monkeypatch, tmp_path, fake_hub):
    """Point amt's Hub access at ``fake_hub`` with an empty cache in ``tmp_path``; online."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("AMT_REGISTRY", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return fake_hub


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# -------------------------------------------------------------------------------- toy architecture

TOY_ARCH = "toy-net"


def _toy_module() -> types.ModuleType:
    from dataclasses import dataclass as dc

    import torch
    from torch import nn

    @dc(frozen=True)
    class ToyConfig:
        hidden: int = 4

    class ToyNet(nn.Module):
        arch = TOY_ARCH

        def __init__(self, config, feature_config):
            super().__init__()
            self.config = config
            self.feature_config = feature_config
            self.proj = nn.Linear(feature_config.n_bins, config.hidden)
            self.head = nn.Linear(config.hidden, feature_config.n_keys)

        def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"frame": self.head(torch.relu(self.proj(features)))}

    mod = types.ModuleType("amt_test_toy_net")
    mod.ToyConfig, mod.ToyNet = ToyConfig, ToyNet
    return mod


@pytest.fixture
def toy_arch(monkeypatch):
    """Register a tiny throwaway architecture ``toy-net`` (only for the duration of a test)."""
    from amtcli import nets

    monkeypatch.setitem(sys.modules, "amt_test_toy_net", _toy_module())
    monkeypatch.setitem(nets.ARCHITECTURES, TOY_ARCH, ("amt_test_toy_net", "ToyNet", "ToyConfig"))
    return TOY_ARCH


def make_toy_release(folder, *, seed: int = 0, hidden: int = 4) -> dict[str, bytes]:
    """Write a toy release folder; return its files' bytes."""
    import torch

    from amtcli.config import FeatureConfig
    from amtcli.nets import build_model
    from amtcli.zoo import save_release

    torch.manual_seed(seed)
    model = build_model(TOY_ARCH, {"hidden": hidden}, FeatureConfig())
    save_release(model, folder, card=f"# toy\n\nA toy model (seed {seed}).\n")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def write_registry(path, entries: dict[str, dict]) -> None:
    path.write_text(json.dumps({"format_version": 1, "models": entries}, indent=2))


def registry_entry(
    files: dict[str, bytes],
    *,
    architecture: str = TOY_ARCH,
    repo_id: str | None = REPO_ID,
    revision: str | None = COMMIT,
    bundled: str | None = None,
    metrics=None,
) -> dict:
    return {
        "architecture": architecture,
        "description": "a toy model for tests",
        "bundled": bundled,
        "repo_id": repo_id,
        "revision": revision,
        "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()},
        "metrics": metrics or {},
    }


@pytest.fixture
def toy_zoo(tmp_path, monkeypatch, toy_arch, hub_env):
    """A registry with ``toy`` (on the fake Hub at COMMIT) beside the real entries; returns (hub, files)."""
    from amtcli.zoo import registry

    files = make_toy_release(tmp_path / "toy-release")
    hub_env.add(REPO_ID, COMMIT, files)
    real = json.loads(registry.REGISTRY_PATH.read_text())["models"]
    path = tmp_path / "registry.json"
    write_registry(path, {**real, "toy": registry_entry(files, metrics={"note_f1": 0.5})})
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    return hub_env, files
