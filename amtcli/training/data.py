"""Training examples from datasets written by ``amt synth``: features + label rolls, random crops.

A dataset folder holds ``manifest.jsonl`` (one JSON object per item: ``id``, ``audio``, ``label``,
``features`` (or null), ``split``, ``duration_s``); paths are relative to the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..config import FeatureConfig
from ..errors import DatasetNotFound
from ..notes import NoteArray, midi_to_notes, notes_to_rolls


@dataclass
class Example:
    """One labelled recording: features ``(n_frames, n_bins)`` and its notes."""

    id: str
    features: np.ndarray
    notes: NoteArray

    @property
    def n_frames(self) -> int:
        return len(self.features)


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    folder = Path(folder)
    path = folder / "manifest.jsonl"
    if not path.is_file():
        raise DatasetNotFound(f"{folder}: not a dataset written by `amt synth` (no manifest.jsonl)")
    rows = []
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DatasetNotFound(f"{path}:{line_no}: not valid JSON") from None
    return rows


def load_examples(
    folders: Iterable[str | os.PathLike],
    *,
    split: str,
    feature_config: FeatureConfig,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Example]:
    """Load the ``split`` items of one or more datasets.

    Cached features (``.npy`` written with the same front end) are memory-mapped; items without
    them have their features computed from the audio here.
    """
    from ..audio.features import compute_features
    from ..audio.io import load_audio

    rows: list[tuple[Path, dict]] = []
    for folder in map(Path, folders):
        rows += [(folder, r) for r in read_manifest(folder) if r.get("split") == split]
    rows.sort(key=lambda fr: (str(fr[0]), fr[1]["id"]))
    if limit is not None:
        rows = rows[:limit]
    examples = []
    for i, (folder, row) in enumerate(rows):
        feats = None
        if row.get("features"):
            path = folder / row["features"]
            if path.is_file():
                feats = np.load(path, mmap_mode="r")
                if feats.ndim != 2 or feats.shape[1] != feature_config.n_bins:
                    feats = None
        if feats is None:
            feats = compute_features(load_audio(folder / row["audio"], sample_rate=feature_config.sample_rate), config=feature_config)
        notes = midi_to_notes(folder / row["label"]).pitched()
        examples.append(Example(f"{folder.name}/{row['id']}", feats, notes))
        if on_progress:
            on_progress(i + 1, len(rows))
    return examples


def sample_batch(
    examples: list[Example],
    *,
    batch_size: int,
    crop_frames: int,
    feature_config: FeatureConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random crops: features ``(B, crop_frames, n_bins)`` and rolls ``(B, crop_frames, 88)`` per head.

    Items are drawn with probability proportional to their length; short items are padded with
    silence (the front end's floor value) and empty labels.
    """
    lengths = np.array([max(1, e.n_frames) for e in examples], dtype=np.float64)
    picks = rng.choice(len(examples), size=batch_size, p=lengths / lengths.sum())
    fr = feature_config.frame_rate
    floor = np.float32(np.log(feature_config.log_offset))
    x = np.full((batch_size, crop_frames, feature_config.n_bins), floor, dtype=np.float32)
    y = {k: np.zeros((batch_size, crop_frames, feature_config.n_keys), np.float32) for k in ("onset", "frame", "offset", "velocity")}
    for b, idx in enumerate(picks):
        ex = examples[idx]
        start = int(rng.integers(0, max(1, ex.n_frames - crop_frames + 1)))
        seg = np.asarray(ex.features[start : start + crop_frames])
        x[b, : len(seg)] = seg
        # labels for the crop: notes sounding in it, times relative to the crop start
        t0 = start / fr
        n = ex.notes
        keep = (n.offset_s > t0) & (n.onset_s < t0 + crop_frames / fr)
        sub = n[keep].shifted(seconds=-t0)
        rolls = notes_to_rolls(sub, n_frames=crop_frames, frame_rate=fr, fmin_midi=feature_config.fmin_midi, n_keys=feature_config.n_keys)
        # a note that began before the crop has no onset inside it: notes_to_rolls already skips
        # negative onset frames, so only its sustain is labelled.
        for k in y:
            y[k][b] = rolls[k]
    return x, y
