"""`amt transcribe`: audio files or folders -> MIDI / CSV / JSON (and a PNG piano roll)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import CHUNK_S, DECODE_HELP
from . import app
from .common import (
    DeviceOpt,
    ModelOpt,
    OverwriteOpt,
    PrecisionOpt,
    console,
    err_console,
    fail,
    handle_errors,
    progress,
    warn,
)


def invalid_tokens_text(n: int) -> str:
    """How a token model's skipped tokens are reported (0 is worth saying too: the decoding was clean)."""
    return f"{n} invalid token{'' if n == 1 else 's'} skipped"


def print_decoding(decode, model_default, *, tokens_model: bool, model: str) -> None:
    """The table of ``--explain``: each decoding setting, its value, where it came from, what it means."""
    from rich.table import Table

    from ..inference.decoding import explain_decoding

    table = Table(title=f"decoding with {model}", title_justify="left")
    for col in ("flag", "value", "source", "meaning"):
        table.add_column(col, overflow="fold")
    for row in explain_decoding(decode, model_default=model_default, tokens_model=tokens_model):
        table.add_row(*row)
    console().print(table)


@app.command()
@handle_errors
def transcribe(
    audio: Annotated[
        list[Path],
        typer.Argument(
            help="Audio files (wav, flac, ogg, mp3, ...) or folders (searched recursively).", show_default=False
        ),
    ],
    output: Annotated[
        Optional[str],
        typer.Option(
            "--output",
            "-o",
            help="Output file (one input; its suffix picks the format) or folder (no suffix, an existing folder, or ending in /). Default: beside each input.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        Optional[str],
        typer.Option(
            "--format", "-f", help="mid (default), csv, json or musicxml. Taken from -o's extension when it has one."
        ),
    ] = None,
    model: ModelOpt = "synthetic",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="What runs the network: auto (onnxruntime on the CPU when the model has a model.onnx, else torch; --explain says which and why), torch, onnx.",
        ),
    ] = "auto",
    onset_threshold: Annotated[
        Optional[float], typer.Option(min=0.0, max=1.0, help=DECODE_HELP["onset_threshold"] + " [default: the model's]")
    ] = None,
    frame_threshold: Annotated[
        Optional[float], typer.Option(min=0.0, max=1.0, help=DECODE_HELP["frame_threshold"] + " [default: the model's]")
    ] = None,
    offset_threshold: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=1.0, help=DECODE_HELP["offset_threshold"] + " [default: the model's]"),
    ] = None,
    min_note_s: Annotated[
        Optional[float], typer.Option(min=0.0, help=DECODE_HELP["min_note_s"] + " [default: the model's]")
    ] = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Also write a PNG piano roll over the CQT beside each output.")
    ] = False,
    chunk_s: Annotated[
        float, typer.Option(min=1.0, help="Seconds of audio per network chunk (memory vs. speed).")
    ] = CHUNK_S,
    overwrite: OverwriteOpt = False,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="Keep outputs that are already there and do the rest (for reruns; the --plot image of an output that is redone is replaced).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Files transcribed at once, each in its own process (the model is loaded once per process).",
        ),
    ] = 1,
    beats: Annotated[
        bool,
        typer.Option(
            "--beats/--no-beats",
            help="Track beats and bars: the MIDI gets them as tempo map and time signature (notes keep their times), a score its bars. --no-beats: MIDI at a plain 120 BPM.",
        ),
    ] = True,
    tempo: Annotated[
        Optional[float],
        typer.Option(
            "--tempo", help="Force this tempo (BPM) from the first note instead of tracking beats.", show_default=False
        ),
    ] = None,
    beats_per_bar: Annotated[
        Optional[int],
        typer.Option(
            "--beats-per-bar",
            help="Force the meter (x/4, 2-9 or 12 beats) instead of estimating it.",
            show_default=False,
        ),
    ] = None,
    quantize: Annotated[
        Optional[str],
        typer.Option(
            "--quantize",
            help="Move notes onto the beat grid: 1/4, 1/8, 1/16, 1/32, triplets 1/8t, 1/16t, or both (1/16,1/8t: per beat, whichever fits). Off by default; prints how far notes moved.",
            show_default=False,
        ),
    ] = None,
    pedal: Annotated[
        bool,
        typer.Option(
            "--pedal",
            help="Infer the sustain pedal from the note releases (no model measures it): CC64 in the MIDI, key releases in release_s.",
        ),
    ] = False,
    velocity_from: Annotated[
        str,
        typer.Option(
            "--velocity-from",
            help="MIDI velocity from the model's velocity head (model) or from each note's confidence, its onset probability (confidence).",
        ),
    ] = "model",
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Print the backend and precision chosen, and the thresholds and minimum note length in use, with what each means.",
        ),
    ] = False,
    score: Annotated[
        Optional[Path],
        typer.Option(
            "--score",
            help="A MIDI score of the recording (one recording): align it and correct the transcription with it (notes the audio supports that the model missed are added, weak notes the score lacks dropped; timing and velocities stay the performance's).",
            show_default=False,
        ),
    ] = None,
    library: Annotated[
        Optional[Path],
        typer.Option(
            "--library",
            help="A folder of MIDI scores: amt identify ranks the pieces (by the transcription), its 3 best are aligned to the recording, and the best-aligned one is used as --score.",
            show_default=False,
        ),
    ] = None,
):
    """Transcribe recordings into MIDI (or CSV / JSON notes).

    [bold]amt transcribe song.wav -o song.mid[/] — one file.
    [bold]amt transcribe recordings/ -o midi/ --jobs 2[/] — a folder, keeping its sub-folders, two files at a time.

    Outputs are checked before any work: none is overwritten without --overwrite, none may be an
    input, and their folders must be writable. In a batch, a file that fails is named with its
    reason at the end and the others go on (exit code 1 if any failed).
    """
    import time

    from rich.markup import escape

    from ..config import override
    from ..devices import check_precision, resolve_device, resolve_precision
    from ..errors import BadInput
    from ..inference.backends import check_backend, choose_backend, load_transcriber
    from ..inference.batch import check_outputs, plan_outputs, transcribe_files
    from ..nets import output_kind
    from ..outputs import FORMATS, OutputOptions
    from ..zoo import read_release_config, resolve

    formats = list(dict.fromkeys(FORMATS.values()))
    if fmt is not None and fmt not in formats:
        raise BadInput(f"--format must be one of {', '.join(formats)}, not {fmt!r}")
    out_options = OutputOptions(
        beats=beats,
        tempo_bpm=tempo,
        beats_per_bar=beats_per_bar,
        quantize=quantize,
        pedal=pedal,
        velocity_from=velocity_from,
    )
    pairs = plan_outputs(audio, output, fmt=fmt)
    # refuse up front what would overwrite or cannot be written, before any work is done
    check_outputs(pairs, overwrite=overwrite, skip_existing=skip_existing, extra_suffixes=(".png",) if plot else ())
    if score is not None or library is not None:  # the score-informed path (amt align's machinery)
        from .align import transcribe_informed

        decode_overrides = dict(
            onset_threshold=onset_threshold,
            frame_threshold=frame_threshold,
            offset_threshold=offset_threshold,
            min_note_s=min_note_s,
        )
        return transcribe_informed(
            pairs,
            score=score,
            library=library,
            model=model,
            device=device,
            precision=precision,
            chunk_s=chunk_s,
            plot=plot,
            output_options=out_options,
            decode_overrides=decode_overrides,
        )
    check_precision(precision)  # a bad --precision or --backend fails before anything loads
    check_backend(backend)
    dev = resolve_device(device)
    folder = resolve(model)
    release = read_release_config(folder)
    chosen = choose_backend(backend, device=dev, folder=folder, architecture=release.architecture, precision=precision)
    if chosen.name == "torch":
        resolve_precision(precision, dev)  # fp16 on a CPU fails here, before the model loads
    if jobs > 1 and len(pairs) > 1:  # the workers load the model; here its config is enough
        loaded = None
    else:
        net, release = load_transcriber(folder, backend=chosen.name, device=dev, release=release)
        loaded = (net, release, folder)
    decode = override(
        release.decode_config,
        onset_threshold=onset_threshold,
        frame_threshold=frame_threshold,
        offset_threshold=offset_threshold,
        min_note_s=min_note_s,
    )

    tokens_model = output_kind(release.architecture) == "tokens"
    if explain:
        prec = "fp32 (onnxruntime)" if chosen.name == "onnx" else str(resolve_precision(precision, dev))
        console().print(escape(f"backend {backend} -> {chosen}\nprecision {precision} -> {prec}"), soft_wrap=True)
        print_decoding(decode, release.decode_config, tokens_model=tokens_model, model=model)
    many = len(pairs) > 1
    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("transcribing", total=len(pairs), info="")

        def report(outcome) -> None:
            for message in outcome.warnings:
                warn(message)
            bar.update(task, advance=1, info=outcome.source.name)

        outcomes = transcribe_files(
            pairs,
            model=model,
            device=dev,
            decode=decode,
            chunk_s=chunk_s,
            precision=precision,
            plot=plot,
            skip_existing=skip_existing,
            jobs=jobs,
            backend=chosen.name,
            loaded=loaded,
            on_result=report,
            output_options=out_options,
        )
    wall = time.perf_counter() - t0
    done = [o for o in outcomes if o.status == "done"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    failed = [o for o in outcomes if o.status == "failed"]
    if not many and failed:
        raise fail(failed[0].error or "failed", failed[0].exit_code or 1)
    if not many:
        for o in done:
            console().print(
                f"{o.output}: {o.n_notes} notes from {o.duration_s:.1f} s of audio"
                + (f"; {invalid_tokens_text(o.invalid_tokens)}" if tokens_model else "")
            )
            for line in o.report:
                console().print(f"  {line}")
        for o in skipped:
            console().print(f"{o.output}: already there (--skip-existing)")
        return
    total_audio = sum(o.duration_s for o in done)
    summary = f"{len(done)} of {len(pairs)} files transcribed ({total_audio:.0f} s of audio in {wall:.1f} s)"
    if skipped:
        summary += f"; {len(skipped)} skipped (already there)"
    if tokens_model:
        summary += f"; {invalid_tokens_text(sum(o.invalid_tokens for o in done))}"
    console().print(summary)
    if failed:
        for o in failed:
            err_console().print(f"[red]failed:[/] {escape(o.error or '')}", soft_wrap=True)
        raise fail(f"{len(failed)} of {len(pairs)} file(s) failed (listed above)", 1)
