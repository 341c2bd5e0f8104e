"""The Hugging Face Hub side of the zoo: cache look-ups, downloads, discarding bad cached files.

Settings are read from the environment at call time, not at import: ``HF_ENDPOINT`` (passed to
``huggingface_hub`` explicitly, because the library reads it once when first imported),
``HF_HUB_CACHE`` / ``HF_HOME`` and ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import BadInput, ModelNotFound

log = logging.getLogger(__name__)

OnBytes = Callable[[str, int], None]
"""Progress callback: ``on_bytes(filename, n_bytes)`` with the bytes received since the last call."""

_HEX = re.compile(r"^[0-9a-f]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_ETAG = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
# Git's ref-name rules (git check-ref-format), over a conservative character set: components of
# letters, digits and ``._+-``, separated by single slashes, none starting with ``.`` or ending in
# ``.lock``; no ``..``, no leading ``-``, no trailing ``.``. Such a name cannot leave refs/ in a cache.
_REF_COMPONENT = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")
_TRUE = {"1", "on", "yes", "true"}


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (checked now, and as ``huggingface_hub`` saw it at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` as set now (``None``: the library's default, huggingface.co)."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


def hub_cache_dir() -> Path:
    """The Hub cache folder: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else the library default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def is_valid_revision(revision: str) -> bool:
    """A 40-hex commit, or a branch/tag name that follows Git's ref rules (see ``_REF_COMPONENT``)."""
    if _COMMIT.match(revision):
        return True
    if (
        not revision
        or revision == "@"
        or revision.startswith("-")
        or revision.endswith(".")
        or ".." in revision
        or "@{" in revision
    ):
        return False
    return all(_REF_COMPONENT.match(part) and not part.endswith(".lock") for part in revision.split("/"))


def check_revision(revision: str, *, where: str) -> str:
    """``revision`` if :func:`is_valid_revision`, else :class:`BadInput` naming ``where``."""
    if not is_valid_revision(revision):
        raise BadInput(
            f"{where}: bad revision {revision!r} (give a 40-hex commit or a branch/tag name: letters, digits, "
            "'._+-' and single '/', no '..')"
        )
    return revision


def parse_hf_ref(spec: str) -> tuple[str, str]:
    """``hf://owner/repo[@revision]`` -> ``(repo_id, revision)``; the revision defaults to ``main``.

    The revision must be a 40-hex commit or a Git ref name (:func:`is_valid_revision`): it becomes a
    file name in the Hub cache, so ``@../../x`` is refused here, before any request.
    """
    if not spec.startswith("hf://"):
        raise BadInput(f"{spec!r} is not an hf://owner/repo[@revision] reference")
    body = spec[len("hf://") :]
    repo_id, _, revision = body.partition("@")
    repo_id = repo_id.strip("/")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise BadInput(f"{spec!r}: expected hf://owner/repo[@revision]")
    return repo_id, check_revision(revision or "main", where=spec)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def cached_path(repo_id: str, filename: str, *, revision: str) -> Path | None:
    """The file in the Hub cache at ``revision`` (a commit or a ref seen before), or ``None``."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir()), revision=revision)
    return Path(found) if isinstance(found, str) else None


def _progress_class(filename: str, on_bytes: OnBytes):
    """A stand-in for tqdm that forwards byte counts to ``on_bytes`` (huggingface_hub accepts any such class)."""

    class _ForwardBytes:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            if n:
                on_bytes(filename, int(n))

        def close(self):
            pass

    return _ForwardBytes


def fetch_file(
    repo_id: str,
    filename: str,
    *,
    revision: str,
    model: str,
    on_bytes: OnBytes | None = None,
    optional: bool = False,
) -> Path | None:
    """Download one file into the Hub cache (or find it there). Returns its snapshot path.

    Every failure becomes :class:`ModelNotFound` naming ``model``; with ``optional``, a file the
    repository does not have returns ``None`` instead.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision[:12]}"
    check_revision(revision, where=f"model {model!r}")
    commit = None
    try:
        if not is_offline() and not (_COMMIT.match(revision) and cached_path(repo_id, filename, revision=revision)):
            commit = _check_metadata(repo_id, filename, revision=revision, model=model)
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=str(hub_cache_dir()),
            endpoint=hub_endpoint(),
            library_name="amtcli",
            library_version=__version__,
            local_files_only=is_offline(),
            tqdm_class=_progress_class(filename, on_bytes) if on_bytes else None,
        )
    except HFValidationError as exc:
        raise BadInput(f"model {model!r}: bad Hub reference {repo_id!r} ({_first_line(exc)})") from None
    except RepositoryNotFoundError:
        raise ModelNotFound(f"model {model!r}: the Hub has no repository {repo_id!r} (or it is private)") from None
    except RevisionNotFoundError:
        raise ModelNotFound(f"model {model!r}: repository {repo_id!r} has no revision {revision!r}") from None
    except LocalEntryNotFoundError as exc:
        cause = exc.__cause__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        raise ModelNotFound(
            f"model {model!r}: could not reach the Hub for {filename} from {where} and it is not cached{detail}"
        ) from None
    except EntryNotFoundError:
        if optional:
            return None
        raise ModelNotFound(f"model {model!r}: {where} has no file {filename}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise ModelNotFound(f"model {model!r}: the Hub answered HTTP {status} for {filename} from {where}") from None
    except OSError as exc:  # connection trouble, size mismatch ("Consistency check failed"), disk full
        raise ModelNotFound(
            f"model {model!r}: downloading {filename} from {where} failed: {_first_line(exc)}"
        ) from None
    except ValueError as exc:  # huggingface_hub's own checks, e.g. "Invalid pointer path" for a bad commit
        raise ModelNotFound(
            f"model {model!r}: the Hub's answer for {filename} from {where} was refused: {_first_line(exc)}"
        ) from None
    path = Path(path)
    if commit is not None and path.parent.name != commit:
        discard_cached(path)
        raise ModelNotFound(
            f"model {model!r}: the Hub answered two different commits for {filename} from {where} "
            f"({commit[:12]}… then {path.parent.name[:12]}…); not using it"
        )
    return path


def _check_metadata(repo_id: str, filename: str, *, revision: str, model: str) -> str | None:
    """Ask the Hub (one HEAD) which commit and ETag ``filename`` has at ``revision``, and check both
    before huggingface_hub turns them into paths in the cache: the commit must be 40 hex digits and
    the ETag a plain file name. Returns the commit (``None`` when the Hub cannot be reached)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    try:
        meta = get_hf_file_metadata(
            hf_hub_url(repo_id, filename, revision=revision, endpoint=hub_endpoint()),
            library_name="amtcli",
            library_version=__version__,
            endpoint=hub_endpoint(),
        )
    except HfHubHTTPError:
        raise  # not found, forbidden...: the caller maps these
    except Exception as exc:  # noqa: BLE001 - the HTTP client's connection errors (classes vary by version)
        log.info("could not ask the Hub about %s/%s: %s", repo_id, filename, exc)
        return None  # hf_hub_download falls back to the cache or says the Hub is unreachable
    where = f"{repo_id}@{revision[:12]}"
    commit = meta.commit_hash
    if commit is None or not _COMMIT.match(commit):
        raise ModelNotFound(
            f"model {model!r}: the Hub answered {commit!r} as the commit of {filename} from {where}, not 40 hex digits; not using it"
        )
    etag = meta.etag
    if etag is None or not _ETAG.match(etag) or ".." in etag:
        raise ModelNotFound(
            f"model {model!r}: the Hub answered {etag!r} as the ETag of {filename} from {where}, not a plain name; not using it"
        )
    return commit


def cached_etag(path: str | os.PathLike) -> str | None:
    """The ETag the Hub reported for a cached file: the name of the blob its snapshot link points to."""
    path = Path(path)
    if not path.is_symlink():
        return None
    name = Path(os.path.realpath(path)).name
    return name if _HEX.match(name) else None


def remote_etag(repo_id: str, filename: str, *, revision: str) -> str | None:
    """The ETag the Hub reports now for a file (one HEAD request), or ``None`` if it cannot be asked."""
    if is_offline():
        return None
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(
            hf_hub_url(repo_id, filename, revision=revision, endpoint=hub_endpoint()),
            library_name="amtcli",
            library_version=__version__,
            endpoint=hub_endpoint(),
        )
    except Exception as exc:  # noqa: BLE001 - any failure means "could not ask"; the caller refuses the file
        log.info("could not fetch the ETag of %s/%s: %s", repo_id, filename, exc)
        return None
    return meta.etag


def discard_cached(path: str | os.PathLike) -> list[Path]:
    """Delete a cached file: its snapshot link and the blob behind it, so the next call downloads it again.

    Returns the paths removed.
    """
    path = Path(path)
    removed = []
    if path.is_symlink():
        blob = Path(os.path.realpath(path))
        path.unlink()
        removed.append(path)
        if blob.is_file():
            blob.unlink()
            removed.append(blob)
    elif path.is_file():
        path.unlink()
        removed.append(path)
    return removed
