"""Test support for the zoo: a local stand-in for the Hugging Face Hub and a toy architecture.

``FakeHub`` is a real HTTP server on 127.0.0.1 (random port, a thread) answering
``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` the way the Hub does: ``X-Repo-Commit``
(40 hex), ``ETag`` (the git blob id for small files; for ``*.safetensors`` the sha256, also as
``X-Linked-Etag`` / ``X-Linked-Size`` like an LFS file), ``Content-Length``, and 404s carrying
``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound). It records every request.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import sys
import threading
import types
import urllib.parse
from dataclasses import dataclass

import pytest

REPO_ID = "amt-test/toy"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Served:
    data: bytes
    etag: str  # what the server claims the file is


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, Served]]] = {}  # repo -> commit -> filename -> Served
        self.refs: dict[tuple[str, str], str] = {}  # (repo, branch) -> commit
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, with_body: bool):
                hub.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = hub.respond(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # ---------------------------------------------------------------- content
    def add(self, repo_id: str, commit: str, files: dict[str, bytes], *, branch: str | None = "main") -> None:
        repo = self.repos.setdefault(repo_id, {})
        repo[commit] = {name: Served(data, self.etag_for(name, data)) for name, data in files.items()}
        if branch:
            self.refs[(repo_id, branch)] = commit

    @staticmethod
    def etag_for(name: str, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_blob_sha1(data)

    def tamper(self, repo_id: str, commit: str, name: str, *, keep_etag: bool = False) -> None:
        """Flip one byte of a served file (same size). The ETag follows the new bytes unless ``keep_etag``."""
        served = self.repos[repo_id][commit][name]
        data = bytearray(served.data)
        data[len(data) // 2] ^= 0xFF
        etag = served.etag if keep_etag else self.etag_for(name, bytes(data))
        self.repos[repo_id][commit][name] = Served(bytes(data), etag)

    def remove(self, repo_id: str, commit: str, name: str) -> None:
        del self.repos[repo_id][commit][name]

    def count(self, method: str | None = None) -> int:
        return sum(1 for m, _, _ in self.requests if method is None or m == method)

    # ---------------------------------------------------------------- protocol
    def respond(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {"X-Error-Code": "RepoNotFound"}, b"not found"
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b"{}"
        commit = self.refs.get((repo_id, revision), revision)
        if commit not in self.repos[repo_id]:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b"{}"
        served = self.repos[repo_id][commit].get(filename)
        if served is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"{}"
        headers = {"X-Repo-Commit": commit, "ETag": f'"{served.etag}"', "Content-Type": "application/octet-stream"}
        if filename.endswith(".safetensors"):
            headers["X-Linked-Etag"] = f'"{served.etag}"'
            headers["X-Linked-Size"] = str(len(served.data))
        return 200, headers, served.data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


def registry_entry(files: dict[str, bytes], *, architecture: str = TOY_ARCH, repo_id: str | None = REPO_ID,
                   revision: str | None = COMMIT, bundled: str | None = None, metrics=None) -> dict:
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
