"""One-shot mixing: render each note from recorded single notes of two timbres, ``main + alpha * sub``.

A bank is a folder with ``bank.json`` and one ``samples/<timbre>.npy`` per timbre: float16, all
its one-shots back to back (each cut after it falls below -80 dB, at most ``duration_s``), in the
order of the timbre's ``notes`` list, with their ``lengths`` in bank.json. Built by
:func:`build_bank` from the GM programs of soundfonts. The files are memory-mapped: workers share
them through the page cache and nothing is decoded. A folder of your own one-shots works as well: audio files plus
``oneshots.csv`` (columns ``file,pitch,velocity,timbre``; ``velocity`` and ``timbre`` optional)
or ``oneshots.json`` (a list of objects with the same keys).

Sample 0 of every one-shot is its note onset (soundfont notes are rendered so that the onset
falls exactly on a sample; user files have leading silence below -60 dB trimmed).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadInput, OutputExists
from ..notes import NoteArray

BANK_FORMAT = "amt-oneshots"
BANK_VERSION = 1
DEFAULT_VELOCITIES = (45, 85, 120)
RELEASE_S = 0.08  # fade-out after note off

# Playable range (MIDI pitches) per GM family (program // 8), with a few instruments narrower.
_FAMILY_RANGE = {
    0: (21, 108),
    1: (48, 96),
    2: (36, 96),
    3: (40, 88),
    4: (28, 67),
    5: (36, 96),
    6: (36, 96),
    7: (40, 84),
    8: (40, 88),
    9: (60, 96),
    10: (36, 96),
    11: (36, 96),
    12: (36, 96),
    13: (48, 84),
    14: (36, 84),
}
_PROGRAM_RANGE = {
    8: (60, 108),
    9: (60, 108),
    40: (55, 103),
    41: (48, 91),
    42: (36, 76),
    43: (28, 67),
    46: (24, 103),
    47: (36, 60),
    56: (52, 84),
    57: (40, 72),
    58: (28, 58),
    60: (34, 77),
    64: (56, 88),
    65: (49, 81),
    66: (44, 76),
    67: (36, 69),
    68: (58, 91),
    69: (52, 81),
    70: (34, 75),
    71: (50, 91),
    72: (74, 108),
    73: (60, 96),
}
DEFAULT_PROGRAMS = tuple(range(112))  # 112-127 are percussion and sound effects


def pitch_range(program: int) -> tuple[int, int]:
    """Lowest and highest MIDI pitch sampled for a GM program."""
    return _PROGRAM_RANGE.get(program, _FAMILY_RANGE.get(program // 8, (36, 96)))


@dataclass
class Timbre:
    name: str
    pitches: np.ndarray  # (n,) MIDI pitch of each one-shot
    velocities: np.ndarray  # (n,)
    program: int = 0  # GM program written into labels (0 when unknown)
    file: str | None = None  # bank .npy (memory-mapped on first use) ...
    data: np.ndarray | None = None  # ... or loaded: float16 (total_samples,), the one-shots back to back
    lengths: np.ndarray | None = None  # (n,) samples of each one-shot
    extra: dict = field(default_factory=dict)


@dataclass
class OneShotBank:
    root: Path
    sample_rate: int
    timbres: dict[str, Timbre]

    @property
    def names(self) -> list[str]:
        return sorted(self.timbres)

    def samples(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(float16 one-shots back to back, start of each ``(n,)``, length of each ``(n,)``)."""
        t = self.timbres[name]
        if t.data is None:
            t.data = np.load(self.root / t.file, mmap_mode="r")
            if t.data.dtype != np.float16 or t.data.ndim != 1 or len(t.data) != int(t.lengths.sum()):
                raise BadInput(f"{self.root / t.file}: does not match bank.json (rebuild the bank)")
        if "starts" not in t.extra:
            t.extra["starts"] = np.concatenate([[0], np.cumsum(t.lengths)[:-1]]).astype(np.int64)
        return t.data, t.extra["starts"], t.lengths

    def one_shot(self, name: str, index: int) -> np.ndarray:
        """One-shot ``index`` of a timbre as float32."""
        data, starts, lengths = self.samples(name)
        return np.asarray(data[starts[index] : starts[index] + lengths[index]], dtype=np.float32)


_BANKS: dict[tuple[str, int], OneShotBank] = {}


def load_bank(path: str | os.PathLike | None, *, sample_rate: int = 16000) -> OneShotBank:
    """Open a bank built by :func:`build_bank` or a folder of user one-shots (cached per process)."""
    if path is None:
        raise BadInput("no one-shot bank given (--oneshots BANK_DIR)")
    root = Path(path).expanduser().resolve()
    key = (str(root), sample_rate)
    if key in _BANKS:
        return _BANKS[key]
    if not root.is_dir():
        raise BadInput(f"--oneshots {root}: no such folder (build one with amt synth --build-oneshots)")
    if (root / "bank.json").exists():
        bank = _load_built(root, sample_rate)
    elif (root / "oneshots.csv").exists() or (root / "oneshots.json").exists():
        bank = _load_user(root, sample_rate)
    else:
        raise BadInput(f"--oneshots {root}: no bank.json, oneshots.csv or oneshots.json in it")
    if len(bank.timbres) == 0:
        raise BadInput(f"--oneshots {root}: the bank holds no one-shots")
    _BANKS[key] = bank
    return bank


def _load_built(root: Path, sample_rate: int) -> OneShotBank:
    try:
        meta = json.loads((root / "bank.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{root / 'bank.json'}: unreadable ({exc})") from None
    if meta.get("format") != BANK_FORMAT:
        raise BadInput(f"{root / 'bank.json'}: not an amt one-shot bank")
    if int(meta["sample_rate"]) != sample_rate:
        raise BadInput(f"{root}: the bank is at {meta['sample_rate']} Hz, the dataset at {sample_rate} Hz")
    timbres = {}
    for t in meta["timbres"]:
        notes = np.asarray(t["notes"], dtype=np.int64).reshape(-1, 2)
        if not (root / t["file"]).exists():
            raise BadInput(f"{root / t['file']}: missing from the bank")
        timbres[t["name"]] = Timbre(
            t["name"],
            notes[:, 0],
            notes[:, 1],
            int(t.get("program", 0)),
            file=t["file"],
            lengths=np.asarray(t["lengths"], dtype=np.int64),
        )
    return OneShotBank(root, sample_rate, timbres)


def _load_user(root: Path, sample_rate: int) -> OneShotBank:
    from ..audio.io import load_audio

    if (root / "oneshots.csv").exists():
        with open(root / "oneshots.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        where = root / "oneshots.csv"
    else:
        try:
            rows = json.loads((root / "oneshots.json").read_text())
        except json.JSONDecodeError as exc:
            raise BadInput(f"{root / 'oneshots.json'}: not valid JSON ({exc})") from None
        where = root / "oneshots.json"
    groups: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    for i, row in enumerate(rows):
        try:
            file = str(row["file"]).strip()
            pitch = int(float(row["pitch"]))
            vel = int(float(row.get("velocity") or 100))
        except (KeyError, ValueError, TypeError):
            raise BadInput(f"{where}: row {i + 1}: needs file and pitch (and optionally velocity, timbre)") from None
        timbre = str(row.get("timbre") or "default").strip() or "default"
        audio = load_audio(root / file, sample_rate=sample_rate)
        if not len(audio) or not np.any(audio):
            raise BadInput(f"{root / file}: the one-shot is silent")
        peak = float(np.max(np.abs(audio)))
        audio = audio[int(np.argmax(np.abs(audio) >= peak * 1e-3)) :]  # trim leading silence (-60 dB)
        groups.setdefault(timbre, []).append((pitch, vel, audio[: 4 * sample_rate]))
    timbres = {}
    for name, items in groups.items():
        timbres[name] = Timbre(
            name,
            np.array([p for p, _, _ in items]),
            np.array([v for _, v, _ in items]),
            0,
            data=np.concatenate([a for _, _, a in items]).astype(np.float16),
            lengths=np.array([len(a) for _, _, a in items], dtype=np.int64),
        )
    return OneShotBank(root, sample_rate, timbres)


# ------------------------------------------------------------------------------------- building


def build_bank(
    out_dir: str | os.PathLike,
    *,
    soundfonts=(None,),
    programs: tuple[int, ...] | None = None,
    velocities: tuple[int, ...] = DEFAULT_VELOCITIES,
    duration_s: float = 4.0,
    sample_rate: int = 16000,
    overwrite: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Render ``duration_s`` single notes of each (soundfont, program, pitch, velocity) into ``out_dir``.

    Pitches span :func:`pitch_range` of each program. Returns the bank.json contents.
    """
    from .soundfont import render_batch, resolve_soundfont

    out = Path(out_dir)
    if (out / "bank.json").exists() and not overwrite:
        raise OutputExists(f"{out / 'bank.json'} exists (use --overwrite to rebuild the bank)")
    programs = tuple(programs) if programs else DEFAULT_PROGRAMS
    sfs = [resolve_soundfont(s) for s in soundfonts]
    passes = 4
    # render each note at the middle of FluidSynth's first timing group, where the onset is exact
    lead_s = 64 / sample_rate / passes / 2
    lead = int(round(lead_s * sample_rate))
    n_len = int(round(duration_s * sample_rate))
    meta = bank_meta(sample_rate=sample_rate, duration_s=duration_s)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    total = len(sfs) * len(programs)
    done = 0
    for sf in sfs:
        for prog in programs:
            lo, hi = pitch_range(prog)
            notes = [(p, v) for p in range(lo, hi + 1) for v in velocities]
            items = [
                (NoteArray([lead_s], [lead_s + duration_s], [p], [v], [prog]), lead_s + duration_s) for p, v in notes
            ]
            audio = render_batch(items, soundfont=sf, sample_rate=sample_rate, timing_passes=passes)
            block = np.zeros((len(items), n_len), np.float32)
            for j, a in enumerate(audio):
                seg = a[lead : lead + n_len]
                block[j, : len(seg)] = seg
            name = f"{re.sub(r'[^A-Za-z0-9]+', '_', sf.stem)}:{prog:03d}"
            entry = store_timbre(
                out, block, name=name, notes=notes, sample_rate=sample_rate, soundfont=str(sf), program=prog
            )
            if entry is not None:  # None: the soundfont has no sound for this program
                meta["timbres"].append(entry)
            done += 1
            if on_progress:
                on_progress(done, total, name)
    return write_bank_json(out, meta)


def bank_meta(*, sample_rate: int, duration_s: float, **extra) -> dict:
    """The head of a bank.json (its ``timbres`` list still empty)."""
    return {
        "format": BANK_FORMAT,
        "format_version": BANK_VERSION,
        "sample_rate": sample_rate,
        "duration_s": duration_s,
        "release_s": RELEASE_S,
        **extra,
        "timbres": [],
    }


def store_timbre(
    out: Path, block: np.ndarray, *, name: str, notes: list[tuple[int, int]], sample_rate: int, **entry
) -> dict | None:
    """Write one timbre's one-shots ``block`` ``(len(notes), n_samples)`` (changed in place) to
    ``samples/``: a 20 ms fade at the end (a cut-off sustained note must not click), the timbre
    brought to a 0.9 peak, each one-shot cut after its last sample above -80 dB of that peak, float16
    back to back. Returns its bank.json entry (``entry`` added), or None for a silent timbre."""
    fade = int(0.02 * sample_rate)
    block[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(block).max())
    if peak <= 0:
        return None
    gain = 0.9 / peak
    block *= gain
    n_len = block.shape[1]
    loud = np.abs(block) > 0.9e-4
    lengths = np.where(loud.any(axis=1), n_len - np.argmax(loud[:, ::-1], axis=1), 1)
    file = f"samples/{re.sub(r'[^A-Za-z0-9_]+', '_', name)}.npy"
    flat = np.concatenate([block[j, : lengths[j]] for j in range(len(block))]).astype(np.float16)
    tmp = out / f"{file}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, flat)
    os.replace(tmp, out / file)
    return {
        "name": name,
        **entry,
        "file": file,
        "gain": gain,
        "notes": [[p, v] for p, v in notes],
        "lengths": [int(x) for x in lengths],
    }


def write_bank_json(out: Path, meta: dict) -> dict:
    """Count the one-shots, write bank.json atomically, forget any cached copy of the bank; returns ``meta``."""
    meta["n_samples"] = sum(len(t["notes"]) for t in meta["timbres"])
    tmp = out / ".bank.json.tmp"
    tmp.write_text(json.dumps(meta) + "\n")
    os.replace(tmp, out / "bank.json")
    _BANKS.pop((str(out.resolve()), meta["sample_rate"]), None)
    return meta


# ------------------------------------------------------------------------------------- rendering


def draw_timbres(bank: OneShotBank, mix_alpha: tuple[float, float], rng: np.random.Generator) -> dict:
    """A main and a different sub timbre (the same one if the bank has only one) and alpha."""
    names = bank.names
    i = int(rng.integers(len(names)))
    j = int(rng.integers(len(names) - 1)) if len(names) > 1 else 0
    if len(names) > 1 and j >= i:
        j += 1
    alpha = float(rng.uniform(*mix_alpha))
    return {"timbres": [names[i], names[j]], "alpha": round(alpha, 6)}


def _lookup(bank: OneShotBank, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Tables ``(128, 128)`` over (pitch, velocity): the one-shot index to use and the semitones to
    shift it by. The nearest sampled pitch wins (ties: the lower), then the nearest velocity layer."""
    t = bank.timbres[name]
    if "lookup" not in t.extra:
        pitches = np.arange(128)[:, None]
        dp = np.abs(t.pitches[None, :] - pitches)  # (128, n)
        best_dp = dp.min(axis=1, keepdims=True)
        nearest = np.where(dp == best_dp, t.pitches[None, :], 10**6).min(axis=1)  # the lower on ties
        index = np.zeros((128, 128), np.int64)
        for p in range(128):
            cand = np.nonzero(t.pitches == nearest[p])[0]
            dv = np.abs(t.velocities[cand][None, :] - np.arange(128)[:, None])
            index[p] = cand[np.argmin(dv, axis=1)]
        shift = np.arange(128)[:, None] - t.pitches[index]
        t.extra["lookup"] = (index, shift)
    return t.extra["lookup"]


def _one_shot(bank: OneShotBank, name: str, pitch: int, velocity: int, length: int) -> np.ndarray:
    """The first ``length`` samples (or fewer) of ``name`` at ``pitch`` as float32: the nearest
    sampled pitch and velocity layer, resampled to the exact pitch when needed, and scaled by
    ``(velocity / layer velocity)^2`` (clipped to 0.25-4)."""
    index, shifts = _lookup(bank, name)
    k, shift = int(index[pitch, velocity]), int(shifts[pitch, velocity])
    data, starts, lengths = bank.samples(name)
    t = bank.timbres[name]
    a, size = int(starts[k]), int(lengths[k])
    if shift:
        ratio = 2.0 ** (shift / 12.0)
        n = max(1, min(length, int((size - 1) / ratio)))
        m = min(size, int(np.ceil(n * ratio)) + 2)
        src = np.asarray(data[a : a + m], dtype=np.float32)
        y = np.interp(np.arange(n) * ratio, np.arange(m), src).astype(np.float32)
    else:
        y = np.asarray(data[a : a + min(size, length)], dtype=np.float32)
    scale = float(np.clip((velocity / max(1, int(t.velocities[k]))) ** 2, 0.25, 4.0))
    return y * scale if scale != 1.0 else y


def render_oneshot(
    notes: NoteArray,
    *,
    bank: OneShotBank,
    timbres: list[str] | tuple[str, str],
    alpha: float,
    duration_s: float | None = None,
    sample_rate: int = 16000,
    release_s: float = RELEASE_S,
) -> np.ndarray:
    """Each note = ``main + alpha * sub`` one-shot, cut at its offset with a ``release_s`` fade.

    Returns float32 ``(round(duration_s * sample_rate),)``; onsets fall on ``round(onset_s * sr)``.
    Notes longer than the one-shots end with them. Work per note is proportional to its length.
    """
    if bank.sample_rate != sample_rate:
        raise BadInput(f"the one-shot bank is at {bank.sample_rate} Hz, not {sample_rate} Hz")
    main, sub = timbres
    if duration_s is None:
        duration_s = notes.end_s + release_s
    n_out = int(round(duration_s * sample_rate))
    out = np.zeros(n_out, np.float32)
    notes = notes.pitched()
    notes = notes[(notes.pitch >= 0) & (notes.pitch <= 127)]
    if not len(notes):
        return out
    rel = max(1, int(round(release_s * sample_rate)))
    ramp = np.linspace(1.0, 0.0, rel, endpoint=False, dtype=np.float32)
    starts = np.rint(notes.onset_s * sample_rate).astype(np.int64)
    holds = np.maximum(np.rint((notes.offset_s - notes.onset_s) * sample_rate).astype(np.int64), 1)
    velocities = np.clip(notes.velocity, 0, 127)
    for a, hold, p, v in zip(starts.tolist(), holds.tolist(), notes.pitch.tolist(), velocities.tolist()):
        if a >= n_out or a < 0:
            continue
        want = min(hold + rel, n_out - a)
        y = _one_shot(bank, main, p, v, want)
        if alpha:
            s = _one_shot(bank, sub, p, v, want)
            m = min(len(y), len(s))
            y = y[:m] + alpha * s[:m]
        length = len(y)
        if hold < length:  # the release: fade out over ``rel`` samples after the offset
            y[hold:] *= ramp[: length - hold]
        out[a : a + length] += y
    return out


__all__ = [
    "OneShotBank",
    "Timbre",
    "load_bank",
    "build_bank",
    "draw_timbres",
    "render_oneshot",
    "pitch_range",
    "DEFAULT_PROGRAMS",
    "DEFAULT_VELOCITIES",
]
