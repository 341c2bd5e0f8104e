"""Identify a recording in a MIDI library with the joint audio-score embedding.

1. The library's MIDI files become piano rolls (no rendering), cut into snippets every ``hop_frames``
   and embedded with the score encoder. The index is cached on disk, keyed by the library folder,
   the model's weights and the snippet settings; each file's entry is reused while its path, size
   and modification time are unchanged, so only new or changed files are embedded again.
2. The recording's log-CQT is cut the same way and embedded with the audio encoder.
3. Each recording snippet votes for the piece of its nearest library snippet (cosine similarity),
   with the time offset between the two snippets. Pieces rank by votes; a piece's offset is the most
   common offset among its votes (the piece time at which the recording starts).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import to_dict
from ..errors import BadInput, BadMidi

MIDI_EXTENSIONS = (".mid", ".midi", ".kar")
CACHE_VERSION = 1

ProgressFn = Callable[[int, int, str], None]


# --------------------------------------------------------------------------------------------- model


def load_embedding_model(name_or_path: str = "embedding", *, device: str = "cpu"):
    """A released embedding model by zoo name (the bundled ``embedding``), release folder or ``hf://`` reference."""
    from ..zoo import load_model

    model, cfg = load_model(name_or_path, device=device)
    if cfg.architecture != "embedding":
        raise BadInput(f"{name_or_path}: is a {cfg.architecture!r} model; identification needs an embedding model")
    return model


def model_fingerprint(model) -> str:
    """sha256 of the model's weights (names, shapes and values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# -------------------------------------------------------------------------------------------- index


def default_cache_dir() -> Path:
    """``$AMT_CACHE_DIR`` or ``$XDG_CACHE_HOME/amt`` or ``~/.cache/amt``, plus ``identify``."""
    base = os.environ.get("AMT_CACHE_DIR")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "amt")
    return Path(base) / "identify"


def find_midi_files(library: str | os.PathLike) -> list[Path]:
    """MIDI files under ``library`` (recursive, sorted)."""
    library = Path(library)
    if not library.exists():
        raise BadInput(f"{library}: no such library folder")
    if not library.is_dir():
        raise BadInput(f"{library}: the library must be a folder of MIDI files")
    return sorted(p for p in library.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_EXTENSIONS)


def _windows(n_frames: int, snippet_frames: int, hop_frames: int) -> np.ndarray:
    last = max(0, n_frames - snippet_frames)
    starts = list(range(0, last + 1, hop_frames))
    if starts[-1] != last:
        starts.append(last)  # cover the end
    return np.asarray(starts, np.int64)


def score_snippets(notes, *, model, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A piece's frame roll cut into snippets: ``(m, T, n_keys)`` float32 and their start frames ``(m,)``.
    Snippets without any sounding note are left out."""
    from ..notes import notes_to_rolls

    fc, T = model.feature_config, model.config.snippet_frames
    n_frames = max(T, int(np.ceil(notes.end_s * fc.frame_rate)) + 1)
    roll = notes_to_rolls(notes, n_frames=n_frames, frame_rate=fc.frame_rate, fmin_midi=fc.fmin_midi, n_keys=fc.n_keys)[
        "frame"
    ]
    starts = _windows(n_frames, T, hop_frames)
    keep = np.array([roll[s : s + T].any() for s in starts], bool)
    starts = starts[keep]
    snippets = np.stack([roll[s : s + T] for s in starts]) if len(starts) else np.zeros((0, T, fc.n_keys), np.float32)
    return snippets, starts


@dataclass
class LibraryIndex:
    """Embedded library snippets. ``embeddings (N, D)``, ``file_index (N,)`` into ``files``,
    ``start_frame (N,)``; ``skipped``: (file, reason) for files without usable notes."""

    root: Path
    files: list[str]
    embeddings: np.ndarray
    file_index: np.ndarray
    start_frame: np.ndarray
    frame_rate: float
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_embedded: int = 0  # files embedded in this call (the rest came from the cache)
    cache_path: Path | None = None


def _cache_key(root: Path, model, hop_frames: int) -> str:
    ident = {
        "version": CACHE_VERSION,
        "library": str(root),
        "model": model_fingerprint(model),
        "model_config": to_dict(model.config),
        "feature_config": to_dict(model.feature_config),
        "hop_frames": hop_frames,
        "sustain": True,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, dict]:
    """rel path -> {size, mtime_ns, emb, starts, reason}; empty when missing or unreadable."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            emb, fidx, starts = z["embeddings"], z["file_index"], z["start_frame"]
    except Exception:  # a damaged cache is rebuilt, never trusted
        return {}
    if meta.get("version") != CACHE_VERSION:
        return {}
    out = {}
    for i, (rel, size, mtime_ns, reason) in enumerate(meta["files"]):
        sel = fidx == i
        out[rel] = {"size": size, "mtime_ns": mtime_ns, "emb": emb[sel], "starts": starts[sel], "reason": reason}
    return out


def _write_cache(path: Path, entries: dict[str, dict], files: list[str], dim: int) -> None:
    meta = {
        "version": CACHE_VERSION,
        "files": [[rel, entries[rel]["size"], entries[rel]["mtime_ns"], entries[rel]["reason"]] for rel in files],
    }
    embs = [entries[rel]["emb"] for rel in files]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            meta=np.array(json.dumps(meta)),
            embeddings=np.concatenate(embs).astype(np.float32) if embs else np.zeros((0, dim), np.float32),
            file_index=np.concatenate([np.full(len(e), i, np.int32) for i, e in enumerate(embs)])
            if embs
            else np.zeros(0, np.int32),
            start_frame=np.concatenate([entries[rel]["starts"] for rel in files]).astype(np.int32)
            if embs
            else np.zeros(0, np.int32),
        )
    os.replace(tmp, path)


def index_library(
    library: str | os.PathLike,
    model,
    *,
    hop_frames: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
) -> LibraryIndex:
    """Embed every MIDI file of ``library`` (score side), reusing the on-disk cache where files are unchanged."""
    from ..nets.embedding import embed_snippets
    from ..notes import midi_to_notes

    root = Path(library).resolve()
    paths = find_midi_files(root)
    if not paths:
        raise BadInput(f"{library}: no MIDI files (.mid, .midi) in the library folder")
    T = model.config.snippet_frames
    hop = hop_frames or max(1, T // 4)
    cache_path = Path(cache_dir or default_cache_dir()) / f"library-{_cache_key(root, model, hop)}.npz"
    cached = _read_cache(cache_path) if use_cache else {}
    dim = model.config.embed_dim

    entries: dict[str, dict] = {}
    files: list[str] = []
    n_embedded = 0
    for i, path in enumerate(paths):
        rel = path.relative_to(root).as_posix()
        st = path.stat()
        old = cached.get(rel)
        if old is not None and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
            entries[rel] = old
        else:
            reason = None
            try:
                notes = midi_to_notes(path, sustain=True)
                snippets, starts = score_snippets(notes, model=model, hop_frames=hop)
                if not len(starts):
                    reason = "no notes"
            except BadMidi as exc:
                reason, snippets, starts = str(exc).split(": ", 1)[-1], None, np.zeros(0, np.int64)
            emb = embed_snippets(model, None, snippets)[1] if reason is None else np.zeros((0, dim), np.float32)
            entries[rel] = {
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "emb": emb,
                "starts": starts,
                "reason": reason,
            }
            n_embedded += 1
        files.append(rel)
        if progress is not None:
            progress(i + 1, len(paths), rel)
    if use_cache and (n_embedded or set(cached) != set(files)):
        _write_cache(cache_path, entries, files, dim)

    usable = [rel for rel in files if entries[rel]["reason"] is None]
    skipped = [(rel, entries[rel]["reason"]) for rel in files if entries[rel]["reason"] is not None]
    if not usable:
        raise BadInput(f"{library}: none of the {len(files)} MIDI file(s) has notes that can be used")
    emb = np.concatenate([entries[rel]["emb"] for rel in usable]).astype(np.float32)
    fidx = np.concatenate([np.full(len(entries[rel]["emb"]), i, np.int32) for i, rel in enumerate(usable)])
    starts = np.concatenate([np.asarray(entries[rel]["starts"], np.int64) for rel in usable])
    return LibraryIndex(
        root=root,
        files=usable,
        embeddings=emb,
        file_index=fidx,
        start_frame=starts,
        frame_rate=model.feature_config.frame_rate,
        skipped=skipped,
        n_embedded=n_embedded,
        cache_path=cache_path if use_cache else None,
    )


# ---------------------------------------------------------------------------------------- recording


def audio_snippets(features: np.ndarray, *, model, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-CQT ``(n_frames, n_bins)`` cut into snippets ``(m, T, n_bins)`` with start frames ``(m,)``.
    Silent snippets are left out (all of them are kept when the whole recording is that quiet)."""
    import math

    T = model.config.snippet_frames
    floor = math.log(model.feature_config.log_offset)
    if len(features) < T:
        pad = np.full((T - len(features), features.shape[1]), floor, np.float32)
        features = np.concatenate([features, pad])
    starts = _windows(len(features), T, hop_frames)
    loud = np.array([features[s : s + T].max() > floor + 0.5 for s in starts], bool)
    if loud.any():
        starts = starts[loud]
    return np.stack([features[s : s + T] for s in starts]).astype(np.float32), starts


@dataclass
class Match:
    """One library piece: ``votes`` of ``n_queries`` recording snippets chose it; ``in_time`` of them
    agree (within one hop) on ``offset_s``, the piece time at which the recording starts."""

    file: str
    votes: int
    in_time: int
    offset_s: float
    similarity: float  # mean cosine similarity of the votes


@dataclass
class Identification:
    matches: list[Match]
    n_queries: int
    duration_s: float
    index: LibraryIndex


def rank_pieces(
    query_emb: np.ndarray, query_starts: np.ndarray, index: LibraryIndex, *, hop_frames: int, top: int = 5
) -> list[Match]:
    """Votes of nearest library snippets -> the ``top`` pieces, most votes first."""
    if not len(query_emb):
        return []
    sim = query_emb @ index.embeddings.T
    nearest = np.argmax(sim, axis=1)
    best_sim = sim[np.arange(len(nearest)), nearest]
    piece = index.file_index[nearest]
    offset = index.start_frame[nearest] - np.asarray(query_starts, np.int64)
    matches = []
    for p in np.unique(piece):
        sel = piece == p
        binned = np.rint(offset[sel] / hop_frames).astype(np.int64)
        values, counts = np.unique(binned, return_counts=True)
        # the offset with most votes counting its neighbours (one hop either way) as agreeing
        support = np.array([np.sum(np.abs(binned - v) <= 1) for v in values])
        best = values[int(np.argmax(support * 1000 + counts))]
        agree = np.abs(binned - best) <= 1
        offset_frames = float(np.median(offset[sel][agree]))
        matches.append(
            Match(
                file=index.files[int(p)],
                votes=int(sel.sum()),
                in_time=int(agree.sum()),
                offset_s=offset_frames / index.frame_rate,
                similarity=float(best_sim[sel].mean()),
            )
        )
    matches.sort(key=lambda m: (-m.votes, -m.in_time, -m.similarity, m.file))
    return matches[:top]


def identify_recording(
    recording: str | os.PathLike | np.ndarray,
    library: str | os.PathLike | LibraryIndex,
    *,
    model,
    top: int = 5,
    hop_frames: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
) -> Identification:
    """Which pieces of ``library`` (a MIDI folder, or an index) is ``recording`` (a path, or float32
    mono samples at the model's rate), and where in each does it start?"""
    from ..audio.features import compute_features
    from ..audio.io import load_audio
    from ..nets.embedding import embed_snippets

    if top < 1:
        raise BadInput(f"--top must be at least 1, got {top}")
    T = model.config.snippet_frames
    hop = hop_frames or max(1, T // 4)
    fc = model.feature_config
    if isinstance(recording, np.ndarray):
        audio = np.asarray(recording, np.float32)
    else:
        audio = load_audio(recording, sample_rate=fc.sample_rate)
    if len(audio) == 0:
        raise BadInput(f"{recording}: the recording holds no audio")
    index = (
        library
        if isinstance(library, LibraryIndex)
        else index_library(library, model, hop_frames=hop, cache_dir=cache_dir, use_cache=use_cache, progress=progress)
    )
    snippets, starts = audio_snippets(compute_features(audio, config=fc), model=model, hop_frames=hop)
    query_emb = embed_snippets(model, snippets)[0]
    matches = rank_pieces(query_emb, starts, index, hop_frames=hop, top=top)
    return Identification(matches=matches, n_queries=len(starts), duration_s=len(audio) / fc.sample_rate, index=index)
