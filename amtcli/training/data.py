"""Training examples: features + label rolls, random crops.

A *source* is either a folder written by ``amt synth`` or any dataset that
:func:`amtcli.datasets.load_dataset` reads, written ``NAME:ROOT`` (``guitarset:/data/GuitarSet``,
``pairs:takes/``; ``NAME:`` alone means ``$AMT_DATA/<name>``). See :func:`dataset_source`.

An ``amt synth`` folder (the format: :mod:`amtcli.datasets.manifest`) may store features, which
are memory-mapped. Features of every other recording are computed from
the audio on load and held in memory; with ``cache_dir`` they are also written there as ``.npy``
(keyed by the audio file's path, size, mtime and the front end) and memory-mapped on the next load.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..config import FeatureConfig
from ..datasets.manifest import read_manifest, row_path, same_front_end, stored_feature_config
from ..notes import NoteArray, midi_to_notes, notes_to_rolls


@dataclass
class Example:
    """One labelled recording: features ``(n_frames, n_bins)`` and its notes."""

    id: str
    features: np.ndarray
    notes: NoteArray
    audio: Path | None = None  # the recording the features came from (waveform-domain noise reads it)

    @property
    def n_frames(self) -> int:
        return len(self.features)


def dataset_source(name: str, root: str | os.PathLike | None = None) -> str:
    """The source string of a dataset known to :func:`amtcli.datasets.load_dataset`: ``NAME:ROOT``."""
    from ..datasets import dataset_info

    dataset_info(name)  # unknown names fail here
    return f"{name}:{'' if root is None else Path(root).expanduser().resolve()}"


def parse_source(source: str | os.PathLike) -> tuple[str | None, Path | None]:
    """``(dataset name, root)`` for ``NAME:ROOT`` sources, ``(None, folder)`` for ``amt synth`` folders."""
    from ..datasets import DATASET_NAMES

    text = os.fspath(source)
    name, sep, rest = text.partition(":")
    if sep and name in DATASET_NAMES:
        return name, (Path(rest) if rest else None)
    return None, Path(text)


@dataclass
class _Entry:
    key: tuple[str, str]  # sort key: (source, item id)
    id: str
    audio: Path
    features: Path | None  # stored features (amt synth --features)
    notes: Callable[[], NoteArray]
    features_config: dict | None = None  # the front end the stored features were made with


def _entries(sources: Iterable[str | os.PathLike], split: str, plan=None) -> list[_Entry]:
    from ..datasets import load_dataset

    out: list[_Entry] = []
    for source in sources:
        name, root = parse_source(source)
        if name is None:
            folder = root
            stored_fc = stored_feature_config(folder)
            for r in read_manifest(folder):
                if r["split"] != split:
                    continue
                label = row_path(folder, r, "label")
                out.append(
                    _Entry(
                        (str(folder), r["id"]),
                        f"{folder.name}/{r['id']}",
                        row_path(folder, r, "audio"),
                        row_path(folder, r, "features"),
                        lambda label=label: midi_to_notes(label).pitched(),
                        stored_fc,
                    )
                )
        else:
            for item in load_dataset(name, root=root, split=split, plan=plan):
                out.append(
                    _Entry(
                        (os.fspath(source), item.id),
                        f"{name}/{item.id}",
                        item.audio,
                        None,
                        lambda item=item: item.load_notes().pitched(),
                    )
                )
    out.sort(key=lambda e: e.key)
    return out


def feature_cache_path(audio: Path, *, cache_dir: Path, feature_config: FeatureConfig) -> Path:
    """Where the cached features of ``audio`` live: a hash of its path, size, mtime and the front end."""
    from ..config import to_dict

    st = audio.stat()
    key = json.dumps([str(audio.resolve()), st.st_size, st.st_mtime_ns, to_dict(feature_config)], sort_keys=True)
    return Path(cache_dir) / f"{hashlib.sha1(key.encode()).hexdigest()[:24]}.npy"


def _valid(feats: np.ndarray | None, fc: FeatureConfig) -> bool:
    return feats is not None and feats.ndim == 2 and feats.shape[1] == fc.n_bins


def _features(entry: _Entry, fc: FeatureConfig, cache_dir: Path | None, *, load: bool = True) -> np.ndarray | None:
    from ..audio.features import compute_features
    from ..audio.io import load_audio

    # stored features only when they come from this very front end (another hop, filter or input
    # level gives features of the right width but the wrong meaning): else they are computed anew
    if entry.features is not None and entry.features.is_file() and same_front_end(entry.features_config, fc):
        feats = np.load(entry.features, mmap_mode="r")
        if _valid(feats, fc):
            return feats
    cached = feature_cache_path(entry.audio, cache_dir=cache_dir, feature_config=fc) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            feats = np.load(cached, mmap_mode="r")
        except (ValueError, OSError):
            feats = None
        if _valid(feats, fc):
            return feats if load else None
    feats = compute_features(load_audio(entry.audio, sample_rate=fc.sample_rate), config=fc)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, feats)
        os.replace(tmp, cached)
    return feats


def load_examples(
    sources: Iterable[str | os.PathLike],
    *,
    split: str,
    feature_config: FeatureConfig,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    split_plan=None,
) -> list[Example]:
    """Load the ``split`` items of one or more sources (``amt synth`` folders or ``NAME:ROOT``).

    ``split_plan``: a :class:`~amtcli.datasets.SplitPlan` that re-splits the ``NAME:ROOT``
    sources by piece (k-fold); ``amt synth`` folders keep their manifest's split.

    Stored features (``.npy`` written with the same front end) are memory-mapped; the features of
    other items are computed from the audio here (and cached in ``cache_dir`` when given).
    Items are sorted by (source, id); ``limit`` keeps the first ones.
    """
    entries = _entries(sources, split, split_plan)
    if limit is not None:
        entries = entries[:limit]
    cache = Path(cache_dir) if cache_dir is not None else None
    examples = []
    for i, entry in enumerate(entries):
        feats = _features(entry, feature_config, cache)
        examples.append(Example(entry.id, feats, entry.notes(), entry.audio))
        if on_progress:
            on_progress(i + 1, len(entries))
    return examples


def cache_features(
    sources: Iterable[str | os.PathLike],
    *,
    split: str,
    feature_config: FeatureConfig,
    cache_dir: str | os.PathLike,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
    on_progress: Callable[[int, int], None] | None = None,
    split_plan=None,
) -> int:
    """Compute and cache the features of every ``shard[1]``-th item starting at ``shard[0]`` (one
    process's share when several fill the cache together). Returns the number of items computed."""
    entries = _entries(sources, split, split_plan)
    if limit is not None:
        entries = entries[:limit]
    rank, world = shard
    mine = entries[rank::world]
    for i, entry in enumerate(mine):
        _features(entry, feature_config, Path(cache_dir), load=False)
        if on_progress:
            on_progress(i + 1, len(mine))
    return len(mine)


def sample_batch(
    examples: list[Example],
    *,
    batch_size: int,
    crop_frames: int,
    feature_config: FeatureConfig,
    rng: np.random.Generator,
    return_crops: bool = False,
):
    """Random crops: features ``(B, crop_frames, n_bins)`` and rolls ``(B, crop_frames, 88)`` per head.

    Items are drawn with probability proportional to their length; short items are padded with
    silence (the front end's floor value) and empty labels. ``return_crops``: also return
    ``[(example index, first frame), ...]``, one per row.
    """
    lengths = np.array([max(1, e.n_frames) for e in examples], dtype=np.float64)
    picks = rng.choice(len(examples), size=batch_size, p=lengths / lengths.sum())
    fr = feature_config.frame_rate
    floor = np.float32(np.log(feature_config.log_offset))
    x = np.full((batch_size, crop_frames, feature_config.n_bins), floor, dtype=np.float32)
    y = {
        k: np.zeros((batch_size, crop_frames, feature_config.n_keys), np.float32)
        for k in ("onset", "frame", "offset", "velocity")
    }
    crops = []
    for b, idx in enumerate(picks):
        ex = examples[idx]
        start = int(rng.integers(0, max(1, ex.n_frames - crop_frames + 1)))
        crops.append((int(idx), start))
        seg = np.asarray(ex.features[start : start + crop_frames])
        x[b, : len(seg)] = seg
        # labels for the crop: notes sounding in it, times relative to the crop start
        t0 = start / fr
        n = ex.notes
        keep = (n.offset_s > t0) & (n.onset_s < t0 + crop_frames / fr)
        sub = n[keep].shifted(seconds=-t0)
        rolls = notes_to_rolls(
            sub, n_frames=crop_frames, frame_rate=fr, fmin_midi=feature_config.fmin_midi, n_keys=feature_config.n_keys
        )
        # a note that began before the crop has no onset inside it: notes_to_rolls already skips
        # negative onset frames, so only its sustain is labelled.
        for k in y:
            y[k][b] = rolls[k]
    if return_crops:
        return x, y, crops
    return x, y
