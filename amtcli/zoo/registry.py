"""The model registry: zoo names -> architecture, bundled folder, Hub repo + pinned revision, file sha256s.

The registry is package data (``amtcli/zoo/registry.json``); ``AMT_REGISTRY=path.json`` replaces it
(a private zoo, a mirror, a demo). Nobody edits hashes by hand:
``scripts/register_model.py`` (or :func:`entry_from_folder` + :func:`save_registry`) computes them
from a release folder.

``registry.json`` layout::

    {"format_version": 1,
     "models": {"NAME": {"architecture": "unet-bilstm", "description": "one line",
                         "bundled": "NAME" | null,          # folder under models/ (amtcli/_models/ in a wheel)
                         "repo_id": "owner/repo" | null,     # Hugging Face Hub model repo
                         "revision": "<40 hex>" | null,      # pinned commit, required with repo_id
                         "files": {"config.json": {"sha256": "<64 hex>", "size": 1234}, ...},
                         "metrics": {"note_f1": 0.81, ...}}}}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, ModelNotFound
from .release import CARD_NAME, CONFIG_NAME, ONNX_NAME, WEIGHTS_NAME

REGISTRY_FORMAT = 1
REGISTRY_PATH = Path(__file__).with_name("registry.json")
REQUIRED_FILES = (CONFIG_NAME, WEIGHTS_NAME)
RELEASE_FILES = (*REQUIRED_FILES, CARD_NAME, ONNX_NAME)  # the card and model.onnx are optional

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class FileInfo:
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry. ``files`` maps a release file name to its sha256 and size in bytes."""

    name: str
    architecture: str
    description: str
    files: dict[str, FileInfo]
    bundled: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Total size of the release files in bytes."""
        return sum(f.size for f in self.files.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "description": self.description,
            "bundled": self.bundled,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "files": {n: {"sha256": f.sha256, "size": f.size} for n, f in sorted(self.files.items())},
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any], *, where: str = "registry") -> "ModelEntry":
        def bad(msg: str) -> BadInput:
            return BadInput(f"{where}: model {name!r}: {msg}")

        if not _NAME.match(name):
            raise bad("names are lower case letters, digits, '.', '_' and '-'")
        if not isinstance(data, dict):
            raise bad(f"an entry is an object, not {type(data).__name__}")
        for key in ("bundled", "repo_id", "revision"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise bad(f"{key} must be a string or null, not {data[key]!r}")
        if data.get("bundled") and not _NAME.match(data["bundled"]):
            raise bad(f"bundled {data['bundled']!r} must be a folder name under models/, not a path")
        try:
            files = {
                fname: FileInfo(sha256=str(info["sha256"]).lower(), size=int(info["size"]))
                for fname, info in dict(data.get("files") or {}).items()
            }
            entry = cls(
                name=name,
                architecture=str(data["architecture"]),
                description=str(data.get("description", "")),
                files=files,
                bundled=data.get("bundled") or None,
                repo_id=data.get("repo_id") or None,
                revision=(data.get("revision") or None),
                metrics=dict(data.get("metrics") or {}),
            )
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:  # e.g. "size": Infinity
            raise bad(f"malformed entry ({type(exc).__name__}: {exc})") from None
        for fname in REQUIRED_FILES:
            if fname not in files:
                raise bad(f"no sha256 for {fname}")
        for fname, info in files.items():
            if "/" in fname or "\\" in fname or fname.startswith("."):
                raise bad(f"file name {fname!r} must be a plain name")
            if not _HEX64.match(info.sha256):
                raise bad(f"{fname}: sha256 must be 64 hex digits")
        if entry.repo_id is not None:
            if not _REPO_ID.match(entry.repo_id):
                raise bad(f"repo_id {entry.repo_id!r} is not owner/name")
            if entry.revision is None or not _HEX40.match(entry.revision):
                raise bad("a Hub repo needs a pinned 40-hex revision")
        if entry.bundled is None and entry.repo_id is None:
            raise bad("neither bundled nor on the Hub")
        return entry


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of a file (what the Hub reports as ETag for files not stored in LFS)."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def registry_path() -> Path:
    """The registry in use: ``AMT_REGISTRY`` (a private zoo or a mirror) if set, else the shipped one."""
    override = os.environ.get("AMT_REGISTRY", "").strip()
    return Path(override).expanduser() if override else REGISTRY_PATH


def load_registry(path: str | os.PathLike | None = None) -> dict[str, ModelEntry]:
    """Read and validate the registry (default: :func:`registry_path`). Returns name -> :class:`ModelEntry`."""
    path = Path(path) if path is not None else registry_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        hint = "check AMT_REGISTRY" if os.environ.get("AMT_REGISTRY") else "a broken install?"
        raise ModelNotFound(f"{path}: the model registry is missing ({hint})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format_version") != REGISTRY_FORMAT:
        found = data.get("format_version") if isinstance(data, dict) else type(data).__name__
        raise BadInput(f"{path}: registry format {found!r} is not {REGISTRY_FORMAT}")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise BadInput(f"{path}: 'models' must be an object of name -> entry")
    return {name: ModelEntry.from_json(name, entry, where=str(path)) for name, entry in models.items()}


def save_registry(entries: dict[str, ModelEntry], path: str | os.PathLike | None = None) -> Path:
    """Write the registry (atomically), entries in the given order."""
    path = Path(path) if path is not None else REGISTRY_PATH
    data = {"format_version": REGISTRY_FORMAT, "models": {n: e.to_json() for n, e in entries.items()}}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def get_entry(name: str, registry: dict[str, ModelEntry] | None = None) -> ModelEntry:
    registry = load_registry() if registry is None else registry
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(registry) or "none"
        raise ModelNotFound(
            f"{name!r} is not a model name, a release folder or an hf://owner/repo reference (known names: {known})"
        ) from None


def entry_from_folder(
    name: str,
    folder: str | os.PathLike,
    *,
    description: str,
    bundled: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelEntry:
    """A registry entry whose sha256s and sizes are computed from the release folder ``folder``."""
    from .release import read_release_config

    folder = Path(folder)
    cfg = read_release_config(folder)
    files = {
        fname: FileInfo(sha256=sha256_file(folder / fname), size=(folder / fname).stat().st_size)
        for fname in RELEASE_FILES
        if (folder / fname).is_file()
    }
    data = {
        "architecture": cfg.architecture,
        "description": description,
        "bundled": bundled,
        "repo_id": repo_id,
        "revision": revision.lower() if revision else None,
        "files": {n: {"sha256": f.sha256, "size": f.size} for n, f in files.items()},
        "metrics": metrics or {},
    }
    return ModelEntry.from_json(name, data, where=str(folder))
