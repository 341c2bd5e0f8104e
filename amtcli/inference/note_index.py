"""The note index of a MIDI library for ``amt identify --method transcription``: each file's notes
(onset, offset, pitch) and its bag of symbolic fingerprint codes (:mod:`amtcli.fingerprint`),
cached on disk and refreshed per file.

This module owns the cache's format: one ``notes-<key>.npz`` per library folder and fingerprint
settings under the identify cache folder (``$AMT_CACHE_DIR/identify``), holding a JSON ``meta``
(format version, settings, and per file: path relative to the library, size, mtime_ns, sha256,
the reason it was skipped or null, its note and code counts) and the arrays of every file in the
meta's order: ``onset_s``/``offset_s`` float32, ``pitch`` uint8, ``codes`` int32, ``counts`` uint16.
A file's entry is reused while its size and modification time are unchanged, or when they changed
but its sha256 did not (a copy, a ``touch``); otherwise the file is read again. Files are read in
``jobs`` worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadInput, BadMidi
from ..fingerprint import FingerprintConfig, FingerprintIndex, bag_of_codes, note_codes
from ..notes import NoteArray

INDEX_VERSION = 1
SAVE_EVERY_S = 60.0  # while indexing, the cache is written at least this often
ProgressFn = Callable[[int, int, str], None]


@dataclass
class NoteLibrary:
    """A library's notes and fingerprint index. ``files``: usable files (relative to ``root``), in
    the order of the index's pieces; ``skipped``: (file, reason); ``n_indexed``: files read in this
    call (the rest came from the cache); ``seconds``: wall time of this call's indexing."""

    root: Path
    files: list[str]
    index: FingerprintIndex
    onset_s: list[np.ndarray]
    offset_s: list[np.ndarray]
    pitch: list[np.ndarray]
    config: FingerprintConfig
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_indexed: int = 0
    seconds: float = 0.0
    cache_path: Path | None = None

    def notes(self, i: int) -> NoteArray:
        """The notes of piece ``i`` (velocity 64, program 0)."""
        n = len(self.onset_s[i])
        return NoteArray(
            self.onset_s[i].astype(np.float64),
            self.offset_s[i].astype(np.float64),
            self.pitch[i].astype(np.int64),
            np.full(n, 64),
            np.zeros(n, np.int64),
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_entry(path: str | os.PathLike, config: FingerprintConfig, sha256: str | None = None) -> dict:
    """One MIDI file -> its cache entry (notes, codes, counts; ``reason`` set when it cannot be used)."""
    from ..notes import midi_to_notes

    path = Path(path)
    st = path.stat()
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256 or _sha256(path), "reason": None}
    try:
        notes = midi_to_notes(path, sustain=True).pitched()
    except BadMidi as exc:
        notes = NoteArray.empty()
        entry["reason"] = str(exc).split(": ", 1)[-1]
    notes = notes.sorted() if len(notes) else notes
    codes, counts = bag_of_codes(note_codes(notes, config=config)[0])
    if entry["reason"] is None and not len(codes):
        entry["reason"] = "no notes" if not len(notes) else "too few notes to fingerprint"
    entry.update(
        onset_s=notes.onset_s.astype(np.float32),
        offset_s=notes.offset_s.astype(np.float32),
        pitch=np.clip(notes.pitch, 0, 127).astype(np.uint8),
        codes=codes.astype(np.int32),
        counts=np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16),
    )
    return entry


def _worker_init(parent_pid: int) -> None:
    from ..workers import die_with_parent

    die_with_parent(parent_pid)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _read_one(args) -> tuple[str, dict]:
    rel, path, config, sha = args
    return rel, read_entry(path, config, sha)


def _cache_path(root: Path, config: FingerprintConfig, cache_dir: str | os.PathLike | None) -> Path:
    from .identify import default_cache_dir

    ident = {"version": INDEX_VERSION, "library": str(root), "config": asdict(config)}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    return Path(cache_dir or default_cache_dir()) / f"notes-{key}.npz"


ARRAYS = ("onset_s", "offset_s", "pitch", "codes", "counts")
_LENGTH = {"onset_s": "n_notes", "offset_s": "n_notes", "pitch": "n_notes", "codes": "n_codes", "counts": "n_codes"}


def _read_cache(path: Path, config: FingerprintConfig) -> dict[str, dict]:
    """rel -> entry; empty when missing, unreadable, of another version or of other settings."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("version") != INDEX_VERSION or meta.get("config") != asdict(config):
                return {}
            arrays = {k: z[k] for k in ARRAYS}
        out = {}
        pos = {"n_notes": 0, "n_codes": 0}
        for rel, size, mtime_ns, sha, reason, n_notes, n_codes in meta["files"]:
            lens = {"n_notes": n_notes, "n_codes": n_codes}
            e = {"size": size, "mtime_ns": mtime_ns, "sha256": sha, "reason": reason}
            for k in ARRAYS:
                a = pos[_LENGTH[k]]
                e[k] = arrays[k][a : a + lens[_LENGTH[k]]]
            for k in pos:
                pos[k] += lens[k]
            out[rel] = e
        return out
    except Exception:  # a damaged cache is rebuilt, never trusted
        return {}


def _write_cache(path: Path, entries: dict[str, dict], files: list[str], config: FingerprintConfig) -> None:
    meta = {
        "version": INDEX_VERSION,
        "config": asdict(config),
        "files": [
            [
                rel,
                entries[rel]["size"],
                entries[rel]["mtime_ns"],
                entries[rel]["sha256"],
                entries[rel]["reason"],
                len(entries[rel]["onset_s"]),
                len(entries[rel]["codes"]),
            ]
            for rel in files
        ],
    }
    dtypes = {"onset_s": np.float32, "offset_s": np.float32, "pitch": np.uint8, "codes": np.int32, "counts": np.uint16}
    arrays = {
        k: (np.concatenate([entries[rel][k] for rel in files]) if files else np.zeros(0)).astype(dtypes[k])
        for k in ARRAYS
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def index_notes(
    library: str | os.PathLike | list,
    *,
    config: FingerprintConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    jobs: int = 1,
    progress: ProgressFn | None = None,
) -> NoteLibrary:
    """Index every MIDI file of ``library`` (a folder, searched recursively; or a list of files, then
    named by their absolute paths), reusing the on-disk cache for unchanged files."""
    from .identify import find_midi_files

    t0 = time.perf_counter()
    config = config or FingerprintConfig()
    if isinstance(library, (list, tuple)):
        paths = sorted({Path(p).resolve() for p in library})
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise BadInput(f"{missing[0]}: no such MIDI file")
        root = Path("/")
        key_root = Path("list:")  # one cache for every list: entries of files not listed now are kept
    else:
        root = Path(library).resolve()
        paths = find_midi_files(root)
        key_root = root
    if not paths:
        raise BadInput(f"{library}: no MIDI files (.mid, .midi) in the library folder")
    cache_path = _cache_path(key_root, config, cache_dir)
    cached = _read_cache(cache_path, config) if use_cache else {}

    entries: dict[str, dict] = {}
    files: list[str] = []
    todo = []
    changed_meta = False
    for path in paths:
        rel = path.relative_to(root).as_posix()
        files.append(rel)
        st = path.stat()
        old = cached.get(rel)
        if old is not None and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
            entries[rel] = old
            continue
        sha = _sha256(path)
        if old is not None and old["sha256"] == sha:  # touched or copied, same bytes
            entries[rel] = {**old, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            changed_meta = True
            continue
        todo.append((rel, str(path), config, sha))

    done = len(files) - len(todo)
    if progress is not None:
        progress(done, len(files), "")
    last_write = time.monotonic()

    def finished(rel: str, entry: dict) -> None:
        # a long first indexing keeps what it has read: the cache is written every SAVE_EVERY_S
        nonlocal done, last_write
        entries[rel] = entry
        done += 1
        if progress is not None:
            progress(done, len(files), rel)
        if use_cache and time.monotonic() - last_write > SAVE_EVERY_S:
            extra = [f for f in cached if f not in entries] if key_root != root else []
            _write_cache(cache_path, {**cached, **entries}, [f for f in files if f in entries] + extra, config)
            last_write = time.monotonic()

    if todo and jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
        ) as pool:
            for rel, entry in pool.map(_read_one, todo, chunksize=4):
                finished(rel, entry)
    else:
        for item in todo:
            finished(*_read_one(item))
    if key_root != root:  # a list: keep the cached files it does not name
        files_kept = [f for f in cached if f not in entries]
        entries.update({f: cached[f] for f in files_kept})
    else:
        files_kept = []
    if use_cache and (todo or changed_meta or set(cached) != set(files) | set(files_kept)):
        _write_cache(cache_path, entries, files + files_kept, config)

    usable = [rel for rel in files if entries[rel]["reason"] is None]
    skipped = [(rel, entries[rel]["reason"]) for rel in files if entries[rel]["reason"] is not None]
    if not usable:
        raise BadInput(f"{library}: none of the {len(files)} MIDI file(s) has notes that can be used")
    index = FingerprintIndex.build([(entries[rel]["codes"], entries[rel]["counts"]) for rel in usable])
    return NoteLibrary(
        root=root,
        files=usable,
        index=index,
        onset_s=[entries[rel]["onset_s"] for rel in usable],
        offset_s=[entries[rel]["offset_s"] for rel in usable],
        pitch=[entries[rel]["pitch"] for rel in usable],
        config=config,
        skipped=skipped,
        n_indexed=len(todo),
        seconds=time.perf_counter() - t0,
        cache_path=cache_path if use_cache else None,
    )
