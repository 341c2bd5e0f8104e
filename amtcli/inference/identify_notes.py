"""Identify a recording in a MIDI library by its transcription (``amt identify --method transcription``).

1. The recording is transcribed once with a frame model (the default ``synthetic``): its notes and
   its onset and frame posteriors.
2. Pre-filter: the transcribed notes' symbolic fingerprints (:mod:`amtcli.fingerprint`) score every
   piece of the library's note index (:mod:`amtcli.inference.note_index`, cached per file); the
   ``shortlist`` best go on.
3. Offset: subsequence DTW of the posteriors against the piano roll of each of the first
   ``shortlist`` pieces (:func:`amtcli.fingerprint.subsequence_match`, at ``frame_rate / pool``); the
   path's start is the piece time at which the recording starts. Pieces stay in fingerprint order:
   re-ranking them by DTW cost measured worse (benchmarks/identify_library.py: a 30 s stretch of a
   long wrong piece often aligns more cheaply than the right piece), so it is an option (``rerank``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..align import performance_features
from ..errors import BadInput
from ..fingerprint import FingerprintConfig, note_codes, notes_features, pool_frames, subsequence_match
from ..notes import NoteArray
from .note_index import NoteLibrary, index_notes

SHORTLIST = 3  # the first pieces by fingerprint that DTW aligns (for the offset)
POOL = 8  # posterior frames averaged per DTW frame (31.25 fps -> 3.9 fps)


@dataclass
class NoteMatch:
    """One library piece: ``cost`` the mean DTW cost of the recording against it (0: identical,
    1: nothing in common); ``offset_s`` the piece time at which the recording starts, ``end_s`` where
    it ends; ``prefilter`` its fingerprint score and ``prefilter_rank`` its rank by that (1: best)."""

    file: str
    cost: float
    offset_s: float
    end_s: float
    prefilter: float
    prefilter_rank: int


@dataclass
class NoteIdentification:
    """``matches`` best first; ``seconds``: wall time of each stage (transcribe, index, prefilter, rerank)."""

    matches: list[NoteMatch]
    duration_s: float
    n_notes: int
    library: NoteLibrary
    seconds: dict[str, float] = field(default_factory=dict)
    transcription: Any = None


def rank_by_notes(
    notes: NoteArray,
    posteriors: dict[str, np.ndarray],
    library: NoteLibrary,
    *,
    frame_rate: float,
    fmin_midi: int = 21,
    top: int = 5,
    shortlist: int = SHORTLIST,
    pool: int = POOL,
    rerank: bool = False,
    seconds: dict | None = None,
) -> list[NoteMatch]:
    """A transcription (its ``notes`` and ``onset``/``frame`` posteriors ``(n_frames, n_keys)``) ->
    the ``top`` pieces of ``library`` in fingerprint order, the first ``shortlist`` of them with their
    DTW cost and offset (``rerank=True``: those re-ordered by DTW cost, which measured worse)."""
    if top < 1:
        raise BadInput(f"--top must be at least 1, got {top}")
    if shortlist < 1:
        raise BadInput(f"--shortlist must be at least 1, got {shortlist}")
    if pool < 1:
        raise BadInput(f"pool must be at least 1, got {pool}")
    t0 = time.perf_counter()
    scores = library.index.search(note_codes(notes, config=library.config)[0], length_norm=library.config.length_norm)
    order = np.lexsort((np.arange(len(scores)), -scores))  # best first, ties in file order
    t1 = time.perf_counter()
    onset, frame = posteriors["onset"], posteriors["frame"]
    query = pool_frames(performance_features(onset, frame), pool)
    found = []
    for rank, i in enumerate(order[: max(shortlist, top)], 1):
        if rank > shortlist:
            found.append(
                NoteMatch(library.files[int(i)], float("nan"), float("nan"), float("nan"), float(scores[i]), rank)
            )
            continue
        feats = notes_features(
            library.notes(int(i)), frame_rate=frame_rate, fmin_midi=fmin_midi, n_keys=onset.shape[1], pool=pool
        )
        m = subsequence_match(query, feats, frame_rate=frame_rate / pool)
        found.append(
            NoteMatch(
                file=library.files[int(i)],
                cost=m.cost,
                offset_s=m.offset_s,
                end_s=m.end_s,
                prefilter=float(scores[i]),
                prefilter_rank=rank,
            )
        )
    if rerank:
        found.sort(key=lambda m: (m.cost, m.prefilter_rank))
    if seconds is not None:
        seconds["prefilter"] = t1 - t0
        seconds["rerank"] = time.perf_counter() - t1
    return found[:top]


def identify_by_transcription(
    recording: str | os.PathLike,
    library: str | os.PathLike | NoteLibrary,
    *,
    model: Any = "synthetic",
    device: str = "auto",
    top: int = 5,
    shortlist: int = SHORTLIST,
    pool: int = POOL,
    config: FingerprintConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    jobs: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    on_transcribe_progress: Callable[[int, int], None] | None = None,
    transcription: Any = None,
) -> NoteIdentification:
    """Which pieces of ``library`` (a MIDI folder, or a :class:`NoteLibrary`) does ``recording``
    play, and from where? ``model``: a frame model (zoo name, folder, or a loaded ``(model, release)``).
    A :class:`~amtcli.inference.transcribe.Transcription` of the recording may be passed as
    ``transcription`` to skip transcribing it again."""
    from .transcribe import transcribe_full

    if top < 1:
        raise BadInput(f"--top must be at least 1, got {top}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if transcription is None:  # first: a recording that cannot be read fails before the library is indexed
        transcription = transcribe_full(recording, model=model, device=device, on_progress=on_transcribe_progress)
    t1 = time.perf_counter()
    seconds["transcribe"] = t1 - t0
    lib = (
        library
        if isinstance(library, NoteLibrary)
        else index_notes(library, config=config, cache_dir=cache_dir, use_cache=use_cache, jobs=jobs, progress=progress)
    )
    seconds["index"] = time.perf_counter() - t1
    if not transcription.posteriors:
        raise BadInput(
            "identifying by transcription needs a frame model's posteriors; this model writes tokens. "
            "Use a frame model such as 'synthetic'"
        )
    fmin = _fmin_midi(model, transcription)
    matches = rank_by_notes(
        transcription.notes,
        transcription.posteriors,
        lib,
        frame_rate=transcription.frame_rate,
        fmin_midi=fmin,
        top=top,
        shortlist=shortlist,
        pool=pool,
        seconds=seconds,
    )
    return NoteIdentification(
        matches=matches,
        duration_s=transcription.duration_s,
        n_notes=len(transcription.notes),
        library=lib,
        seconds=seconds,
        transcription=transcription,
    )


def _fmin_midi(model: Any, transcription) -> int:
    """The MIDI number of the posteriors' first key: from the model's front end where it is known."""
    net = model[0] if isinstance(model, tuple) else None
    if net is not None and hasattr(net, "feature_config"):
        return int(net.feature_config.fmin_midi)
    if isinstance(model, (str, os.PathLike)):
        from ..zoo import read_release_config, resolve

        return int(read_release_config(resolve(str(model))).feature_config.fmin_midi)
    return 21
