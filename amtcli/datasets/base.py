"""The record every dataset reader returns, where datasets are looked for, and how labels are read.

An :class:`Item` is one recording with its reference notes. It holds paths and plain values only
(no callables), so lists of items pickle into data-loader workers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput, BadMidi, DatasetNotFound
from ..notes import NoteArray, concat_notes, midi_to_notes

SPLITS = ("train", "validation", "test")
SPLIT_CHOICES = SPLITS + ("all",)

LABEL_KINDS = ("midi", "maps_txt", "jams")


@dataclass(frozen=True)
class Item:
    """One recording of a dataset and where its reference notes are.

    ``id`` is unique within the dataset; ``piece`` groups recordings that must stay in one split
    (takes of one excerpt, renderings of one MIDI file); ``split`` is ``train``, ``validation``,
    ``test`` (or ``excluded`` for MAPS training pieces that also occur in its test set).
    ``has_velocity`` is False when the annotation carries no velocities (MAPS text, JAMS).
    """

    id: str
    dataset: str
    piece: str
    split: str
    audio: Path
    label: Path
    label_kind: str = "midi"
    sustain: bool = False
    has_velocity: bool = True
    duration_s: float | None = None

    def load_notes(self) -> NoteArray:
        """The reference notes (MIDI pitches, seconds)."""
        return load_label(self.label, kind=self.label_kind, sustain=self.sustain)


class ItemList(list):
    """A list of :class:`Item` that also says what the reader skipped and why.

    ``skipped``: ``[(path, reason), ...]`` for annotations without audio and the like.
    ``root``: the folder the items were read from.
    """

    def __init__(self, items=(), *, root: Path | None = None, skipped=None):
        super().__init__(items)
        self.root = root
        self.skipped: list[tuple[str, str]] = list(skipped or [])


# ------------------------------------------------------------------------------------ labels


def read_maps_txt(path: str | os.PathLike) -> NoteArray:
    """A MAPS annotation (header ``OnsetTime OffsetTime MidiPitch``, tab-separated rows)."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise BadMidi(f"{path}: cannot read the annotation ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].lower().startswith("onset"):
            continue
        try:
            rows.append((float(fields[0]), float(fields[1]), float(fields[2])))
        except (ValueError, IndexError):
            raise BadMidi(f"{path}:{number}: expected 'onset offset pitch', got {line.strip()!r}") from None
    return NoteArray.from_lists(rows)


def _jams_number(value, *, where: str, field: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise BadMidi(f"{where}: {field!r} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BadMidi(f"{where}: {field!r} must lie in [{lo}, {hi}], got {value!r}")
    return float(value)


def read_jams_notes(path: str | os.PathLike, *, program: int = 25) -> NoteArray:
    """All ``note_midi`` annotations of a JAMS file (GuitarSet has one per string), merged.

    JAMS is JSON; ``data`` is either a list of ``{time, duration, value}`` observations or a dict
    of parallel lists. Pitches (fractional MIDI numbers in GuitarSet) are rounded to the nearest key.
    Every observation is checked (times and durations finite and >= 0, pitches finite in 0..127):
    anything else is a :class:`BadMidi` naming the file, the annotation, the observation and the field.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadMidi(f"{path}: not a readable JAMS file ({exc})") from None
    annotations = doc.get("annotations", []) if isinstance(doc, dict) else None
    if not isinstance(annotations, list):
        raise BadMidi(f"{path}: not a JAMS file (expected an object with a list of 'annotations')")
    parts = []
    for a, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise BadMidi(f"{path}: annotation {a} is not an object")
        if ann.get("namespace") != "note_midi":
            continue
        where = f"{path}: annotation {a} (note_midi)"
        if "data" not in ann:
            raise BadMidi(f"{where}: no 'data'")
        data = ann["data"] if ann["data"] is not None else []
        if isinstance(data, dict):
            cols = {k: data.get(k) for k in ("time", "duration", "value")}
            bad = [k for k, v in cols.items() if not isinstance(v, list)]
            if bad:
                raise BadMidi(f"{where}: 'data' has no list {bad[0]!r}")
            if len({len(v) for v in cols.values()}) != 1:
                raise BadMidi(f"{where}: the lists time, duration and value differ in length")
            rows = [dict(zip(cols, obs)) for obs in zip(*cols.values())]
        elif isinstance(data, list):
            rows = data
        else:
            raise BadMidi(f"{where}: 'data' must be a list of observations or an object of lists")
        on, dur, pitch = [], [], []
        for j, obs in enumerate(rows):
            at = f"{where}, observation {j}"
            if not isinstance(obs, dict):
                raise BadMidi(f"{at}: an observation must be an object with time, duration and value")
            missing = [k for k in ("time", "duration", "value") if k not in obs]
            if missing:
                raise BadMidi(f"{at}: no {missing[0]!r}")
            on.append(_jams_number(obs["time"], where=at, field="time", lo=0.0))
            dur.append(_jams_number(obs["duration"], where=at, field="duration", lo=0.0))
            pitch.append(_jams_number(obs["value"], where=at, field="value", lo=0.0, hi=127.0))
        if not on:
            continue
        onset = np.asarray(on, np.float64)
        parts.append(
            NoteArray(
                onset,
                onset + np.asarray(dur, np.float64),
                np.rint(np.asarray(pitch, np.float64)),
                np.full(len(on), 80),
                np.full(len(on), program),
            )
        )
    return concat_notes(parts)


def load_label(path: str | os.PathLike, *, kind: str = "midi", sustain: bool = False) -> NoteArray:
    """Read reference notes from a MIDI file, a MAPS ``.txt`` or a JAMS file."""
    if kind == "midi":
        return midi_to_notes(path, sustain=sustain)
    if kind == "maps_txt":
        return read_maps_txt(path)
    if kind == "jams":
        return read_jams_notes(path)
    raise BadInput(f"unknown label kind {kind!r} (known: {', '.join(LABEL_KINDS)})")


# ------------------------------------------------------------------------------------- roots


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder_names: tuple[str, ...]  # tried under $AMT_DATA, in order
    layout: str  # what the reader expects, for the error message
    source: str  # where to get it


def resolve_root(info: DatasetInfo, root: str | os.PathLike | None) -> Path:
    """``root`` if given, else the first of ``$AMT_DATA/<folder_names>`` that exists.

    Raises :class:`DatasetNotFound` saying where it looked, how to point amt at the data and
    where to get it.
    """
    hint = f"Expected layout: {info.layout}. Get it from {info.source}."
    if root is not None:
        root = Path(root).expanduser()
        if root.is_dir():
            return root
        raise DatasetNotFound(f"{info.name}: {root} is not a folder. {hint}")
    base = os.environ.get("AMT_DATA")
    if not base:
        raise DatasetNotFound(
            f"{info.name}: no --root given and AMT_DATA is not set; pass --root DIR or set AMT_DATA "
            f"to a folder holding {info.folder_names[0]}/. {hint}"
        )
    tried = [Path(base).expanduser() / name for name in info.folder_names]
    for path in tried:
        if path.is_dir():
            return path
    raise DatasetNotFound(
        f"{info.name}: not found at {' or '.join(map(str, tried))}; pass --root DIR or put the data there. {hint}"
    )
