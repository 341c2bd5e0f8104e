"""MAESTRO (Hawthorne et al. 2019): Disklavier performances with aligned MIDI and an official split.

Layout: ``maestro-v<version>.json`` (v2: a list of records; v3: a dict of columns) or
``maestro-v<version>.csv`` at the root, with ``audio_filename``, ``midi_filename``, ``split``,
``canonical_composer``, ``canonical_title``, ``duration``; the files under ``<year>/``.
Offsets are extended by the sustain pedal, the dataset's own convention.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ..errors import DatasetNotFound
from .base import SPLITS, DatasetInfo, Item, ItemList

INFO = DatasetInfo(
    name="maestro",
    folder_names=("maestro", "maestro-v3.0.0", "maestro-v2.0.0"),
    layout="maestro-v3.0.0.csv (or maestro-v2.0.0.json) beside the <year>/ folders",
    source="https://magenta.tensorflow.org/datasets/maestro",
)


def _version_key(path: Path):
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", path.name)
    return (tuple(int(x) for x in m.groups()) if m else (0, 0, 0), path.suffix == ".csv")


def find_metadata(root: Path) -> Path:
    """The newest ``maestro-v*.csv`` / ``maestro-v*.json`` at the root (csv preferred within a version)."""
    found = sorted([*root.glob("maestro-v*.json"), *root.glob("maestro-v*.csv")], key=_version_key)
    if not found:
        raise DatasetNotFound(
            f"maestro: no maestro-v*.csv or maestro-v*.json under {root}. Expected layout: {INFO.layout}. "
            f"Get it from {INFO.source}."
        )
    return found[-1]


def read_metadata(path: Path) -> list[dict]:
    """Metadata records as dicts, whatever the version's format."""
    try:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DatasetNotFound(f"maestro: cannot read {path} ({exc})") from None
    if isinstance(data, list):  # v1/v2 json
        return data
    if isinstance(data, dict) and "audio_filename" in data:  # v3 json: {column: {row: value}}
        rows = data["audio_filename"].keys()
        return [{col: data[col].get(row) for col in data} for row in rows]
    raise DatasetNotFound(f"maestro: {path} is not MAESTRO metadata (no audio_filename column)")


def read_maestro(root: Path, **_) -> ItemList:
    meta = find_metadata(root)
    records = read_metadata(meta)
    items, skipped = [], []
    for rec in records:
        try:
            audio, midi, split = root / rec["audio_filename"], root / rec["midi_filename"], rec["split"]
        except KeyError as exc:
            raise DatasetNotFound(f"maestro: {meta} lacks the column {exc}") from None
        if split not in SPLITS:
            skipped.append((str(audio), f"unknown split {split!r}"))
            continue
        if not audio.is_file() or not midi.is_file():
            skipped.append((str(audio), "audio or MIDI file missing"))
            continue
        duration = rec.get("duration")
        items.append(
            Item(
                id=audio.stem,
                dataset="maestro",
                piece=f"{rec.get('canonical_composer', '?')} / {rec.get('canonical_title', audio.stem)}",
                split=split,
                audio=audio,
                label=midi,
                label_kind="midi",
                sustain=True,
                has_velocity=True,
                duration_s=float(duration) if duration not in (None, "") else None,
            )
        )
    if not items:
        raise DatasetNotFound(
            f"maestro: {meta} lists {len(records)} recording(s) but none of their audio+MIDI files are under "
            f"{root}. Get it from {INFO.source}."
        )
    return ItemList(items, root=root, skipped=skipped)
