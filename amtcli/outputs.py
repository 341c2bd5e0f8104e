"""Notes out: MIDI, CSV, JSON files and a PNG piano roll over the CQT."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from .errors import BadInput, OutputExists
from .notes import NoteArray, notes_to_midi

FORMATS = {".mid": "mid", ".midi": "mid", ".csv": "csv", ".json": "json"}


def format_for(path: Path, default: str = "mid") -> str:
    return FORMATS.get(path.suffix.lower(), default)


def check_writable(path: Path, *, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExists(f"{path} already exists (use --overwrite to replace it)")
    if path.exists() and path.is_dir():
        raise BadInput(f"{path} is a folder")


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_notes(notes: NoteArray, path: str | os.PathLike, *, fmt: str | None = None, program: int = 0, meta: dict | None = None) -> Path:
    """Write ``notes`` as ``mid``, ``csv`` (onset_s, offset_s, pitch, velocity) or ``json``."""
    path = Path(path)
    fmt = fmt or format_for(path)
    if fmt == "mid":
        return notes_to_midi(notes, path, program=program)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["onset_s", "offset_s", "pitch", "velocity"])
        for on, off, p, v in zip(notes.onset_s, notes.offset_s, notes.pitch, notes.velocity):
            w.writerow([f"{on:.4f}", f"{off:.4f}", int(p), int(v)])
        _atomic_text(path, buf.getvalue())
        return path
    if fmt == "json":
        rows = [
            {"onset_s": round(float(on), 4), "offset_s": round(float(off), 4), "pitch": int(p), "velocity": int(v)}
            for on, off, p, v in zip(notes.onset_s, notes.offset_s, notes.pitch, notes.velocity)
        ]
        _atomic_text(path, json.dumps({**(meta or {}), "notes": rows}, indent=1) + "\n")
        return path
    raise BadInput(f"unknown output format {fmt!r} (mid, csv, json)")


def plot_transcription(
    path: str | os.PathLike,
    *,
    features: np.ndarray,
    notes: NoteArray,
    frame_rate: float,
    bins_per_semitone: int,
    fmin_midi: int,
    max_s: float | None = 60.0,
) -> Path:
    """A PNG: the log-CQT ``(n_frames, n_bins)`` with the notes drawn over it as boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    path = Path(path)
    n = len(features) if max_s is None else min(len(features), int(max_s * frame_rate))
    dur = n / frame_rate
    fig, ax = plt.subplots(figsize=(max(6, min(30, dur / 2)), 6), dpi=100)
    lo = fmin_midi - 0.5
    hi = lo + features.shape[1] / bins_per_semitone
    ax.imshow(features[:n].T, origin="lower", aspect="auto", extent=(0, dur, lo, hi), cmap="magma", interpolation="nearest")
    for on, off, p in zip(notes.onset_s, notes.offset_s, notes.pitch):
        if on >= dur:
            continue
        ax.add_patch(Rectangle((on, p - 0.5), min(off, dur) - on, 1.0, fill=False, edgecolor="cyan", linewidth=0.8))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(f"{len(notes)} notes" + (f" (first {dur:.0f} s)" if max_s is not None and n < len(features) else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
