"""Evaluation runs: systems (our models, or folders of another tool's MIDI files) x conditions
(clean audio, or noise at an SNR) over the items of a dataset.

The loop is item-major: each reference is read once and each audio file loaded once per model,
whatever the number of systems and conditions. Progress goes through a callback; nothing prints.
"""

from __future__ import annotations

import os
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..datasets.base import Item
from ..errors import AmtError, BadInput
from ..notes import NoteArray, midi_to_notes
from .metrics import Counts, aggregate, score_notes

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class Condition:
    """Clean audio (``snr_db`` None) or audio plus ``noise`` at ``snr_db`` (a colour, or the path of a
    noise recording: :mod:`amtcli.audio.noise`)."""

    snr_db: float | None = None
    noise: str = "white"

    @property
    def name(self) -> str:
        from ..audio.noise import noise_label

        return "clean" if self.snr_db is None else f"{self.snr_db:g} dB {noise_label(self.noise)}"


CLEAN = Condition()


@dataclass
class FileResult:
    item_id: str
    piece: str
    duration_s: float
    counts: dict[str, Counts | None]


@dataclass
class RunResult:
    """One system under one condition: per-file counts and their micro/macro aggregates."""

    system: str
    condition: Condition
    files: list[FileResult] = field(default_factory=list)

    def aggregate(self) -> dict:
        return aggregate([f.counts for f in self.files])


# ------------------------------------------------------------------------------------ systems


class PredictionFolder:
    """MIDI files written by any tool, named like the audio they transcribe (``<stem>.mid``).

    Files are found recursively. An item matches ``<audio stem>.mid`` or ``<item id>.mid``; when
    several files share that stem, the one in the same relative folder as the audio wins.
    Files are read with sustain-pedal extension: a tool that writes pedal events means its notes
    to sound until the pedal lifts (a no-op for files without pedal events).
    """

    kind = "predictions"

    def __init__(self, folder: str | os.PathLike, *, name: str | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise BadInput(f"--predictions {self.folder}: not a folder")
        self.name = name or self.folder.name or str(self.folder)
        self._by_stem: dict[str, list[Path]] = defaultdict(list)
        for p in sorted(self.folder.rglob("*")):
            if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES:
                self._by_stem[p.stem].append(p)

    def find(self, item: Item, *, root: Path | None = None) -> Path | None:
        for stem in dict.fromkeys((item.audio.stem, Path(item.id).name)):
            found = self._by_stem.get(stem, [])
            if len(found) == 1:
                return found[0]
            if len(found) > 1 and root is not None:
                try:
                    rel = item.audio.parent.relative_to(root)
                except ValueError:
                    rel = None
                same = [p for p in found if rel is not None and p.parent.relative_to(self.folder) == rel]
                if len(same) == 1:
                    return same[0]
            if len(found) > 1:
                raise BadInput(
                    f"--predictions {self.folder}: {len(found)} files named {stem}.mid; keep one per recording"
                )
        return None

    def match(self, items: Sequence[Item], *, root: Path | None = None) -> dict[str, Path]:
        """Item id -> prediction file; raises :class:`BadInput` naming what is missing."""
        found, missing = {}, []
        for item in items:
            path = self.find(item, root=root)
            if path is None:
                missing.append(item)
            else:
                found[item.id] = path
        if missing:
            first = missing[0]
            raise BadInput(
                f"--predictions {self.folder}: no MIDI file for {len(missing)} of {len(items)} recording(s), "
                f"e.g. {first.audio.stem}.mid (for {first.audio.name})"
            )
        return found


class ModelSystem:
    """One of our models (zoo name, release folder or hf:// reference), loaded once."""

    kind = "model"

    def __init__(
        self, spec: Any, *, device: str = "auto", decode=None, name: str | None = None, precision: str | None = None
    ):
        self.spec = spec
        self.device = device
        self.precision = precision
        self.decode = decode
        self.name = name or (Path(spec).name if isinstance(spec, (str, os.PathLike)) else type(spec).__name__)
        self._loaded = None

    def load(self):
        """``(model, release_config)``, loaded on first use."""
        if self._loaded is None:
            if isinstance(self.spec, (str, os.PathLike)):
                from ..devices import resolve_device
                from ..zoo import load_model

                self._loaded = load_model(str(self.spec), device=resolve_device(self.device))
            else:
                self._loaded = self.spec
        return self._loaded

    @property
    def sample_rate(self) -> int:
        model, _ = self.load()
        return int(model.feature_config.sample_rate)

    def transcribe(self, audio: np.ndarray) -> NoteArray:
        from ..inference.transcribe import transcribe

        return transcribe(
            audio,
            model=self.load(),
            device=self.device,
            decode=self.decode,
            sample_rate=self.sample_rate,
            precision=self.precision,
        )


def noise_rng(item_id: str, *, seed: int) -> np.random.Generator:
    """The noise generator of one file: the same noise signal for every SNR and model of a run."""
    return np.random.default_rng([seed, zlib.crc32(item_id.encode("utf-8"))])


# ---------------------------------------------------------------------------------------- run


def clip_to(notes: NoteArray, duration_s: float | None) -> NoteArray:
    """Notes that start before ``duration_s``, offsets cut there (None: unchanged)."""
    if duration_s is None or not len(notes):
        return notes
    return notes.clipped(0.0, duration_s)


def run_evaluation(
    items: Sequence[Item],
    systems: Sequence[PredictionFolder | ModelSystem],
    *,
    conditions: Sequence[Condition] = (CLEAN,),
    seed: int = 0,
    root: Path | None = None,
    clip_to_audio: bool = True,
    on_step: Callable[[str], None] | None = None,
    on_skip: Callable[[Item, str], None] | None = None,
) -> list[RunResult]:
    """Score every system under every condition on ``items``; one :class:`RunResult` each.

    ``clip_to_audio``: references (and estimates) are cut to the audio file's length, so an
    excerpt is scored against the notes it holds; a no-op for complete recordings apart from
    notes still ringing at the very end. Prediction folders are scored on clean audio only.
    ``on_step(message)`` is called after each item is done for a system (all its conditions).
    An item whose audio, reference or prediction cannot be read (an :class:`AmtError`) is left
    out for every system, so that they are scored on the same items, and ``on_skip(item,
    reason)`` is called; if every item is left out, :class:`AmtError` names the first reason.
    """
    from ..audio.io import audio_info, load_audio
    from ..audio.noise import mix_noise

    if not items:
        raise BadInput("nothing to evaluate: no items")
    if any(c.snr_db is not None for c in conditions) and any(isinstance(s, PredictionFolder) for s in systems):
        raise BadInput(
            "--snr needs --model: prediction files were made from clean audio and amt cannot re-run the tool "
            "that wrote them"
        )
    matches = {id(s): s.match(items, root=root) for s in systems if isinstance(s, PredictionFolder)}
    runs = {(i, c): RunResult(s.name, c) for i, s in enumerate(systems) for c in conditions}
    skipped: list[str] = []
    for item in items:
        results: list[tuple[tuple[int, Condition], FileResult]] = []
        stepped = 0
        try:
            duration = audio_info(item.audio)[2]
            reference = item.load_notes()
            if clip_to_audio:
                reference = clip_to(reference, duration)
            for i, system in enumerate(systems):
                audio = None
                if isinstance(system, ModelSystem):
                    audio = load_audio(item.audio, sample_rate=system.sample_rate)
                for cond in conditions:
                    if isinstance(system, PredictionFolder):
                        estimate = midi_to_notes(matches[id(system)][item.id], sustain=True)
                    else:
                        x = audio
                        if cond.snr_db is not None:
                            x = mix_noise(
                                audio,
                                snr_db=cond.snr_db,
                                kind=cond.noise,
                                rng=noise_rng(item.id, seed=seed),
                                sample_rate=system.sample_rate,
                            )
                        estimate = system.transcribe(x)
                    if clip_to_audio:
                        estimate = clip_to(estimate, duration)
                    counts = score_notes(reference, estimate, with_velocity=item.has_velocity)
                    results.append(((i, cond), FileResult(item.id, item.piece, duration, counts)))
                if on_step is not None:
                    on_step(f"{system.name}: {item.id}")
                stepped += 1
        except AmtError as exc:
            skipped.append(f"{item.id}: {exc}")
            if on_skip is not None:
                on_skip(item, str(exc))
            for system in systems[stepped:]:
                if on_step is not None:
                    on_step(f"{system.name}: {item.id} skipped")
            continue
        for key, result in results:
            runs[key].files.append(result)
    if len(skipped) == len(items):
        raise AmtError(f"nothing to evaluate: all {len(items)} recording(s) were skipped, e.g. {skipped[0]}")
    return [runs[(i, c)] for i in range(len(systems)) for c in conditions]


def parse_snrs(text: str) -> list[float]:
    """``"30,20,10,0,-5"`` -> ``[30.0, 20.0, 10.0, 0.0, -5.0]``."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("db").strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise BadInput(f"--snr: {part!r} is not a number (give dB values like 30,20,10,0,-5)") from None
        if not np.isfinite(value):
            raise BadInput(f"--snr: {part!r} is not a finite number of dB")
        out.append(value)
    if not out:
        raise BadInput("--snr: no values (give dB values like 30,20,10,0,-5)")
    return out
