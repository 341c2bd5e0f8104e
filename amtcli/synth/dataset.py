"""The synthetic dataset writer: MIDI files in, labelled audio items out.

The layout of a dataset folder and its manifest are :mod:`amtcli.datasets.manifest`'s; this
writer fills it: ``dataset.json`` holds the format version, the SynthConfig and the FeatureConfig
if features are cached; audio is 16 kHz mono PCM16 FLAC (or .wav); labels hold the notes heard in
the audio, times relative to the excerpt start; each manifest record is described in ``render_items``.

Items are deterministic functions of (source file, render index, seed): ids, excerpts, programs,
transpositions and augmentations are drawn from a per-item seed, so re-running the same command
continues where it stopped and never renders an item twice. (FluidSynth audio is bit-identical
when the same files are rendered together; an item rendered in a different batch, e.g. after a
resume, can differ slightly in a few notes, see ``render_batch``.)

Labels hold *sounding* notes: offsets extended by the sustain pedal (the MAESTRO convention),
drums dropped, transposed with the audio, cut to the excerpt (notes that start in it; offsets
clipped to its end). The audio is rendered from exactly these notes (the pedal baked into their
lengths), so labels and audio agree by construction.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..config import FeatureConfig, to_dict
from ..datasets.manifest import (
    DATASET_JSON,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SPLITS,
    read_manifest,
    write_manifest,
)
from ..errors import AmtError, BadInput, BadMidi, OutputExists
from ..notes import NoteArray, midi_to_notes, notes_to_midi
from .augment import AugmentConfig

MIDI_EXTENSIONS = (".mid", ".midi")
RENDERERS = ("soundfont", "oneshot")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides what a dataset's items are (stored in dataset.json)."""

    renderer: str = "soundfont"
    soundfonts: tuple[str, ...] = ()  # empty = the default soundfont
    programs: tuple[int, ...] | None = None  # None = keep the MIDI's programs
    oneshots: str | None = None  # one-shot bank folder (renderer "oneshot")
    mix_alpha: tuple[float, float] = (0.0, 0.5)
    sample_rate: int = 16000
    excerpt_s: float = 20.0  # 0 = whole pieces
    renders_per_piece: int = 1
    seed: int = 0
    split: tuple[float, float, float] = (0.9, 0.05, 0.05)
    split_by: str = "file"  # "file": hash of the file's bytes; "folder": hash of its folder below the source
    audio_format: str = "flac"
    features: bool = False
    feature_level_db: float | None = None  # input level of the stored features (FeatureConfig.level_db)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    gain: float = 0.5  # FluidSynth master gain (the level is normalised afterwards)
    timing_passes: int = 4  # see amtcli.synth.soundfont


def parse_split(spec: str) -> tuple[float, float, float]:
    """``"90:5:5"`` or ``"0.9,0.05,0.05"`` -> fractions that sum to 1."""
    parts = [p for p in re.split(r"[:,/]", spec.strip()) if p.strip()]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise BadInput(f"--split {spec!r}: expected three numbers like 90:5:5") from None
    if len(vals) != 3 or any(v < 0 for v in vals) or sum(vals) <= 0:
        raise BadInput(f"--split {spec!r}: expected three non-negative numbers like 90:5:5")
    total = sum(vals)
    return tuple(v / total for v in vals)  # type: ignore[return-value]


def parse_range(spec: str, *, name: str, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """``"0.0:0.5"`` -> (0.0, 0.5); a single number means a fixed value."""
    parts = spec.split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise BadInput(f"{name} {spec!r}: expected MIN:MAX") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or vals[0] > vals[1]:
        raise BadInput(f"{name} {spec!r}: expected MIN:MAX with MIN <= MAX")
    if (lo is not None and vals[0] < lo) or (hi is not None and vals[1] > hi):
        raise BadInput(f"{name} {spec!r}: values must lie in [{lo}, {hi}]")
    return vals[0], vals[1]


# ------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """One MIDI file: its path, its key (``<source folder name>/<path below it>``), its split."""

    path: str
    key: str
    split: str


def iter_midi_files(sources: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, str]]:
    """(path, key) for MIDI files and folders (searched recursively), each folder in sorted order."""
    for src in map(Path, sources):
        if src.is_dir():
            root = src.resolve()
            for p in sorted(q for q in root.rglob("*") if q.suffix.lower() in MIDI_EXTENSIONS and q.is_file()):
                yield p, f"{root.name}/{p.relative_to(root).as_posix()}"
        elif src.exists():
            yield src.resolve(), src.name
        else:
            raise BadInput(f"{src}: no such file or folder")


def _unit_hash(text: str | bytes) -> float:
    data = text.encode() if isinstance(text, str) else text
    return int(hashlib.sha1(data).hexdigest()[:12], 16) / float(16**12)


def split_of(path: Path, key: str, *, fractions: tuple[float, float, float], split_by: str) -> str:
    """The split of a source, a pure function of the file (``file``: its bytes, so copies of a piece
    share a split wherever they are) or of its folder (``folder``: all files in one folder, e.g.
    the performances of one piece in ASAP, share a split). Independent of the seed."""
    if split_by == "file":
        u = _unit_hash(b"split:" + hashlib.sha1(path.read_bytes()).digest())
    elif split_by == "folder":
        u = _unit_hash("split:" + key.rsplit("/", 1)[0] if "/" in key else "split:")
    else:
        raise BadInput(f"--split-by {split_by!r}: choose file or folder")
    edges = np.cumsum(fractions)
    for name, edge in zip(SPLITS, edges):
        if u < edge:
            return name
    return SPLITS[-1]


def item_id(key: str, render: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(key).stem).strip("_")[:40] or "item"
    return f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:10]}-{render:02d}"


def item_seed(seed: int, item: str) -> int:
    return int(hashlib.sha1(f"{seed}:{item}".encode()).hexdigest()[:8], 16)


# ------------------------------------------------------------------------------------ dataset dir


def feature_config_of(config: SynthConfig) -> FeatureConfig:
    """The front end of the stored features (``--features``): the default CQT at the dataset's rate and level."""
    return FeatureConfig(sample_rate=config.sample_rate, level_db=config.feature_level_db)


def _config_dict(config: SynthConfig) -> dict:
    return json.loads(json.dumps(to_dict(config)))


def open_dataset(out_dir: Path, config: SynthConfig, *, overwrite: bool, sources: list[str]) -> dict[str, dict]:
    """Create or reopen a dataset folder; returns the records already written (by id).

    Reopening with the same settings continues it; different settings are refused unless
    ``overwrite`` (which removes this dataset's files: dataset.json, manifest.jsonl, audio/,
    labels/, features/, and nothing else).
    """
    import shutil
    from datetime import datetime, timezone

    from .. import __version__

    meta_path = out_dir / DATASET_JSON
    manifest = out_dir / MANIFEST_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(f"{out_dir}: exists and is not a folder")
    if overwrite and out_dir.is_dir():
        for name in (DATASET_JSON, MANIFEST_NAME):
            (out_dir / name).unlink(missing_ok=True)
        for name in ("audio", "labels", "features"):
            if (out_dir / name).is_dir():
                shutil.rmtree(out_dir / name)
    wanted = _config_dict(config)
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            raise OutputExists(f"{meta_path}: unreadable; use another folder or --overwrite") from None
        if meta.get("format") != FORMAT:
            raise OutputExists(f"{out_dir}: not an amt synth dataset; use another folder")
        old = meta.get("config", {})
        if isinstance(old.get("augment"), dict):  # made before some augmentations existed: they were off
            from .augment import ADDED_DEFAULTS

            old["augment"] = {**ADDED_DEFAULTS, **old["augment"]}
        old.setdefault("feature_level_db", None)
        diff = sorted(k for k in set(old) | set(wanted) if old.get(k) != wanted.get(k))
        if diff:
            raise OutputExists(
                f"{out_dir} was made with different settings ({', '.join(diff)}); "
                "re-run with the same settings to continue it, or use another folder or --overwrite"
            )
        meta["sources"] = sorted(set(meta.get("sources", [])) | set(sources))
    else:
        if out_dir.is_dir() and (manifest.exists() or any((out_dir / d).exists() for d in ("audio", "labels"))):
            raise OutputExists(f"{out_dir}: holds files but no dataset.json; use another folder or --overwrite")
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "amtcli_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": wanted,
            "feature_config": to_dict(feature_config_of(config)) if config.features else None,
            "sample_rate": config.sample_rate,
            "sources": sorted(set(sources)),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = meta_path.with_name(".dataset.json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, meta_path)
    done: dict[str, dict] = {}
    n_lines = 0
    if manifest.exists():
        with open(manifest) as f:
            n_lines = sum(1 for line in f if line.strip())
    for rec in read_manifest(out_dir, missing_ok=True):
        if all((out_dir / rec[k]).exists() for k in ("audio", "label")) and (
            not rec.get("features") or (out_dir / rec["features"]).exists()
        ):
            done[rec["id"]] = rec
    if len(done) != n_lines:
        # a crash, a deleted file or a torn line: keep the complete items only (they are re-rendered)
        write_manifest(out_dir, list(done.values()))
    _remove_strays(out_dir, done)
    return done


_ITEM_FILE = re.compile(r"^[A-Za-z0-9_]+-[0-9a-f]{10}-\d{2,}\.(?:flac|wav|mid|npy)$")
_TEMP_FILE = re.compile(r"^\.[A-Za-z0-9_]+-[0-9a-f]{10}-\d{2,}\.(?:flac|wav|mid|npy)\.tmp$")
LOCK_NAME = ".amt-synth.lock"


def _remove_strays(out_dir: Path, done: dict[str, dict]) -> list[Path]:
    """Delete the item files no manifest record lists and stale temporary files, so the folder holds
    what its manifest says: workers of a killed run may have rendered items nobody listed, and a
    crash leaves ``.<name>.tmp`` files. Only names this writer makes are touched (``<id>.flac``,
    ``.<id>.mid.tmp``, ...); anything else in the folder is left alone. Returns what was removed."""
    listed = {os.path.normpath(rec[k]) for rec in done.values() for k in ("audio", "label", "features") if rec.get(k)}
    removed = []
    for sub in ("audio", "labels", "features"):
        folder = out_dir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            stray = _ITEM_FILE.match(path.name) and os.path.join(sub, path.name) not in listed
            if path.is_file() and (stray or _TEMP_FILE.match(path.name)):
                path.unlink()
                removed.append(path)
    for name in (".dataset.json.tmp", ".manifest.jsonl.tmp"):
        if (out_dir / name).is_file():
            (out_dir / name).unlink()
            removed.append(out_dir / name)
    return removed


def lock_dataset(out_dir: Path):
    """Hold ``out_dir/.amt-synth.lock`` (an exclusive ``flock``) while writing the dataset; returns the
    open lock file (close it to release). Forked workers inherit it, so the folder stays locked
    until they are gone too. Raises :class:`OutputExists` when another run holds it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / LOCK_NAME, "a")
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no locking
        return lock
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise OutputExists(
            f"{out_dir}: another `amt synth` (or its worker processes) is writing this dataset; wait for it to "
            "finish, or use another folder"
        ) from None
    return lock


# ------------------------------------------------------------------------------------ rendering


@dataclass
class _Plan:
    id: str
    source: Source
    render: int
    seed: int
    notes: NoteArray  # labels: excerpt-relative, transposed, programs as rendered
    duration_s: float
    excerpt: tuple[float, float]
    transpose: int
    rng: np.random.Generator  # this item's stream; augmentation continues it
    soundfont: str | None = None
    extra: dict = field(default_factory=dict)  # renderer-specific manifest fields


def _choose_excerpt(notes: NoteArray, excerpt_s: float, rng: np.random.Generator) -> tuple[float, float] | None:
    """[start_s, end_s) of an excerpt holding at least one onset (None if there is none)."""
    end = notes.end_s + 1.0  # the last note's release
    draws = rng.random(8)
    if excerpt_s <= 0 or end <= excerpt_s:
        return 0.0, round(end if excerpt_s <= 0 else min(end, excerpt_s), 6)
    for u in draws:
        start = round(float(u) * (end - excerpt_s), 6)
        if np.any((notes.onset_s >= start) & (notes.onset_s < start + excerpt_s)):
            return start, round(start + excerpt_s, 6)
    return None


def plan_items(
    source: Source, notes: NoteArray, config: SynthConfig, renders: list[int], *, bank=None
) -> tuple[list[_Plan], list[str]]:
    """Draw each render's excerpt, instrument and transposition. Returns (plans, problems)."""
    from .augment import draw_transpose

    plans, problems = [], []
    for k in renders:
        iid = item_id(source.key, k)
        seed = item_seed(config.seed, iid)
        rng = np.random.default_rng(seed)
        excerpt = _choose_excerpt(notes, config.excerpt_s, rng)
        transpose = draw_transpose(config.augment, rng)
        if excerpt is None:
            problems.append(f"{source.path}: render {k}: no excerpt with notes")
            continue
        start, end = excerpt
        part = notes.clipped(start, end).shifted(semitones=transpose)
        part = part[(part.pitch >= 0) & (part.pitch <= 127)]
        if not len(part):
            problems.append(f"{source.path}: render {k}: no notes in the excerpt")
            continue
        plan = _Plan(iid, source, k, seed, part, end - start, (start, end), transpose, rng)
        if config.renderer == "soundfont":
            sfs = config.soundfonts or (None,)
            plan.soundfont = sfs[int(rng.integers(len(sfs)))]
            if config.programs:
                prog = int(config.programs[int(rng.integers(len(config.programs)))])
                plan.notes = NoteArray(part.onset_s, part.offset_s, part.pitch, part.velocity, np.full(len(part), prog))
            plan.extra = {"programs": sorted(set(plan.notes.program.tolist()))}
        else:
            from .oneshot import draw_timbres

            plan.extra = draw_timbres(bank, config.mix_alpha, rng)
            prog = bank.timbres[plan.extra["timbres"][0]].program  # labels name the main timbre's program
            plan.notes = NoteArray(part.onset_s, part.offset_s, part.pitch, part.velocity, np.full(len(part), prog))
        plans.append(plan)
    return plans, problems


def _render_plans(
    plans: list[_Plan], config: SynthConfig, *, bank=None, max_batch_s: float = 240.0
) -> list[np.ndarray]:
    """Audio for each plan (FluidSynth renders are batched per soundfont, one process per batch)."""
    out: list[np.ndarray | None] = [None] * len(plans)
    if config.renderer == "oneshot":
        from .oneshot import render_oneshot

        for i, p in enumerate(plans):
            out[i] = render_oneshot(
                p.notes,
                bank=bank,
                timbres=p.extra["timbres"],
                alpha=p.extra["alpha"],
                duration_s=p.duration_s,
                sample_rate=config.sample_rate,
            )
        return out  # type: ignore[return-value]
    from .soundfont import render_batch

    by_sf: dict[str | None, list[int]] = {}
    for i, p in enumerate(plans):
        by_sf.setdefault(p.soundfont, []).append(i)
    for sf, idx in by_sf.items():
        batch: list[int] = []
        total = 0.0
        for j, i in enumerate(idx):
            batch.append(i)
            total += plans[i].duration_s
            if total >= max_batch_s or j == len(idx) - 1:
                audio = render_batch(
                    [(plans[b].notes, plans[b].duration_s) for b in batch],
                    soundfont=sf,
                    sample_rate=config.sample_rate,
                    gain=config.gain,
                    timing_passes=config.timing_passes,
                )
                for b, a in zip(batch, audio):
                    out[b] = a
                batch, total = [], 0.0
    return out  # type: ignore[return-value]


@dataclass
class ChunkResult:
    records: list[dict]
    problems: list[str]  # one line per skipped file or render
    n_files: int


def render_items(sources: list[tuple[Source, list[int]]], out_dir: Path, config: SynthConfig) -> ChunkResult:
    """Render, augment and write the given renders of some sources. Returns their manifest records.

    A record: ``id``, ``audio``, ``label``, ``features`` (paths relative to the dataset, features
    may be null), ``duration_s``, ``n_notes``, ``split``, ``source`` (absolute path), ``source_key``,
    ``renderer``, ``soundfont`` + ``programs`` or ``timbres`` + ``alpha``, ``transpose``,
    ``excerpt`` [start_s, end_s] in the source, ``augment`` (list of applied steps with their
    parameters), ``seed`` (the item's seed), ``sample_rate``.
    """
    from ..audio.io import save_audio
    from .augment import augment_audio, find_irs
    from .soundfont import resolve_soundfont

    bank = None
    if config.renderer == "oneshot":
        from .oneshot import load_bank

        bank = load_bank(config.oneshots, sample_rate=config.sample_rate)
    irs = find_irs(config.augment.ir_dir) if config.augment.ir_dir and config.augment.reverb_p > 0 else None
    plans, problems = [], []
    for src, renders in sources:
        try:
            notes = midi_to_notes(src.path, sustain=True)
        except BadMidi as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # pretty_midi can fail in many ways on odd files
            problems.append(f"{src.path}: not a readable MIDI file ({type(exc).__name__}: {exc})")
            continue
        if not len(notes):
            problems.append(f"{src.path}: no pitched notes")
            continue
        p, q = plan_items(src, notes, config, renders, bank=bank)
        plans.extend(p)
        problems.extend(q)
    audios = _render_plans(plans, config, bank=bank)
    records = []
    for plan, audio in zip(plans, audios):
        audio, steps = augment_audio(
            audio, sample_rate=config.sample_rate, config=config.augment, rng=plan.rng, irs=irs
        )
        if plan.transpose:
            steps.insert(0, {"name": "transpose", "semitones": plan.transpose})
        audio_rel = f"audio/{plan.id}.{config.audio_format}"
        label_rel = f"labels/{plan.id}.mid"
        feat_rel = f"features/{plan.id}.npy" if config.features else None
        save_audio(out_dir / audio_rel, audio, sample_rate=config.sample_rate)
        notes_to_midi(plan.notes, out_dir / label_rel)
        if feat_rel:
            from ..audio.features import compute_features

            feats = compute_features(audio, config=feature_config_of(config))
            tmp = out_dir / f"features/.{plan.id}.npy.tmp"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.save(f, feats)
            os.replace(tmp, out_dir / feat_rel)
        rec = {
            "id": plan.id,
            "audio": audio_rel,
            "label": label_rel,
            "features": feat_rel,
            "duration_s": round(len(audio) / config.sample_rate, 6),
            "n_notes": len(plan.notes),
            "split": plan.source.split,
            "source": plan.source.path,
            "source_key": plan.source.key,
            "render": plan.render,
            "renderer": config.renderer,
        }
        if config.renderer == "soundfont":
            rec["soundfont"] = str(resolve_soundfont(plan.soundfont))
        rec.update(plan.extra)
        rec.update(
            {
                "transpose": plan.transpose,
                "excerpt": [plan.excerpt[0], plan.excerpt[1]],
                "augment": steps,
                "seed": plan.seed,
                "sample_rate": config.sample_rate,
            }
        )
        records.append(rec)
    return ChunkResult(records, problems, len(sources))


def _worker_init(features: bool = False, parent_pid: int | None = None):
    # a worker dies with the command: orphans would render items no manifest lists (see amtcli.workers)
    if parent_pid is not None:
        from ..workers import die_with_parent

        die_with_parent(parent_pid)
    # each worker renders on one core; torch (features only) must not spawn a thread per core
    if features:
        import torch

        torch.set_num_threads(1)


def _work(args) -> ChunkResult:
    chunk, out_dir, config = args
    try:
        return render_items(chunk, out_dir, config)
    except AmtError as exc:
        return ChunkResult([], [f"{str(exc)}"], len(chunk))


# ---------------------------------------------------------------------------------------- driver


@dataclass
class SynthSummary:
    files_seen: int = 0
    files_done: int = 0
    items_written: int = 0
    items_skipped: int = 0  # already in the dataset
    seconds_written: float = 0.0
    seconds_total: float = 0.0  # the whole dataset, including earlier runs
    problems: list[str] = field(default_factory=list)
    stopped_at_cap: bool = False


def build_dataset(
    sources: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    config: SynthConfig,
    workers: int = 1,
    max_files: int | None = None,
    max_hours: float | None = None,
    only_split: tuple[str, ...] | None = None,
    overwrite: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[ChunkResult, SynthSummary], None] | None = None,
) -> SynthSummary:
    """Render ``sources`` (MIDI files / folders) into the dataset folder ``out_dir``.

    Files are visited in a seeded shuffled order (so ``max_files`` takes a varied subset);
    ``only_split`` keeps sources of those splits only; ``max_hours`` stops once the dataset holds
    that much audio (the last chunks in flight still finish). Resumable: items already in the
    manifest with their files on disk are skipped. ``on_start(n_files)`` and
    ``on_progress(chunk, summary)`` report progress.
    """
    out_dir = Path(out_dir)
    if config.renderer not in RENDERERS:
        raise BadInput(f"--renderer {config.renderer!r}: choose from {', '.join(RENDERERS)}")
    if config.audio_format not in ("flac", "wav"):
        raise BadInput(f"--format {config.audio_format!r}: choose flac or wav")
    if config.renders_per_piece < 1:
        raise BadInput("--renders-per-piece must be at least 1")
    if only_split:
        bad = [s for s in only_split if s not in SPLITS]
        if bad:
            raise BadInput(f"--only-split {bad[0]!r}: choose from {', '.join(SPLITS)}")
    # check the renderer's inputs before touching the output folder
    if config.renderer == "soundfont":
        from .soundfont import fluidsynth_binary, resolve_soundfont

        fluidsynth_binary()
        for sf in config.soundfonts or (None,):
            resolve_soundfont(sf)
    else:
        from .oneshot import load_bank

        if not config.oneshots:
            raise BadInput("--renderer oneshot needs --oneshots BANK_DIR (make one with --build-oneshots)")
        load_bank(config.oneshots, sample_rate=config.sample_rate)
    if config.augment.ir_dir:
        from .augment import find_irs

        find_irs(config.augment.ir_dir)

    found = list(iter_midi_files(sources))
    if not found:
        raise BadInput("no MIDI files (*.mid, *.midi) in the given sources")
    # a seeded shuffle, stable when files are added: order by a hash of each key
    found.sort(key=lambda pk: _unit_hash(f"order:{config.seed}:{pk[1]}"))
    lock = lock_dataset(out_dir)  # held until the end (by the workers too): a second run is refused
    try:
        done = open_dataset(out_dir, config, overwrite=overwrite, sources=[str(Path(s).resolve()) for s in sources])
    except BaseException:
        lock.close()
        raise
    summary = SynthSummary(seconds_total=sum(r.get("duration_s", 0.0) for r in done.values()))
    cap_s = max_hours * 3600.0 if max_hours else None

    # Splits are decided up front (a hash per file), so the progress total is exact; the task list
    # holds paths only, never audio.
    todo_list: list[tuple[Source, list[int]]] = []
    for path, key in found:
        if max_files is not None and summary.files_seen >= max_files:
            break
        try:
            split = split_of(path, key, fractions=config.split, split_by=config.split_by)
        except OSError as exc:
            summary.problems.append(f"{path}: unreadable ({exc.strerror or exc})")
            continue
        if only_split and split not in only_split:
            continue
        summary.files_seen += 1
        todo = [k for k in range(config.renders_per_piece) if item_id(key, k) not in done]
        summary.items_skipped += config.renders_per_piece - len(todo)
        if todo:
            todo_list.append((Source(str(path), key, split), todo))
        else:
            summary.files_done += 1

    chunk_files = 8 if config.excerpt_s > 0 else 1

    def chunks() -> Iterator[tuple[list, Path, SynthConfig]]:
        for i in range(0, len(todo_list), chunk_files):
            if cap_s is not None and summary.seconds_total >= cap_s:
                summary.stopped_at_cap = True
                return
            yield todo_list[i : i + chunk_files], out_dir, config

    if on_start:
        on_start(summary.files_seen)
    manifest = open(out_dir / MANIFEST_NAME, "a")
    try:

        def consume(result: ChunkResult):
            for rec in result.records:
                manifest.write(json.dumps(rec) + "\n")
                summary.items_written += 1
                summary.seconds_written += rec["duration_s"]
                summary.seconds_total += rec["duration_s"]
            manifest.flush()
            summary.files_done += result.n_files
            summary.problems.extend(result.problems)
            if on_progress:
                on_progress(result, summary)

        if workers <= 1:
            _worker_init(config.features)
            for args in chunks():
                consume(_work(args))
        else:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(
                workers, initializer=_worker_init, initargs=(config.features, os.getpid())
            ) as pool:
                for result in pool.imap_unordered(_work, chunks()):
                    consume(result)
                    if cap_s is not None and summary.seconds_total >= cap_s:
                        summary.stopped_at_cap = True
                        break
                pool.terminate()
    finally:
        manifest.close()
        lock.close()
    if cap_s is not None and summary.seconds_total >= cap_s:
        summary.stopped_at_cap = True
    return summary


__all__ = [
    "SynthConfig",
    "SynthSummary",
    "Source",
    "build_dataset",
    "render_items",
    "open_dataset",
    "read_manifest",
    "iter_midi_files",
    "split_of",
    "item_id",
    "item_seed",
    "parse_split",
    "parse_range",
    "SPLITS",
    "RENDERERS",
    "FORMAT_VERSION",
]
