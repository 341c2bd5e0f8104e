"""One-shot mixing: render each note from recorded single notes of two timbres, ``main + alpha * sub``.

A bank is a folder with ``bank.json`` and one FLAC per timbre (all its notes back to back, each
``duration_s`` long, in the order of the timbre's ``notes`` list), built by :func:`build_bank`
from the GM programs of soundfonts. A folder of your own one-shots works as well: audio files plus
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
    0: (21, 108), 1: (48, 96), 2: (36, 96), 3: (40, 88), 4: (28, 67), 5: (36, 96), 6: (36, 96),
    7: (40, 84), 8: (40, 88), 9: (60, 96), 10: (36, 96), 11: (36, 96), 12: (36, 96), 13: (48, 84),
    14: (36, 84),
}
_PROGRAM_RANGE = {
    8: (60, 108), 9: (60, 108), 40: (55, 103), 41: (48, 91), 42: (36, 76), 43: (28, 67),
    46: (24, 103), 47: (36, 60), 56: (52, 84), 57: (40, 72), 58: (28, 58), 60: (34, 77),
    64: (56, 88), 65: (49, 81), 66: (44, 76), 67: (36, 69), 68: (58, 91), 69: (52, 81),
    70: (34, 75), 71: (50, 91), 72: (74, 108), 73: (60, 96),
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
    file: str | None = None  # bank FLAC (lazy) ...
    data: np.ndarray | None = None  # ... or loaded: float16 (n, n_samples)
    extra: dict = field(default_factory=dict)


@dataclass
class OneShotBank:
    root: Path
    sample_rate: int
    timbres: dict[str, Timbre]

    @property
    def names(self) -> list[str]:
        return sorted(self.timbres)

    def samples(self, name: str) -> np.ndarray:
        """float16 ``(n_notes, n_samples)`` one-shots of a timbre (loaded on first use, then cached)."""
        t = self.timbres[name]
        if t.data is None:
            from ..audio.io import load_audio

            audio = load_audio(self.root / t.file, sample_rate=self.sample_rate)
            n = len(t.pitches)
            length = len(audio) // n
            t.data = audio[: n * length].reshape(n, length).astype(np.float16)
        return t.data


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
        timbres[t["name"]] = Timbre(t["name"], notes[:, 0], notes[:, 1], int(t.get("program", 0)), file=t["file"])
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
        length = max(len(a) for _, _, a in items)
        data = np.zeros((len(items), length), np.float16)
        for j, (_, _, a) in enumerate(items):
            data[j, : len(a)] = a
        timbres[name] = Timbre(
            name, np.array([p for p, _, _ in items]), np.array([v for _, v, _ in items]), 0, data=data
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
    from ..audio.io import save_audio
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
    meta = {"format": BANK_FORMAT, "format_version": BANK_VERSION, "sample_rate": sample_rate, "duration_s": duration_s,
            "release_s": RELEASE_S, "timbres": []}
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
            # a short fade at the end so a cut-off sustained note does not click
            fade = int(0.02 * sample_rate)
            block[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            peak = float(np.abs(block).max())
            if peak <= 0:
                done += 1
                continue  # the soundfont has no sound for this program
            gain = 0.9 / peak
            name = f"{re.sub(r'[^A-Za-z0-9]+', '_', sf.stem)}:{prog:03d}"
            file = f"samples/{name.replace(':', '_')}.flac"
            save_audio(out / file, (block * gain).reshape(-1), sample_rate=sample_rate)
            meta["timbres"].append({"name": name, "soundfont": str(sf), "program": prog, "file": file,
                                    "gain": gain, "notes": [[p, v] for p, v in notes]})
            done += 1
            if on_progress:
                on_progress(done, total, name)
    meta["n_samples"] = sum(len(t["notes"]) for t in meta["timbres"])
    tmp = out / ".bank.json.tmp"
    tmp.write_text(json.dumps(meta) + "\n")
    os.replace(tmp, out / "bank.json")
    _BANKS.pop((str(out.resolve()), sample_rate), None)
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


def _note_audio(bank: OneShotBank, name: str, pitch: int, velocity: int) -> np.ndarray:
    """A float32 one-shot of ``name`` at ``pitch``: the nearest sampled pitch (ties: the lower) and
    velocity layer, resampled to the exact pitch when needed, scaled by (velocity / layer)^2."""
    t = bank.timbres[name]
    data = bank.samples(name)
    dp = np.abs(t.pitches - pitch)
    cand = np.nonzero(dp == dp.min())[0]
    vel = t.velocities[cand]
    k = cand[int(np.argmin(np.abs(vel - velocity)))]
    y = data[k].astype(np.float32)
    shift = pitch - int(t.pitches[k])
    if shift:
        ratio = 2.0 ** (shift / 12.0)
        n = int(len(y) / ratio)
        y = np.interp(np.arange(n) * ratio, np.arange(len(y)), y).astype(np.float32)
    scale = float(np.clip((velocity / max(1, int(t.velocities[k]))) ** 2, 0.25, 4.0))
    return y * scale


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
    Notes longer than the one-shots end with them.
    """
    if bank.sample_rate != sample_rate:
        raise BadInput(f"the one-shot bank is at {bank.sample_rate} Hz, not {sample_rate} Hz")
    main, sub = timbres
    if duration_s is None:
        duration_s = notes.end_s + release_s
    n_out = int(round(duration_s * sample_rate))
    out = np.zeros(n_out, np.float32)
    notes = notes.pitched()
    if not len(notes):
        return out
    rel = max(1, int(round(release_s * sample_rate)))
    ramp = np.linspace(1.0, 0.0, rel, endpoint=False, dtype=np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}
    starts = np.rint(notes.onset_s * sample_rate).astype(np.int64)
    holds = np.maximum(np.rint((notes.offset_s - notes.onset_s) * sample_rate).astype(np.int64), 1)
    for a, hold, p, v in zip(starts.tolist(), holds.tolist(), notes.pitch.tolist(), notes.velocity.tolist()):
        if a >= n_out:
            continue
        y = cache.get((p, v))
        if y is None:
            y = _note_audio(bank, main, p, v)
            if alpha:
                s = _note_audio(bank, sub, p, v)
                m = min(len(y), len(s))
                y = y[:m] + alpha * s[:m]
            cache[(p, v)] = y
        length = min(len(y), hold + rel, n_out - a)
        seg = y[:length]
        if hold < length:  # the release: fade out over ``rel`` samples after the offset
            seg = seg.copy()
            seg[hold:] *= ramp[: length - hold]
        out[a : a + length] += seg
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
