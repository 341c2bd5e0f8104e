"""``amt align RECORDING SCORE.mid -o aligned.mid``: the score's notes re-timed to the performance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, ModelOpt, OverwriteOpt, PrecisionOpt, console, handle_errors, progress


def check_paths(recording: Path, score: Path, output: Path, *, overwrite: bool) -> None:
    """Refuse before any work: a missing input, an output that is an input, or one that exists."""
    import os

    from ..errors import BadAudio, BadInput, BadMidi
    from ..inference.batch import check_outputs

    if not recording.is_file():
        raise BadAudio(f"{recording}: no such recording" if not recording.exists() else f"{recording}: not a file")
    if not score.is_file():
        raise BadMidi(f"{score}: no such score" if not score.exists() else f"{score}: not a file")
    if os.path.realpath(output) == os.path.realpath(score):
        raise BadInput(f"output {output} is the score itself; it would be overwritten. Choose another -o")
    check_outputs([(recording, output)], overwrite=overwrite)


@app.command()
@handle_errors
def align(
    recording: Annotated[Path, typer.Argument(help="The performance: an audio file (wav, flac, ogg, mp3...).")],
    score: Annotated[Path, typer.Argument(help="The score of the piece: a MIDI file (.mid, .midi).")],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Where the aligned score goes: .mid (default), .csv or .json. Default: <recording>.aligned.mid beside the recording.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = "synthetic",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    overwrite: OverwriteOpt = False,
):
    """Align a score to a recording of it: the score's notes, re-timed to the performance.

    [bold]amt align take1.wav piece.mid -o take1-aligned.mid[/]

    The recording is transcribed (a frame model: its onset and frame probabilities), the score
    becomes the same features (piano roll and onsets), and dynamic time warping (librosa's, at
    the model's 32 ms frames; long pieces coarse first, then in a band) maps score time to
    performance time. Each note's onset then moves to its key's onset peak in the recording when
    one is within 0.1 s, so notes land on the performance's own onsets. Pitches, velocities and
    instruments are the score's; the recording should play the whole score, start to end.
    On the real MAPS recordings, onsets land a median 18 ms from the labels (95 % within 89 ms;
    benchmarks/score_informed.py).
    """
    from ..errors import BadInput
    from ..outputs import FORMATS, write_notes

    out = output if output is not None else recording.with_name(recording.stem + ".aligned.mid")
    fmt = FORMATS.get(out.suffix.lower())
    if fmt not in ("mid", "csv", "json"):
        raise BadInput(f"-o {out}: the aligned score is written as .mid, .csv or .json")
    check_paths(recording, score, out, overwrite=overwrite)

    from ..devices import resolve_device, resolve_precision
    from ..inference.score_informed import align_recording, read_score

    read_score(score)  # an unreadable score fails before the model runs
    dev = resolve_device(device)
    resolve_precision(precision, dev)
    with progress() as bar:
        task = bar.add_task("transcribing", total=None, info=recording.name)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        alignment, result = align_recording(
            recording, score, model=model, device=dev, precision=precision, on_progress=report
        )
    notes = alignment.notes
    write_notes(notes, out, fmt=fmt, meta={"source": str(recording), "score": str(score), "model": model})
    snapped = int(alignment.snapped.sum())
    console().print(
        f"{out}: {len(notes)} score notes aligned to {result.duration_s:.1f} s of audio; "
        f"{snapped} ({snapped / max(1, len(notes)):.0%}) on an onset heard in the recording, the rest placed by the warping path; "
        f"mean path cost {alignment.cost:.2f} (0 = identical, 1 = nothing in common)"
    )


LIBRARY_CANDIDATES = 3  # --library: how many of amt identify's best pieces are aligned to choose from


def transcribe_informed(
    pairs,
    *,
    score: Optional[Path],
    library: Optional[Path],
    model: str,
    device: str,
    precision: str,
    chunk_s: float,
    plot: bool,
    output_options,
    decode_overrides: dict,
) -> None:
    """``amt transcribe REC --score S.mid`` / ``--library DIR``: one recording, transcribed with its score."""
    from rich.markup import escape

    from ..config import override
    from ..devices import resolve_device, resolve_precision
    from ..errors import BadInput, BadMidi
    from ..inference.score_informed import identify_candidates, read_score, transcribe_with_score
    from ..outputs import format_for, write_transcription
    from ..zoo import read_release_config, resolve

    if score is not None and library is not None:
        raise BadInput("--score and --library contradict each other; give one")
    if len(pairs) != 1:
        raise BadInput(f"--score and --library take one recording, not {len(pairs)}")
    if plot:
        raise BadInput("--plot is not available with --score or --library")
    source, output = pairs[0]
    if score is not None:
        if not score.is_file():
            raise BadMidi(f"{score}: no such score" if not score.exists() else f"{score}: not a file")
        read_score(score)  # an unreadable score fails before the model runs
    elif not library.is_dir():
        raise BadInput(f"--library {library}: no such folder")
    dev = resolve_device(device)
    resolve_precision(precision, dev)
    release = read_release_config(resolve(model))
    decode = override(release.decode_config, **decode_overrides)
    with progress() as bar:
        if library is not None:
            task = bar.add_task("identifying", total=None, info="")

            def indexed(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, info=name[-40:])

            score, found = identify_candidates(
                source, library, top=LIBRARY_CANDIDATES, model=model, device=dev, progress=indexed
            )
        task2 = bar.add_task("transcribing", total=None, info=source.name)

        def report(done: int, total: int) -> None:
            bar.update(task2, completed=done, total=total)

        result = transcribe_with_score(
            source,
            score,
            model=model,
            device=dev,
            decode=decode,
            chunk_s=chunk_s,
            precision=precision,
            on_progress=report,
            transcription=found.transcription if library is not None else None,
        )
    if library is not None:
        score = score[result.score_index]
        costs = sorted(result.score_costs)
        runner_up = f"; the next best {costs[1]:.3f}" if len(costs) > 1 else ""
        console().print(
            f"identified: {escape(str(score))} (alignment cost {costs[0]:.3f} among the {len(costs)} "
            f"candidates amt identify ranked first{runner_up})"
        )
    meta = {"source": str(source), "model": model, "score": str(score)}
    written = write_transcription(result, output, fmt=format_for(output), options=output_options, meta=meta)
    c = result.correction
    console().print(
        f"{output}: {written.n_notes} notes from {result.duration_s:.1f} s of audio "
        f"(the model alone: {len(result.blind_notes)}); with the score: {c.kept} confirmed, "
        f"{c.kept_unscored} kept without a score note, {c.dropped} weak ones dropped, {c.added} added"
    )
    for line in written.lines:
        console().print(f"  {line}")
