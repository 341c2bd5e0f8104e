"""Audio/score snippet pairs for the joint embedding, read from datasets written by ``amt synth``
(the format: :mod:`amtcli.datasets.manifest`). Items rendered from the same source piece (other
soundfonts, other excerpts, other transpositions) share a *piece* key, so a batch or a retrieval
database never holds the same music twice. Renders of one piece are not assumed to be time-aligned
(``amt synth`` draws each render's excerpt and transposition on its own).

Snippets: ``T`` frames of log-CQT ``(T, n_bins)`` and of the frame piano roll ``(T, n_keys)``
over the same time span.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import FeatureConfig
from ..errors import BadInput, ConfigMismatch, DatasetNotFound
from .manifest import piece_of, row_path, same_front_end, stored_feature_config
from .manifest import read_manifest as _read_manifest


@dataclass
class PairItem:
    """One rendered item. ``features``: float32 ``(n_frames, n_bins)`` (may be a read-only memory map);
    ``roll``: uint8 ``(n_frames, n_keys)`` frame roll of the label MIDI (sustain pedal applied)."""

    id: str
    piece: str
    split: str
    features: np.ndarray
    roll: np.ndarray
    _valid: dict = field(default_factory=dict, repr=False)

    @property
    def n_frames(self) -> int:
        return min(len(self.features), len(self.roll))

    def valid_starts(self, snippet_frames: int, *, min_active: float = 0.5) -> np.ndarray:
        """Start frames of windows in which at least ``min_active`` of the frames have a sounding note."""
        key = (snippet_frames, min_active)
        if key not in self._valid:
            self._valid[key] = active_windows(self.roll[: self.n_frames], snippet_frames, min_active=min_active)
        return self._valid[key]


def active_windows(roll: np.ndarray, snippet_frames: int, *, min_active: float = 0.5) -> np.ndarray:
    """Starts ``s`` of windows ``roll[s:s+T]`` with at least ``min_active * T`` frames holding a note."""
    n = len(roll) - snippet_frames + 1
    if n <= 0:
        return np.zeros(0, np.int64)
    active = np.concatenate([[0], np.cumsum(roll.any(axis=1))])
    counts = active[snippet_frames:] - active[: len(active) - snippet_frames]
    return np.nonzero(counts >= max(1, math.ceil(min_active * snippet_frames)))[0].astype(np.int64)


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """The items of ``folder/manifest.jsonl``, each with an added ``_root`` folder and ``_stored_fc``,
    the front end its stored features were made with (:func:`~amtcli.datasets.manifest.stored_feature_config`)."""
    stored = stored_feature_config(folder)
    return [{**row, "_root": str(folder), "_stored_fc": stored} for row in _read_manifest(folder)]


def load_item(item: dict, *, feature_config: FeatureConfig) -> PairItem:
    """Features (from the ``.npy`` file when it was made with ``feature_config``, else computed from the
    audio) and the frame roll of one item."""
    from ..audio.features import compute_features
    from ..audio.io import load_audio
    from ..notes import midi_to_notes, notes_to_rolls

    root = Path(item["_root"])
    if item.get("features") and same_front_end(item.get("_stored_fc"), feature_config):
        path = row_path(root, item, "features")
        if not path.is_file():
            raise DatasetNotFound(f"{path}: feature file listed in the manifest is missing")
        try:
            features = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise DatasetNotFound(f"{path}: unreadable feature file ({exc})") from None
    else:
        audio = load_audio(row_path(root, item, "audio"), sample_rate=feature_config.sample_rate)
        features = compute_features(audio, config=feature_config)
    if features.ndim != 2 or features.shape[1] != feature_config.n_bins:
        raise ConfigMismatch(
            f"{root / (item.get('features') or item['audio'])}: features of shape {features.shape} do not fit "
            f"the front end ({feature_config.n_bins} bins); re-run `amt synth --features` with this front end"
        )
    notes = midi_to_notes(row_path(root, item, "label"), sustain=True)
    roll = notes_to_rolls(
        notes,
        n_frames=len(features),
        frame_rate=feature_config.frame_rate,
        fmin_midi=feature_config.fmin_midi,
        n_keys=feature_config.n_keys,
    )["frame"].astype(np.uint8)
    return PairItem(id=str(item["id"]), piece=piece_of(item), split=item["split"], features=features, roll=roll)


def load_pair_items(
    data_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    feature_config: FeatureConfig,
    splits: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[PairItem]:
    """Every item of the given dataset folders whose split is in ``splits`` (all when None)."""
    if isinstance(data_dirs, (str, os.PathLike)):
        data_dirs = [data_dirs]
    raw = [item for d in data_dirs for item in read_manifest(d)]
    if splits is not None:
        raw = [item for item in raw if item["split"] in set(splits)]
    items = []
    for i, item in enumerate(raw):
        items.append(load_item(item, feature_config=feature_config))
        if progress is not None:
            progress(i + 1, len(raw))
    return items


# ------------------------------------------------------------------------------------ augmentation


def transpose_pair(
    features: np.ndarray, roll: np.ndarray, semitones: int, *, feature_config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Shift a CQT snippet ``(T, n_bins)`` and its roll ``(T, n_keys)`` by ``semitones`` consistently.

    The CQT moves by ``semitones * bins_per_semitone`` bins (filled with the silence floor), the roll
    by ``semitones`` keys (notes pushed past the keyboard are dropped).
    """
    if semitones == 0:
        return np.array(features, dtype=np.float32), np.array(roll, dtype=np.float32)
    floor = np.float32(math.log(feature_config.log_offset))
    f_out = np.full(features.shape, floor, np.float32)
    r_out = np.zeros(roll.shape, np.float32)
    b = semitones * feature_config.bins_per_semitone
    if semitones > 0:
        f_out[:, b:] = features[:, :-b]
        r_out[:, semitones:] = roll[:, :-semitones]
    else:
        f_out[:, :b] = features[:, -b:]
        r_out[:, :semitones] = roll[:, -semitones:]
    return f_out, r_out


def change_gain(features: np.ndarray, gain_db: float, *, feature_config: FeatureConfig) -> np.ndarray:
    """The log-CQT of the same audio made ``gain_db`` louder: ``log(g * magnitude + offset)``."""
    off = feature_config.log_offset
    mag = np.maximum(np.exp(features) - off, 0.0)
    return np.log(mag * (10.0 ** (gain_db / 20.0)) + off).astype(np.float32)


# ----------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class SnippetKey:
    """Where a snippet pair came from: item index, start frame, transposition in semitones."""

    item: int
    start: int
    semitones: int = 0


def sample_batch(
    items: Sequence[PairItem],
    *,
    batch_size: int,
    snippet_frames: int,
    rng: np.random.Generator,
    feature_config: FeatureConfig,
    max_transpose: int = 0,
    max_gain_db: float = 0.0,
    min_active: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, list[SnippetKey]]:
    """A batch with exactly one audio snippet per score snippet.

    Returns ``audio (B, T, n_bins)``, ``score (B, T, n_keys)`` float32 and the ``B`` snippet keys;
    row ``i`` of both arrays is the same time span of the same item (after the same transposition).
    Pieces are distinct while there are enough of them; when a piece must be used twice, its snippets
    come from one render and never overlap; no two score snippets are equal (a repeated score snippet would make a "non-matching" pair that matches).
    Each slot draws a random render of its piece (soundfont augmentation), a random transposition in
    ``[-max_transpose, max_transpose]`` semitones and a random gain in ``[-max_gain_db, max_gain_db]``.
    """
    T = snippet_frames
    by_piece: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        if len(item.valid_starts(T, min_active=min_active)):
            by_piece.setdefault(item.piece, []).append(i)
    pieces = sorted(by_piece)
    if not pieces:
        raise BadInput(f"no item has a {T}-frame snippet with notes in it (items too short or silent?)")
    order: list[str] = []
    while len(order) < batch_size:
        order.extend(pieces[j] for j in rng.permutation(len(pieces)))
    order = order[:batch_size]

    audio = np.empty((batch_size, T, feature_config.n_bins), np.float32)
    score = np.empty((batch_size, T, feature_config.n_keys), np.float32)
    keys: list[SnippetKey] = []
    seen_rolls: set[bytes] = set()
    taken: dict[str, tuple[int, list[int]]] = {}  # piece -> (render used, starts used)
    slot = 0
    attempts = 0
    while slot < batch_size:
        attempts += 1
        if attempts > 50 * batch_size:
            raise BadInput(
                f"cannot draw {batch_size} distinct snippets of {T} frames from {len(pieces)} piece(s); "
                "use a smaller batch or more data"
            )
        piece = order[slot] if attempts <= batch_size * 10 else pieces[int(rng.integers(len(pieces)))]
        if piece in taken:
            idx = taken[piece][0]
        else:
            idx = by_piece[piece][int(rng.integers(len(by_piece[piece])))]
        item = items[idx]
        starts = item.valid_starts(T, min_active=min_active)
        start = int(starts[int(rng.integers(len(starts)))])
        if any(abs(start - s) < T for s in taken.get(piece, (idx, []))[1]):
            continue
        k = int(rng.integers(-max_transpose, max_transpose + 1)) if max_transpose else 0
        f, r = transpose_pair(
            item.features[start : start + T], item.roll[start : start + T], k, feature_config=feature_config
        )
        if not r.any():
            continue
        sig = np.packbits(r > 0).tobytes()
        if sig in seen_rolls:
            continue
        if max_gain_db:
            f = change_gain(f, float(rng.uniform(-max_gain_db, max_gain_db)), feature_config=feature_config)
        seen_rolls.add(sig)
        taken.setdefault(piece, (idx, []))[1].append(start)
        audio[slot], score[slot] = f, r
        keys.append(SnippetKey(idx, start, k))
        slot += 1
    return audio, score, keys


def retrieval_snippets(
    items: Sequence[PairItem],
    *,
    n: int,
    snippet_frames: int,
    seed: int = 0,
    min_active: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, list[SnippetKey]]:
    """A retrieval database of at most ``n`` distinct snippet pairs, without augmentation.

    Each piece contributes one render, drawn at random (renders of a piece may hold the same music),
    cut into windows that do not overlap (stride ``T``); duplicate score snippets are dropped; when there are more than ``n``
    candidates, ``n`` are drawn at random (seeded). Returns ``audio (m, T, n_bins)``,
    ``score (m, T, n_keys)`` and the keys, ``m <= n``.
    """
    T = snippet_frames
    rng = np.random.default_rng(seed)
    by_piece: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_piece.setdefault(item.piece, []).append(i)
    candidates: list[SnippetKey] = []
    seen: set[bytes] = set()
    for piece in sorted(by_piece):
        renders = by_piece[piece]
        idx = renders[int(rng.integers(len(renders)))]
        item = items[idx]
        for start in item.valid_starts(T, min_active=min_active).tolist():
            if start % T:
                continue
            window = item.roll[start : start + T]
            sig = np.packbits(window > 0).tobytes()
            if sig in seen:
                continue
            seen.add(sig)
            candidates.append(SnippetKey(idx, start, 0))
    if len(candidates) > n:
        pick = np.sort(rng.choice(len(candidates), size=n, replace=False))
        candidates = [candidates[i] for i in pick]
    if not candidates:
        raise BadInput(f"no {T}-frame snippet with notes in the evaluation items")
    audio = np.stack([np.asarray(items[k.item].features[k.start : k.start + T], np.float32) for k in candidates])
    score = np.stack([items[k.item].roll[k.start : k.start + T].astype(np.float32) for k in candidates])
    return audio, score, candidates
