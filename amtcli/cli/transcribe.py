"""`amt transcribe`: audio files or folders -> MIDI / CSV / JSON (and a PNG piano roll)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, ModelOpt, PrecisionOpt, OverwriteOpt, console, err_console, fail, handle_errors, progress


def invalid_tokens_text(n: int) -> str:
    """How a token model's skipped tokens are reported (0 is worth saying too: the decoding was clean)."""
    return f"{n} invalid token{'' if n == 1 else 's'} skipped"


def _plan_outputs(inputs: list[Path], out: Optional[Path], fmt: Optional[str]) -> list[tuple[Path, Path]]:
    """(audio file, output file) pairs. One file + ``-o FILE`` writes there; otherwise ``-o`` is a folder
    (created if needed; folder inputs keep their sub-folders) and the default is beside each input."""
    from ..audio.io import find_audio_files
    from ..errors import BadAudio, BadInput
    from ..outputs import FORMATS

    ext = {"mid": ".mid", "csv": ".csv", "json": ".json"}[fmt or "mid"]
    for src in inputs:
        if not src.exists():
            raise BadAudio(f"{src}: no such file or folder")
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    if out is not None and single_file and out.suffix.lower() in FORMATS and not out.is_dir():
        if fmt and FORMATS[out.suffix.lower()] != fmt:
            raise BadInput(f"-o {out} does not match --format {fmt}")
        return [(inputs[0], out)]
    pairs = []
    for src in inputs:
        if src.is_dir():
            files = find_audio_files([src])
            if not files:
                raise BadAudio(f"{src}: no audio files in this folder")
            for f in files:
                rel = f.relative_to(src).with_suffix(ext)
                pairs.append((f, (out / src.name / rel) if out is not None and len(inputs) > 1 else (out / rel if out is not None else f.with_suffix(ext))))
        else:
            pairs.append((src, (out / src.with_suffix(ext).name) if out is not None else src.with_suffix(ext)))
    return pairs


@app.command()
@handle_errors
def transcribe(
    audio: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, ogg, mp3, ...) or folders (searched recursively).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one input) or folder. Default: beside each input.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="mid (default), csv or json. Taken from -o's extension when it has one.")] = None,
    model: ModelOpt = "synthetic",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    onset_threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Onset probability that starts a note. [default: the model's]")] = None,
    frame_threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Frame probability that keeps a note sounding. [default: the model's]")] = None,
    offset_threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Offset probability that ends a note. [default: the model's]")] = None,
    min_note_s: Annotated[Optional[float], typer.Option(min=0.0, help="Drop notes shorter than this (s). [default: the model's]")] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Also write a PNG piano roll over the CQT beside each output.")] = False,
    chunk_s: Annotated[float, typer.Option(min=1.0, help="Seconds of audio per network chunk (memory vs. speed).")] = 20.0,
    overwrite: OverwriteOpt = False,
):
    """Transcribe recordings into MIDI (or CSV / JSON notes).

    [bold]amt transcribe song.wav -o song.mid[/] — one file.
    [bold]amt transcribe recordings/ -o midi/[/] — a folder, keeping its sub-folders.
    """
    import time

    from ..config import override
    from ..errors import AmtError, BadInput
    from ..inference.transcribe import resolve_device, resolve_precision, transcribe_full
    from ..outputs import check_writable, format_for, plot_transcription, write_notes
    from ..zoo import load_model

    if fmt is not None and fmt not in ("mid", "csv", "json"):
        raise BadInput(f"--format must be mid, csv or json, not {fmt!r}")
    pairs = _plan_outputs(audio, output, fmt)
    # refuse up front what would overwrite, before any work is done
    blocked = [dst for _, dst in pairs if dst.exists() and not overwrite]
    if blocked and len(pairs) == 1:
        check_writable(blocked[0], overwrite=overwrite)
    dev = resolve_device(device)
    resolve_precision(precision, dev)  # a bad --precision fails before the model loads
    net, release = load_model(model, device=dev)
    decode = override(release.decode_config, onset_threshold=onset_threshold, frame_threshold=frame_threshold, offset_threshold=offset_threshold, min_note_s=min_note_s)
    fc = net.feature_config

    failures: list[str] = []
    total_audio = 0.0
    total_invalid = 0
    tokens_model = getattr(net, "output_kind", "frames") == "tokens"
    t0 = time.perf_counter()
    many = len(pairs) > 1
    with progress() as bar:
        task = bar.add_task("transcribing", total=len(pairs), info="")
        for src, dst in pairs:
            bar.update(task, info=src.name)
            try:
                if dst.exists() and not overwrite:
                    raise AmtError(f"{dst} already exists (use --overwrite to replace it)")
                result = transcribe_full(src, model=(net, release), device=dev, decode=decode, chunk_s=chunk_s, precision=precision, keep_features=plot)
                meta = {"source": str(src), "model": model}
                if tokens_model:
                    meta["invalid_tokens"] = result.invalid_tokens
                write_notes(result.notes, dst, fmt=format_for(dst), meta=meta)
                if plot:
                    plot_transcription(dst.with_suffix(".png"), features=result.features, notes=result.notes, frame_rate=fc.frame_rate, bins_per_semitone=fc.bins_per_semitone, fmin_midi=fc.fmin_midi)
                total_audio += result.duration_s
                total_invalid += result.invalid_tokens
                if not many:
                    console().print(f"{dst}: {len(result.notes)} notes from {result.duration_s:.1f} s of audio" + (f"; {invalid_tokens_text(result.invalid_tokens)}" if tokens_model else ""))
            except AmtError as exc:
                if not many:
                    raise
                failures.append(str(exc))
                err_console().print(f"[red]skipped:[/] {exc}", soft_wrap=True)
            bar.advance(task)
    wall = time.perf_counter() - t0
    if many:
        console().print(f"{len(pairs) - len(failures)} of {len(pairs)} files transcribed ({total_audio:.0f} s of audio in {wall:.1f} s)" + (f"; {invalid_tokens_text(total_invalid)}" if tokens_model else ""))
    if failures:
        raise fail(f"{len(failures)} file(s) failed (see above)", 1)
