"""The dataset format ``amt synth`` writes, owned here: file names, manifest fields, splits, and how
a manifest is read and written. Every reader (``amt train``, ``-d synthetic``, the embedding, the
unlabeled audio of domain confusion) and the writer (:mod:`amtcli.synth.dataset`) call this module.

Layout of a dataset folder::

    DATASET/dataset.json        format, format version, the settings it was made with
    DATASET/manifest.jsonl      one JSON object per item, appended as items are finished
    DATASET/audio/<id>.flac     the audio (paths in the manifest are relative to DATASET)
    DATASET/labels/<id>.mid     the notes heard in the audio
    DATASET/features/<id>.npy   float32 (n_frames, n_bins) log-CQT, when made with --features

A manifest line has at least ``id``, ``audio``, ``label`` and ``split`` (``train``, ``validation``
or ``test``); ``features`` (a path or null) and ``duration_s`` are written for every item; the
first of the optional fields ``piece``, ``source``, ``source_midi``, ``midi`` names the source
piece that groups items rendered from one MIDI file (default: the item's ``id``). The writer adds
more fields (renderer, soundfont, augmentation...) that readers may ignore.

Paths are relative to the dataset folder and stay inside it: an absolute path, ``~`` or a ``..``
part makes the line a bad line (a crafted manifest must not make amt read, or a rerun of
``amt synth`` delete, files elsewhere).

A torn line: the writer appends whole lines, so a crash or kill while writing can cut short only
the *last* line. Every reader skips a torn last line (and says so in ``Manifest.torn``); any other
line that is not a JSON object with the required fields is an error naming the file and the line.
The writer repairs a torn manifest when it continues the dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DatasetNotFound
from .base import SPLITS

FORMAT = "amt-synth"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
DATASET_JSON = "dataset.json"
REQUIRED_FIELDS = ("id", "audio", "label", "split")
PATH_FIELDS = ("audio", "label", "features")
PIECE_FIELDS = ("piece", "source", "source_midi", "midi")

__all__ = [
    "DATASET_JSON",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PIECE_FIELDS",
    "REQUIRED_FIELDS",
    "SPLITS",
    "Manifest",
    "manifest_path",
    "piece_of",
    "read_manifest",
    "row_path",
    "same_front_end",
    "stored_feature_config",
    "write_manifest",
]


class Manifest(list):
    """The rows of a manifest (dicts, in file order). ``torn``: ``"path:line"`` of a torn last line
    that was skipped, else None. ``folder``: the dataset folder."""

    def __init__(self, rows: list[dict[str, Any]], *, folder: Path, torn: str | None = None):
        super().__init__(rows)
        self.folder = folder
        self.torn = torn


def manifest_path(path: str | os.PathLike) -> Path:
    """``DATASET/manifest.jsonl`` for a dataset folder (or the manifest file itself)."""
    path = Path(path)
    return path if path.name == MANIFEST_NAME and not path.is_dir() else path / MANIFEST_NAME


def _path_problem(field: str, value: str) -> str | None:
    """Why ``value`` does not name a file inside the dataset folder: absolute, ``~``, a ``..`` part,
    a backslash or a NUL. Checked on the text, so a dataset may hold symlinked sub-folders."""
    if "\0" in value or "\\" in value:
        return f"{field} {value!r} is not a plain relative path"
    parts = PurePosixPath(value).parts
    if value.startswith(("/", "~")) or ".." in parts or not parts:
        return f"{field} {value!r} leaves the dataset folder"
    return None


def _problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"a {type(row).__name__}, not an object"
    missing = [k for k in REQUIRED_FIELDS if not isinstance(row.get(k), str) or not row.get(k)]
    if missing:
        return f"no {', '.join(missing)}"
    if row.get("features") is not None and not isinstance(row["features"], str):
        return f"features {row['features']!r} is not a path"
    for field in PATH_FIELDS:
        if row.get(field):
            problem = _path_problem(field, row[field])
            if problem is not None:
                return problem
    return None


def read_manifest(path: str | os.PathLike, *, missing_ok: bool = False) -> Manifest:
    """The rows of a dataset's manifest (``path``: the dataset folder or its ``manifest.jsonl``).

    A torn last line is skipped (see the module docstring); another bad line raises
    :class:`DatasetNotFound` naming ``file:line``. A folder without a manifest is an error too,
    unless ``missing_ok`` (then: no rows).
    """
    file = manifest_path(path)
    folder = file.parent
    if not file.is_file():
        if missing_ok:
            return Manifest([], folder=folder)
        if not folder.is_dir():
            raise DatasetNotFound(f"{folder}: no such dataset folder")
        raise DatasetNotFound(f"{folder}: not a dataset written by `amt synth` (no {MANIFEST_NAME})")
    with open(file, "rb") as f:
        lines = [(number, raw) for number, raw in enumerate(f, 1) if raw.strip()]
    rows: list[dict[str, Any]] = []
    torn = None
    for i, (number, raw) in enumerate(lines):
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if i == len(lines) - 1 and not raw.endswith(b"\n"):
                torn = f"{file}:{number}"  # cut short by an interrupted `amt synth`
                continue
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise DatasetNotFound(f"{file}:{number}: not a manifest line ({reason})") from None
        problem = _problem(row)
        if problem is not None:
            raise DatasetNotFound(f"{file}:{number}: not a manifest line ({problem})")
        rows.append(row)
    return Manifest(rows, folder=folder, torn=torn)


def stored_feature_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The front end the stored features of a dataset were computed with (``dataset.json``'s
    ``feature_config``), or None when the dataset has none or its ``dataset.json`` cannot be read."""
    try:
        meta = json.loads((Path(folder) / DATASET_JSON).read_text())
    except (OSError, ValueError):
        return None
    fc = meta.get("feature_config") if isinstance(meta, dict) else None
    return fc if isinstance(fc, dict) else None


def _parsed_front_end(stored: dict[str, Any] | None):
    """``stored`` (:func:`stored_feature_config`) as a ``FeatureConfig``, or None when absent or unreadable."""
    from ..config import FeatureConfig, from_dict
    from ..errors import AmtError

    if stored is None:
        return None
    try:
        return from_dict(FeatureConfig, stored)
    except (AmtError, TypeError, ValueError):
        return None


def same_front_end(stored: dict[str, Any] | None, feature_config: Any) -> bool:
    """Whether features stored with front end ``stored`` (:func:`stored_feature_config`) are those
    ``feature_config`` gives. Another hop, filter or input level gives features of the same width but
    another meaning, so every reader of stored features asks this, not the width."""
    parsed = _parsed_front_end(stored)
    return parsed is not None and parsed == feature_config


def shared_front_end(folders):
    """The front end (``FeatureConfig``) every dataset folder stored its features with, or None when
    one stored none or they differ (what a new training run on those folders should read with)."""
    found = {_parsed_front_end(stored_feature_config(d)) for d in folders}
    return found.pop() if len(found) == 1 and None not in found else None


def piece_of(row: dict[str, Any]) -> str:
    """The source piece of an item: the first of :data:`PIECE_FIELDS` it has, else its id."""
    for name in PIECE_FIELDS:
        value = row.get(name)
        if value:
            return str(value)
    return str(row["id"])


def row_path(folder: str | os.PathLike, row: dict[str, Any], field: str) -> Path | None:
    """The file a row's ``audio``, ``label`` or ``features`` field names (None for no features)."""
    if field not in PATH_FIELDS:
        raise ValueError(f"{field!r} is not a path field of a manifest line")
    value = row.get(field)
    if not value:
        return None
    problem = _path_problem(field, value) if isinstance(value, str) else f"{field} {value!r} is not a path"
    if problem is not None:
        raise DatasetNotFound(f"{folder}: {problem}")
    return Path(folder) / value


def write_manifest(folder: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Replace ``folder/manifest.jsonl`` with ``rows``, atomically."""
    file = Path(folder) / MANIFEST_NAME
    tmp = file.with_name(f".{MANIFEST_NAME}.tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, file)
    return file
