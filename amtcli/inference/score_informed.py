"""A recording and its score: align the score to the recording (``amt align``), and transcribe the
recording with the score's help (``amt transcribe --score`` / ``--library``).

Both transcribe the recording first (a frame model: its onset and frame posteriors are what the
score is aligned to), then call the pure functions of :mod:`amtcli.align`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..align import AlignConfig, Alignment, CorrectConfig, Correction, align_notes, correct_transcription
from ..config import CHUNK_S, DecodeConfig
from ..errors import BadInput, BadMidi
from ..notes import NoteArray, midi_to_notes
from .transcribe import Transcription, transcribe_full


def read_score(score: str | os.PathLike | NoteArray) -> NoteArray:
    """A score given as a MIDI file or as notes -> its pitched notes (:class:`BadMidi` when it has none)."""
    if isinstance(score, NoteArray):
        notes = score
        name = "the score"
    else:
        notes = midi_to_notes(score)
        name = str(score)
    notes = notes.pitched()
    if not len(notes):
        raise BadMidi(f"{name}: the score has no pitched notes")
    return notes.sorted()


def _frame_transcription(recording, *, model, device, decode, chunk_s, precision, on_progress) -> Transcription:
    result = transcribe_full(
        recording,
        model=model,
        device=device,
        decode=decode,
        chunk_s=chunk_s,
        precision=precision,
        on_progress=on_progress,
    )
    if not result.posteriors:
        raise BadInput(
            "aligning a score needs a frame model's posteriors (onset and frame probabilities); "
            "this model writes tokens. Use a frame model such as 'synthetic'"
        )
    return result


def _loaded(model: Any, device: str) -> Any:
    """A zoo spec -> ``(model, release config)`` loaded once; a loaded model as it is."""
    if isinstance(model, (str, os.PathLike)):
        from ..devices import resolve_device
        from ..zoo import load_model

        return load_model(str(model), device=resolve_device(device))
    return model


def _fmin_midi(model: Any) -> int:
    """The MIDI number of the posteriors' first key."""
    net = model[0] if isinstance(model, tuple) else model
    return int(net.feature_config.fmin_midi)


def align_recording(
    recording: str | os.PathLike,
    score: str | os.PathLike | NoteArray,
    *,
    model: Any = "synthetic",
    device: str = "auto",
    chunk_s: float = CHUNK_S,
    precision: str | None = None,
    config: AlignConfig | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[Alignment, Transcription]:
    """The score's notes re-timed to ``recording``: transcribe it with ``model`` (a zoo spec or a
    loaded ``(model, release)``), then :func:`amtcli.align.align_notes`. Returns the alignment and
    the transcription it was made from."""
    notes = read_score(score)
    model = _loaded(model, device)
    result = _frame_transcription(
        recording,
        model=model,
        device=device,
        decode=None,
        chunk_s=chunk_s,
        precision=precision,
        on_progress=on_progress,
    )
    fmin = _fmin_midi(model)
    alignment = align_notes(
        notes, result.posteriors, frame_rate=result.frame_rate, fmin_midi=fmin, config=config or AlignConfig()
    )
    return alignment, result


@dataclass
class InformedTranscription(Transcription):
    """A :class:`Transcription` corrected with a score: ``notes`` are the corrected notes,
    ``blind_notes`` the model's own, ``alignment`` the score aligned to the recording and
    ``correction`` the counts of what was kept, dropped and added."""

    blind_notes: NoteArray | None = None
    alignment: Alignment | None = None
    correction: Correction | None = None
    score_index: int = 0
    score_costs: list[float] | None = None


def transcribe_with_score(
    recording: str | os.PathLike,
    score: str | os.PathLike | NoteArray | list,
    *,
    model: Any = "synthetic",
    device: str = "auto",
    decode: DecodeConfig | None = None,
    chunk_s: float = CHUNK_S,
    precision: str | None = None,
    align_config: AlignConfig | None = None,
    correct_config: CorrectConfig | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    transcription: Transcription | None = None,
) -> InformedTranscription:
    """Score-informed transcription: transcribe ``recording``, align ``score`` to it, and correct
    the notes with the aligned score (:func:`amtcli.align.correct_transcription`): notes the audio
    supports that the model missed are added, weak notes the score lacks are dropped, and the
    performance's timing and velocities are kept.

    ``score`` may be a list of candidate scores (paths or notes): each is aligned and the one
    with the lowest mean cost along its warping path is used (``.score_index`` says which;
    ``.score_costs`` holds every candidate's cost). ``transcription``: the recording already
    transcribed by ``model`` (as :func:`identify_candidates` returns it), used when ``decode`` is
    None or the one it was decoded with."""
    candidates = score if isinstance(score, list) else [score]
    if not candidates:
        raise BadInput("no score to transcribe with")
    notes = [read_score(c) for c in candidates]
    model = _loaded(model, device)
    if transcription is not None and transcription.posteriors and decode in (None, transcription.decode):
        result = transcription
    else:
        result = _frame_transcription(
            recording,
            model=model,
            device=device,
            decode=decode,
            chunk_s=chunk_s,
            precision=precision,
            on_progress=on_progress,
        )
    fmin = _fmin_midi(model)
    alignments = [
        align_notes(
            n, result.posteriors, frame_rate=result.frame_rate, fmin_midi=fmin, config=align_config or AlignConfig()
        )
        for n in notes
    ]
    costs = [a.cost for a in alignments]
    best = int(min(range(len(costs)), key=costs.__getitem__))
    alignment = alignments[best]
    min_note_s = result.decode.min_note_s if result.decode is not None else 0.05
    correction = correct_transcription(
        result.notes,
        alignment,
        result.posteriors,
        frame_rate=result.frame_rate,
        fmin_midi=fmin,
        min_note_s=min_note_s,
        config=correct_config or CorrectConfig(),
    )
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(Transcription)}
    fields["notes"] = correction.notes
    return InformedTranscription(
        **fields,
        blind_notes=result.notes,
        alignment=alignment,
        correction=correction,
        score_index=best,
        score_costs=costs,
    )


def identify_candidates(
    recording: str | os.PathLike,
    library: str | os.PathLike,
    *,
    top: int = 3,
    model: Any = "synthetic",
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    on_transcribe_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Path], Any]:
    """The ``top`` MIDI files of ``library`` that ``recording`` most likely plays, best first, by
    ``amt identify --method transcription`` (:func:`amtcli.inference.identify_notes.identify_by_transcription`:
    transcribe with ``model``, fingerprint pre-filter, DTW re-ranking). Returns ``(paths, identification)``;
    ``identification.transcription`` is the recording's transcription, for :func:`transcribe_with_score`."""
    from .identify_notes import identify_by_transcription

    found = identify_by_transcription(
        recording,
        library,
        model=_loaded(model, device),
        device=device,
        top=top,
        cache_dir=cache_dir,
        progress=progress,
        on_transcribe_progress=on_transcribe_progress,
    )
    if not found.matches:
        raise BadInput(f"{recording}: no piece of {library} could be matched")
    return [found.library.root / m.file for m in found.matches], found
