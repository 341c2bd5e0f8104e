"""A dataset written by ``amt synth``: ``manifest.jsonl`` at the root, one JSON object a line.

Each line has ``id``, ``audio`` and ``label`` (paths relative to the root), ``split``
(``train`` / ``validation`` / ``test``) and ``duration_s``; the first of the optional fields
``piece``, ``source``, ``source_midi``, ``midi`` names the source piece that groups items rendered
from one MIDI file (default: the item's ``id``). Labels are read with sustain-pedal extension,
as the renderer plays the pedal.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DatasetNotFound
from .base import SPLITS, DatasetInfo, Item, ItemList

INFO = DatasetInfo(
    name="synthetic",
    folder_names=("synthetic",),
    layout="DATASET/manifest.jsonl with id, audio, label, split, duration_s per line",
    source="`amt synth` (render one from MIDI files)",
)
MANIFEST = "manifest.jsonl"
PIECE_FIELDS = ("piece", "source", "source_midi", "midi")


def read_synthetic(root: Path, **_) -> ItemList:
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetNotFound(f"synthetic: no {MANIFEST} in {root}. Expected layout: {INFO.layout}. Make one with {INFO.source}.")
    items, skipped = [], []
    with open(manifest, encoding="utf-8") as f:
        lines = [(number, line) for number, line in enumerate(f, 1) if line.strip()]
    for number, line in lines:
        try:
            rec = json.loads(line)
            item_id, audio, label, split = rec["id"], root / rec["audio"], root / rec["label"], rec["split"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if number == lines[-1][0] and isinstance(exc, json.JSONDecodeError):
                skipped.append((f"{manifest}:{number}", "torn last line (an interrupted `amt synth`)"))
                continue
            raise DatasetNotFound(f"synthetic: {manifest}:{number}: not a manifest line ({exc})") from None
        if split not in SPLITS:
            skipped.append((str(audio), f"unknown split {split!r}"))
            continue
        if not audio.is_file() or not label.is_file():
            skipped.append((str(audio), "audio or label file missing"))
            continue
        duration = rec.get("duration_s")
        items.append(
            Item(
                id=str(item_id),
                dataset="synthetic",
                piece=str(next((rec[k] for k in PIECE_FIELDS if rec.get(k)), item_id)),
                split=split,
                audio=audio,
                label=label,
                label_kind="midi",
                sustain=True,
                duration_s=float(duration) if duration is not None else None,
            )
        )
    if not items:
        raise DatasetNotFound(f"synthetic: {manifest} lists no item whose audio and label files exist")
    return ItemList(items, root=root, skipped=skipped)
