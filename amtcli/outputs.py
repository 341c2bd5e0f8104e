"""Notes out: MIDI, CSV, JSON and MusicXML files, and a PNG piano roll over the CQT.

:func:`write_transcription` is what ``amt transcribe`` and :meth:`Transcription.write
<amtcli.inference.transcribe.Transcription.write>` call: it turns a transcription into what a
musician opens (:class:`OutputOptions`: beats and bars, quantization, sustain pedal, velocity from
confidence) and writes it with :func:`write_notes`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput
from .notes import NoteArray, notes_to_midi

FORMATS = {".mid": "mid", ".midi": "mid", ".csv": "csv", ".json": "json", ".musicxml": "musicxml"}


def format_for(path: Path, default: str = "mid") -> str:
    return FORMATS.get(path.suffix.lower(), default)


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _confidence_text(c: float) -> str:
    return "" if math.isnan(c) else f"{c:.3f}"


def write_notes(
    notes: NoteArray,
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    program: int = 0,
    meta: dict | None = None,
    grid=None,
    pedal: np.ndarray | None = None,
    steps: tuple[int, ...] = (4,),
    key: tuple[int, str] | None = None,
) -> Path:
    """Write ``notes`` as ``mid``, ``csv``, ``json`` or ``musicxml``.

    CSV columns and JSON note fields: ``onset_s``, ``offset_s`` (when the note stops sounding),
    ``pitch``, ``velocity``, ``confidence`` (onset probability, empty / null where unknown) and
    ``release_s`` (the key release: earlier than ``offset_s`` only where a sustain pedal holds the
    note). ``grid`` (:class:`amtcli.rhythm.BeatGrid`): the MIDI tempo map and time signature, the
    bars of a score (default for a score: estimated from the notes). ``pedal`` ``(n, 2)``: CC64 in
    the MIDI (notes then end at their key release). ``steps``: the score's grid (points per beat).
    ``key``: the score's ``(tonic, mode)`` (default: estimated from the notes).
    """
    path = Path(path)
    fmt = fmt or format_for(path)
    if fmt == "mid":
        kwargs = {}
        if grid is not None:
            from .rhythm import midi_tempo_map

            kwargs["tempo_map"], kwargs["time_signatures"] = midi_tempo_map(grid)
        return notes_to_midi(notes, path, program=program, pedal=pedal, **kwargs)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["onset_s", "offset_s", "pitch", "velocity", "confidence", "release_s"])
        for on, off, p, v, c, r in zip(
            notes.onset_s, notes.offset_s, notes.pitch, notes.velocity, notes.confidence, notes.release_s
        ):
            w.writerow([f"{on:.4f}", f"{off:.4f}", int(p), int(v), _confidence_text(c), f"{r:.4f}"])
        _atomic_text(path, buf.getvalue())
        return path
    if fmt == "json":
        rows = [
            {
                "onset_s": round(float(on), 4),
                "offset_s": round(float(off), 4),
                "pitch": int(p),
                "velocity": int(v),
                "confidence": None if math.isnan(c) else round(float(c), 3),
                "release_s": round(float(r), 4),
            }
            for on, off, p, v, c, r in zip(
                notes.onset_s, notes.offset_s, notes.pitch, notes.velocity, notes.confidence, notes.release_s
            )
        ]
        _atomic_text(path, json.dumps({**(meta or {}), "notes": rows}, indent=1) + "\n")
        return path
    if fmt == "musicxml":
        from .rhythm import estimate_grid
        from .score import write_musicxml

        return write_musicxml(
            notes, path, grid=grid if grid is not None else estimate_grid(notes), steps=steps, key=key
        )
    raise BadInput(f"unknown output format {fmt!r} ({', '.join(dict.fromkeys(FORMATS.values()))})")


# ------------------------------------------------------------------------------ what to write


VELOCITY_SOURCES = ("model", "confidence")


@dataclass(frozen=True)
class OutputOptions:
    """What :func:`write_transcription` does to the notes before writing them (the CLI flags).

    ``beats``: track beats and bars for the MIDI tempo map / time signature and the score's bars
    (CSV and JSON get them only when quantizing; JSON then lists them). ``tempo_bpm``: a fixed tempo
    instead (from the first note, a downbeat). ``beats_per_bar``: force the meter's numerator
    (x/4). ``quantize``: a grid spec such as ``"1/16"`` or ``"1/16,1/8t"``
    (:func:`amtcli.rhythm.parse_quantize`); ``None`` keeps the played times (a score is still
    written on a 1/16 grid). ``pedal``: infer the sustain pedal from note releases
    (:func:`amtcli.pedal.infer_pedal`): CC64 in the MIDI, key releases in ``release_s``.
    ``velocity_from``: ``model`` (the velocity head) or ``confidence`` (onset probability x 127).
    """

    beats: bool = True
    tempo_bpm: float | None = None
    beats_per_bar: int | None = None
    quantize: str | None = None
    pedal: bool = False
    velocity_from: str = "model"

    def __post_init__(self):
        if self.velocity_from not in VELOCITY_SOURCES:
            raise BadInput(f"--velocity-from must be {' or '.join(VELOCITY_SOURCES)}, not {self.velocity_from!r}")
        if self.quantize is not None:
            from .rhythm import parse_quantize

            parse_quantize(self.quantize)
        if self.beats_per_bar is not None and self.beats_per_bar not in (2, 3, 4, 5, 6, 7, 8, 9, 12):
            raise BadInput(f"--beats-per-bar must be 2-9 or 12, not {self.beats_per_bar}")
        if self.tempo_bpm is not None and not (
            isinstance(self.tempo_bpm, (int, float)) and 10.0 <= self.tempo_bpm <= 400.0
        ):
            raise BadInput(f"--tempo must be between 10 and 400 BPM, not {self.tempo_bpm}")


@dataclass
class WriteReport:
    """What was written beside the notes: the grid, the pedal, how far quantization moved notes."""

    path: Path
    n_notes: int
    grid: object | None = None  # amtcli.rhythm.BeatGrid
    key: tuple[int, str] | None = None
    n_pedal: int | None = None
    quantize: object | None = None  # amtcli.rhythm.QuantizeReport
    lines: list[str] = field(default_factory=list)  # one line each, for a person


def velocity_from_confidence(notes: NoteArray) -> NoteArray:
    """Velocities ``round(confidence * 127)`` in 1..127 (notes without a confidence keep theirs)."""
    conf = notes.confidence
    vel = np.where(np.isnan(conf), notes.velocity, np.clip(np.rint(np.nan_to_num(conf) * 127), 1, 127))
    return NoteArray(notes.onset_s, notes.offset_s, notes.pitch, vel, notes.program, notes.confidence, notes.release_s)


def write_transcription(
    result,
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    options: OutputOptions = OutputOptions(),
    meta: dict | None = None,
) -> WriteReport:
    """Write a transcription (a :class:`~amtcli.inference.transcribe.Transcription` or a NoteArray)
    as ``fmt`` (default: by the suffix), after the steps ``options`` asks for, in this order:
    the sustain pedal is inferred from the sounding notes, beats and bars are tracked (on the
    model's onset probabilities when there are any, else on the notes) or set by ``tempo_bpm``,
    the notes are quantized, and velocities are taken from confidence.
    """
    from .rhythm import estimate_grid, parse_quantize, quantize_notes

    path = Path(path)
    fmt = fmt or format_for(path)
    if isinstance(result, NoteArray):
        notes, env, frame_rate, duration = result, None, 100.0, None
    else:
        notes, env, frame_rate, duration = result.notes, result.onset_strength, result.frame_rate, result.duration_s
    report = WriteReport(path, len(notes))
    pedal = None
    if options.pedal:
        from .pedal import infer_pedal

        pedal, notes = infer_pedal(notes)
        report.n_pedal = len(pedal)
        report.lines.append(f"sustain pedal: {len(pedal)} presses inferred from note releases")
    grid = None
    needs_grid = (
        options.quantize is not None
        or fmt == "musicxml"
        or (fmt == "mid" and (options.beats or options.tempo_bpm is not None))
    )
    if needs_grid:
        if not options.beats and options.tempo_bpm is None:
            from .rhythm import DEFAULT_BPM

            grid = estimate_grid(notes, tempo_bpm=DEFAULT_BPM, beats_per_bar=options.beats_per_bar)
        else:
            grid = estimate_grid(
                notes,
                onset_strength=env,
                frame_rate=frame_rate,
                duration_s=duration,
                tempo_bpm=options.tempo_bpm,
                beats_per_bar=options.beats_per_bar,
            )
        report.grid = grid
        how = "tracked" if grid.tracked else "fixed"
        report.lines.append(
            f"tempo {grid.tempo_bpm:.0f} BPM ({how}, median), {grid.time_signature}, {len(grid.beats_s)} beats"
        )
    steps = (4,)
    if options.quantize is not None:
        steps = parse_quantize(options.quantize)
        notes, q = quantize_notes(notes, grid, steps=steps, spec=options.quantize)
        report.quantize = q
        report.lines.append(q.as_text())
    if options.velocity_from == "confidence":
        notes = velocity_from_confidence(notes)
    meta = dict(meta or {})
    if fmt == "json" and grid is not None:
        meta.update(
            tempo_bpm=round(grid.tempo_bpm, 2),
            time_signature=grid.time_signature,
            beats_s=[round(float(b), 4) for b in grid.beats_s],
            downbeats_s=[round(float(b), 4) for b in grid.downbeats_s],
        )
    if fmt == "json" and pedal is not None:
        meta["pedal_s"] = [[round(float(a), 4), round(float(b), 4)] for a, b in pedal]
    if fmt == "musicxml":
        from .score import estimate_key

        report.key = estimate_key(notes)
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        report.lines.append(f"key {names[report.key[0]]} {report.key[1]} (estimated)")
    report.n_notes = len(notes)
    write_notes(notes, path, fmt=fmt, meta=meta, grid=grid, pedal=pedal, steps=steps, key=report.key)
    return report


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
    ax.imshow(
        features[:n].T, origin="lower", aspect="auto", extent=(0, dur, lo, hi), cmap="magma", interpolation="nearest"
    )
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
