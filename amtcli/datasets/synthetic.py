"""A dataset written by ``amt synth`` (the format: :mod:`amtcli.datasets.manifest`).

Labels are read with sustain-pedal extension, as the renderer plays the pedal.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetNotFound
from .base import SPLITS, DatasetInfo, Item, ItemList
from .manifest import MANIFEST_NAME, piece_of, read_manifest, row_path

INFO = DatasetInfo(
    name="synthetic",
    folder_names=("synthetic",),
    layout="DATASET/manifest.jsonl with id, audio, label, split, duration_s per line",
    source="`amt synth` (render one from MIDI files)",
)


def read_synthetic(root: Path, **_) -> ItemList:
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise DatasetNotFound(
            f"synthetic: no {MANIFEST_NAME} in {root}. Expected layout: {INFO.layout}. Make one with {INFO.source}."
        )
    rows = read_manifest(root)
    items, skipped = [], []
    if rows.torn:
        skipped.append((rows.torn, "torn last line (an interrupted `amt synth`)"))
    for rec in rows:
        audio, label, split = row_path(root, rec, "audio"), row_path(root, rec, "label"), rec["split"]
        if split not in SPLITS:
            skipped.append((str(audio), f"unknown split {split!r}"))
            continue
        if not audio.is_file() or not label.is_file():
            skipped.append((str(audio), "audio or label file missing"))
            continue
        duration = rec.get("duration_s")
        items.append(
            Item(
                id=rec["id"],
                dataset="synthetic",
                piece=piece_of(rec),
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
