"""Model zoo: a model spec -> a verified release folder -> a loaded model.

A spec is a registry name (``amt models list``), a local release folder, or
``hf://owner/repo[@revision]``. A bare registry name always means the registry entry; a folder
that happens to share it is reached by a path (``./synthetic``). Registry names resolve in this order: the bundled copy shipped in
the package, the Hugging Face Hub cache, a download of the pinned revision. Every file of a
registry model is checked against its sha256 before it is used; a cached or downloaded file that
fails is deleted (its snapshot link and blob) and :class:`ChecksumError` is raised, so running
again downloads it afresh. A bundled file that fails is left alone (it belongs to the install).

``hf://`` references have no registry hashes: each downloaded file is checked against the ETag
the Hub reported for it (the sha256 for LFS files, the git blob id for small files); the weights
(and ``model.onnx``) are refused when no such ETag is known. Only ``config.json``,
``model.safetensors``, ``README.md`` and ``model.onnx`` are ever fetched; nothing pickled is loaded. A local folder is the user's own and is
loaded as it is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..devices import resolve_device  # noqa: F401  (re-exported)
from ..errors import BadInput, ChecksumError, ModelNotFound
from . import hub
from .registry import (  # noqa: F401
    RELEASE_FILES,
    REQUIRED_FILES,
    FileInfo,
    ModelEntry,
    entry_from_folder,
    get_entry,
    git_blob_sha1,
    load_registry,
    save_registry,
    sha256_file,
)
from .release import ReleaseConfig, load_release, read_release_config, save_release  # noqa: F401

log = logging.getLogger(__name__)

OFFLINE_VAR = "HF_HUB_OFFLINE"


@dataclass(frozen=True)
class Resolved:
    """Where a spec resolved to. ``source`` is local, bundled, cached or downloaded."""

    path: Path
    source: str
    entry: ModelEntry | None = None


# ------------------------------------------------------------------------------------------ bundled


def bundled_root() -> Path | None:
    """The folder holding bundled release folders.

    In an installed wheel: ``amtcli/_models/`` (the build copies the repository's ``models/``
    there). In a source checkout (editable install): the repository's ``models/``.
    """
    package = Path(__file__).resolve().parents[1]
    installed = package / "_models"
    if installed.is_dir():
        return installed
    checkout = package.parent
    if (checkout / "models").is_dir() and _is_amtcli_checkout(checkout):
        return checkout / "models"
    return None


def _is_amtcli_checkout(folder: Path) -> bool:
    try:
        return 'name = "amtcli"' in (folder / "pyproject.toml").read_text()
    except OSError:
        return False


def bundled_folder(entry: ModelEntry) -> Path | None:
    """The bundled copy of ``entry`` if this install has it."""
    root = bundled_root()
    if entry.bundled is None or root is None:
        return None
    folder = root / entry.bundled
    return folder if (folder / "config.json").is_file() else None


# ------------------------------------------------------------------------------------ verification


def _check_registry_file(path: Path, info: FileInfo, *, entry: ModelEntry, source: str) -> None:
    """Raise ChecksumError if ``path`` is not the file the registry describes (deleting it if cached)."""
    size = path.stat().st_size
    actual = sha256_file(path) if size == info.size else None
    if actual == info.sha256:
        return
    got = (
        f"size {size}, expected {info.size}"
        if actual is None
        else f"sha256 {actual[:12]}…, expected {info.sha256[:12]}…"
    )
    if source == "bundled":
        raise ChecksumError(
            f"model {entry.name!r}: the bundled {path.name} is damaged ({got}); reinstall amtcli ({path})"
        )
    hub.discard_cached(path)
    raise ChecksumError(
        f"model {entry.name!r}: {path.name} from {entry.repo_id}@{(entry.revision or '')[:12]} failed its checksum "
        f"({got}); the {source} file was deleted from the Hub cache, so a retry downloads it again"
    )


def _check_against_etag(path: Path, *, repo_id: str, revision: str, spec: str) -> None:
    """Check a file fetched for an ``hf://`` reference against the ETag the Hub reported for it."""
    etag = hub.cached_etag(path) or hub.remote_etag(repo_id, path.name, revision=revision)
    if etag is not None and len(etag) == 64:
        actual, kind = sha256_file(path), "sha256"
    elif etag is not None and len(etag) == 40:
        actual, kind = git_blob_sha1(path), "git blob id"
    else:
        if path.name in ("model.safetensors", "model.onnx"):
            raise ChecksumError(
                f"{spec}: cannot verify {path.name} (the Hub reported no sha256 ETag for it); not loading it"
            )
        log.info("%s: no ETag to check %s against (a text file, loaded without a pickle)", spec, path.name)
        return
    if actual != etag.lower():
        hub.discard_cached(path)
        raise ChecksumError(
            f"{spec}: {path.name} does not match the {kind} the Hub reported ({actual[:12]}…, expected "
            f"{etag[:12]}…); the file was deleted from the Hub cache, so a retry downloads it again"
        )


# --------------------------------------------------------------------------------------- resolving


def _offline_error(name: str, detail: str) -> ModelNotFound:
    return ModelNotFound(
        f"model {name!r} {detail} and {OFFLINE_VAR}=1 forbids downloading it "
        f"(unset {OFFLINE_VAR}, or run `amt models download {name}` while online)"
    )


def _resolve_entry(entry: ModelEntry, *, use_bundled: bool = True, on_bytes: hub.OnBytes | None = None) -> Resolved:
    if use_bundled:
        folder = bundled_folder(entry)
        if folder is not None:
            for fname, info in entry.files.items():
                if not (folder / fname).is_file():
                    raise ChecksumError(
                        f"model {entry.name!r}: the bundled copy lacks {fname}; reinstall amtcli ({folder})"
                    )
                _check_registry_file(folder / fname, info, entry=entry, source="bundled")
            return Resolved(folder, "bundled", entry)
    if entry.repo_id is None or entry.revision is None:
        raise ModelNotFound(
            f"model {entry.name!r} is only distributed inside the package and this install lacks it "
            f"(expected {bundled_root() or 'amtcli/_models'}/{entry.bundled}); reinstall amtcli"
        )
    repo_id, revision = entry.repo_id, entry.revision

    cached = {f: hub.cached_path(repo_id, f, revision=revision) for f in entry.files}
    if all(p is not None for p in cached.values()):
        for fname, info in entry.files.items():
            _check_registry_file(cached[fname], info, entry=entry, source="cached")
        return Resolved(cached["config.json"].parent, "cached", entry)

    if hub.is_offline():
        missing = ", ".join(f for f, p in cached.items() if p is None)
        raise _offline_error(entry.name, f"is not fully in the Hub cache at {hub.hub_cache_dir()} (missing {missing})")

    paths = {}
    for fname, info in entry.files.items():
        path = hub.fetch_file(repo_id, fname, revision=revision, model=entry.name, on_bytes=on_bytes)
        _check_registry_file(path, info, entry=entry, source="downloaded")
        paths[fname] = path
    return Resolved(paths["config.json"].parent, "downloaded", entry)


def _resolve_hf_ref(spec: str, *, on_bytes: hub.OnBytes | None = None) -> Resolved:
    repo_id, revision = hub.parse_hf_ref(spec)
    required, optional = REQUIRED_FILES, tuple(f for f in RELEASE_FILES if f not in REQUIRED_FILES)
    if hub.is_offline():
        paths = {f: hub.cached_path(repo_id, f, revision=revision) for f in required + optional}
        missing = [f for f in required if paths[f] is None]
        if missing:
            raise _offline_error(
                spec, f"is not in the Hub cache at {hub.hub_cache_dir()} (missing {', '.join(missing)})"
            )
        source = "cached"
    else:
        paths = {}
        for fname in required + optional:
            path = hub.fetch_file(
                repo_id, fname, revision=revision, model=spec, on_bytes=on_bytes, optional=fname in optional
            )
            paths[fname] = path
            if path is not None:
                revision = path.parent.name  # pin the rest of the files to the commit the first one came from
        source = "downloaded"
    for path in paths.values():
        if path is not None:
            _check_against_etag(path, repo_id=repo_id, revision=revision, spec=spec)
    return Resolved(paths["config.json"].parent, source, None)


def resolve_spec(spec: str | os.PathLike, *, on_bytes: hub.OnBytes | None = None) -> Resolved:
    """Like :func:`resolve`, also saying where the model came from."""
    text = os.fspath(spec)
    if not text:
        raise BadInput("empty model name")
    if text.startswith("hf://"):
        return _resolve_hf_ref(text, on_bytes=on_bytes)
    path = Path(text).expanduser()
    registry = load_registry()
    # A registry name means the registry entry (sha256-checked), even when a folder of that name sits
    # in the current directory: a folder is reached by a path (./synthetic, models/x, ~/x, /abs/x).
    looks_like_path = "/" in text or os.sep in text or text.startswith((".", "~"))
    if text in registry and not looks_like_path:
        if path.is_dir():
            log.info("%r is a zoo model name; the folder %s is not used (give ./%s to load it)", text, path, text)
        return _resolve_entry(get_entry(text, registry), on_bytes=on_bytes)
    if path.is_dir():
        read_release_config(path)  # a one-line error if it is not a release folder
        return Resolved(path, "local", None)
    if looks_like_path:
        raise ModelNotFound(f"{text}: no such release folder")
    return _resolve_entry(get_entry(text, registry), on_bytes=on_bytes)


def resolve(spec: str | os.PathLike, *, on_bytes: hub.OnBytes | None = None) -> Path:
    """A model name, release folder or ``hf://owner/repo[@revision]`` -> a verified release folder.

    Order: local folder, bundled copy, Hub cache, download. Raises :class:`ModelNotFound`
    (unknown name, missing file, offline without a cached copy) or :class:`ChecksumError`.
    """
    return resolve_spec(spec, on_bytes=on_bytes).path


def download(spec: str, *, on_bytes: hub.OnBytes | None = None) -> Resolved:
    """Fetch a registry model (or ``hf://`` reference) into the Hub cache, verified, for offline use.

    A model that exists only as a bundled copy resolves to that copy (nothing to download).
    """
    if spec.startswith("hf://"):
        return _resolve_hf_ref(spec, on_bytes=on_bytes)
    entry = get_entry(spec)
    if entry.repo_id is None:
        return _resolve_entry(entry)
    return _resolve_entry(entry, use_bundled=False, on_bytes=on_bytes)


def locate(entry: ModelEntry) -> str:
    """Where a registry model is, without hashing or network: bundled, cached, remote or missing."""
    if bundled_folder(entry) is not None:
        return "bundled"
    if entry.repo_id is not None and entry.revision is not None:
        if all(hub.cached_path(entry.repo_id, f, revision=entry.revision) for f in entry.files):
            return "cached"
        return "remote"
    return "missing"


# ----------------------------------------------------------------------------------------- loading


def load_model(spec: str, *, device: str = "cpu"):
    """Resolve ``spec`` (name, folder or ``hf://`` reference), verify it and load it.

    Returns ``(model, ReleaseConfig)``; the model is in eval mode on ``device``.
    """
    device = resolve_device(device)
    return load_release(resolve(spec), device=device)


__all__ = [
    "ModelEntry",
    "ReleaseConfig",
    "Resolved",
    "bundled_folder",
    "bundled_root",
    "download",
    "load_model",
    "load_registry",
    "locate",
    "resolve",
    "resolve_device",
    "resolve_spec",
    "save_release",
    "load_release",
    "read_release_config",
]
