"""``amt identify RECORDING --library MIDI_DIR``: which piece of a MIDI library is this recording, and where?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, console, err_console, handle_errors, progress

METHODS = ("auto", "transcription", "embedding")


def _clock(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{int(seconds // 60)}:{seconds % 60:04.1f}"


def _method_for(method: str, model: Optional[str]) -> str:
    """``auto``: the embedding when ``--model`` names an embedding model, else the transcription."""
    from ..errors import BadInput

    if method not in METHODS:
        raise BadInput(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    if model is None:
        return "transcription"
    from ..zoo import read_release_config, resolve

    return "embedding" if read_release_config(resolve(model)).architecture == "embedding" else "transcription"


@app.command()
@handle_errors
def identify(
    recording: Annotated[Path, typer.Argument(help="The recording to identify (wav, flac, ogg, mp3...).")],
    library: Annotated[Path, typer.Option("--library", "-l", help="Folder of MIDI files (searched recursively).")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="transcription (transcribe, fingerprint pre-filter, DTW re-ranking), embedding (the joint "
            "audio-score embedding), or auto: embedding when --model is an embedding model, else transcription.",
        ),
    ] = "auto",
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            help="Zoo name or release folder: a frame model for --method transcription (default synthetic), "
            "an embedding model for --method embedding (default embedding).",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-n", help="How many pieces to list.")] = 5,
    shortlist: Annotated[
        int, typer.Option("--shortlist", help="transcription: how many of the best pieces DTW aligns for the offset.")
    ] = 3,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Processes that read new library files.")] = 1,
    device: DeviceOpt = "auto",
    cache_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--cache-dir", help="Where the library index is cached (default: $AMT_CACHE_DIR or ~/.cache/amt)."
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Index the library afresh and write no cache.")] = False,
):
    """Identify a recording in a MIDI library: which piece it plays, and from where.

    transcription (the default): the recording is transcribed once; fingerprints of its notes (pitch
    triples and their time-gap ratio, which a tempo change leaves alone) rank the library, and
    subsequence DTW of the transcription against the --shortlist best finds where the recording starts. embedding: snippets of the recording vote for their nearest library snippets in
    the joint audio-score embedding.

    The library's MIDI files are read once into an index cached on disk; only new or changed files
    are read again.
    """
    from ..errors import BadInput
    from ..inference.identify import find_midi_files

    if top < 1:
        raise BadInput(f"--top must be at least 1, got {top}")
    if shortlist < 1:
        raise BadInput(f"--shortlist must be at least 1, got {shortlist}")
    if not recording.exists():
        raise BadInput(f"{recording}: no such recording")
    n_files = len(find_midi_files(library))  # validates the library before any model is loaded
    chosen = _method_for(method, model)
    if chosen == "embedding":
        return _by_embedding(recording, library, model or "embedding", top, cache_dir, no_cache, n_files)
    return _by_transcription(
        recording, library, model or "synthetic", top, shortlist, jobs, device, cache_dir, no_cache, n_files
    )


def _by_transcription(recording, library, model, top, shortlist, jobs, device, cache_dir, no_cache, n_files):
    from rich.markup import escape

    from ..devices import resolve_device
    from ..inference.identify_notes import identify_by_transcription
    from ..zoo import read_release_config, resolve

    dev = resolve_device(device)
    folder = resolve(model)
    release = read_release_config(folder)
    if release.architecture == "embedding":
        from ..errors import BadInput

        raise BadInput(
            f"{model}: is an embedding model; --method transcription needs a frame model such as 'synthetic'"
        )
    with progress() as bar:
        task = t_task = None

        def report(done: int, total: int, name: str) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("indexing library", total=n_files, info="")
            bar.update(task, completed=done, total=total, info=name[-40:])

        def transcribing(done: int, total: int) -> None:
            nonlocal t_task
            if t_task is None:
                t_task = bar.add_task("transcribing", total=total, info=recording.name[-40:])
            bar.update(t_task, completed=done, total=total)

        result = identify_by_transcription(
            recording,
            library,
            model=str(folder),  # loaded on the backend amt transcribe picks (onnxruntime on a CPU)
            device=dev,
            top=top,
            shortlist=shortlist,
            jobs=jobs,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            progress=report,
            on_transcribe_progress=transcribing,
        )
    lib = result.library
    out = console()
    cached = len(lib.files) + len(lib.skipped) - lib.n_indexed
    out.print(
        f"library: {len(lib.files)} piece(s) ({lib.n_indexed} file(s) read now, {cached} from the cache, "
        f"{lib.seconds:.1f} s)"
    )
    _print_skipped(lib.skipped)
    s = result.seconds
    out.print(
        f"recording: {escape(str(recording))}, {_clock(result.duration_s)}, {result.n_notes} notes transcribed "
        f"({s['transcribe']:.1f} s; fingerprints {s['prefilter']:.2f} s; DTW of {min(shortlist, len(lib.files), top)} "
        f"pieces {s['rerank']:.1f} s)"
    )
    if not result.n_notes:
        raise BadInput(f"{recording}: the transcription holds no notes to match")
    _print_matches(
        ("score", "cost", "starts at", "ends at"),
        [
            (
                m.file,
                f"{m.prefilter:.2f}",
                "-" if m.cost != m.cost else f"{m.cost:.3f}",
                "-" if m.offset_s != m.offset_s else _clock(m.offset_s),
                "-" if m.end_s != m.end_s else _clock(m.end_s),
            )
            for m in result.matches
        ],
        "score: fingerprint score (the ranking); cost: mean DTW cost of the transcription against the piece "
        "(0 identical, 1 nothing in common); "
        "starts at / ends at: the piece times the recording's start and end align to.",
    )


def _print_matches(columns, rows, legend: str) -> None:
    """The ranked matches: a table of ``#``, piece and ``columns`` (``rows``: (file, *cells)), then ``legend``."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="best matches")
    table.add_column("#", justify="right")
    table.add_column("piece")
    for name in columns:
        table.add_column(name, justify="right")
    for rank, (file, *cells) in enumerate(rows, 1):
        table.add_row(str(rank), escape(file), *cells)
    console().print(table)
    console().print(f"[dim]{legend}[/]")


def _print_skipped(skipped) -> None:
    from rich.markup import escape

    if skipped:
        names = ", ".join(f"{escape(f)} ({escape(r)})" for f, r in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        err_console().print(f"[yellow]skipped {len(skipped)} file(s):[/] {names}{more}")


def _by_embedding(recording, library, model, top, cache_dir, no_cache, n_files):
    from rich.markup import escape

    from ..errors import BadInput
    from ..inference.identify import identify_recording, load_embedding_model

    net = load_embedding_model(model)
    with progress() as bar:
        task = bar.add_task("indexing library", total=n_files, info="")

        def report(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, info=name[-40:])

        result = identify_recording(
            recording, library, model=net, top=top, cache_dir=cache_dir, use_cache=not no_cache, progress=report
        )

    index = result.index
    out = console()
    cached = len(index.files) + len(index.skipped) - index.n_embedded
    out.print(
        f"library: {len(index.files)} piece(s), {len(index.embeddings)} snippets "
        f"({index.n_embedded} file(s) embedded now, {cached} from the cache)"
    )
    _print_skipped(index.skipped)
    out.print(f"recording: {escape(str(recording))}, {_clock(result.duration_s)}, {result.n_queries} snippets")
    if not result.matches:
        raise BadInput(f"{recording}: no snippet of the recording could be matched")
    _print_matches(
        ("votes", "in time", "starts at", "similarity"),
        [
            (m.file, f"{m.votes}/{result.n_queries}", str(m.in_time), _clock(m.offset_s), f"{m.similarity:.3f}")
            for m in result.matches
        ],
        "votes: recording snippets whose nearest library snippet is in the piece; in time: votes that agree "
        "on the offset; starts at: the piece time at the recording's start (negative: the piece starts later).",
    )
