"""``amt identify RECORDING --library MIDI_DIR``: which piece of a MIDI library is this recording, and where?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import console, err_console, handle_errors, progress


def _clock(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{int(seconds // 60)}:{seconds % 60:04.1f}"


@app.command()
@handle_errors
def identify(
    recording: Annotated[Path, typer.Argument(help="The recording to identify (wav, flac, ogg, mp3...).")],
    library: Annotated[Path, typer.Option("--library", "-l", help="Folder of MIDI files (searched recursively).")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Embedding model: zoo name or release folder.")
    ] = "embedding",
    top: Annotated[int, typer.Option("--top", "-n", help="How many pieces to list.")] = 5,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--cache-dir", help="Where the library index is cached (default: $AMT_CACHE_DIR or ~/.cache/amt)."
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Embed the library afresh and write no cache.")] = False,
):
    """Identify a recording in a MIDI library with the joint audio-score embedding.

    The library's MIDI files are embedded once (no rendering) into an index cached on disk; only new
    or changed files are embedded again. Each snippet of the recording votes for the piece of its
    nearest library snippet; the table lists pieces by votes with the piece time where the recording starts.
    """
    from ..errors import BadInput
    from ..inference.identify import find_midi_files, identify_recording, load_embedding_model

    if top < 1:
        raise BadInput(f"--top must be at least 1, got {top}")
    if not recording.exists():
        raise BadInput(f"{recording}: no such recording")
    n_files = len(find_midi_files(library))  # validates the library before the model is loaded
    net = load_embedding_model(model)

    with progress() as bar:
        task = bar.add_task("indexing library", total=n_files, info="")

        def report(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, info=name[-40:])

        result = identify_recording(
            recording, library, model=net, top=top, cache_dir=cache_dir, use_cache=not no_cache, progress=report
        )

    from rich.markup import escape
    from rich.table import Table

    index = result.index
    out = console()
    cached = len(index.files) + len(index.skipped) - index.n_embedded
    out.print(
        f"library: {len(index.files)} piece(s), {len(index.embeddings)} snippets "
        f"({index.n_embedded} file(s) embedded now, {cached} from the cache)"
    )
    if index.skipped:
        names = ", ".join(f"{escape(f)} ({escape(r)})" for f, r in index.skipped[:3])
        more = f" and {len(index.skipped) - 3} more" if len(index.skipped) > 3 else ""
        err_console().print(f"[yellow]skipped {len(index.skipped)} file(s):[/] {names}{more}")
    out.print(f"recording: {escape(str(recording))}, {_clock(result.duration_s)}, {result.n_queries} snippets")
    if not result.matches:
        raise BadInput(f"{recording}: no snippet of the recording could be matched")
    table = Table(title="best matches")
    table.add_column("#", justify="right")
    table.add_column("piece")
    table.add_column("votes", justify="right")
    table.add_column("in time", justify="right")
    table.add_column("starts at", justify="right")
    table.add_column("similarity", justify="right")
    for rank, m in enumerate(result.matches, 1):
        table.add_row(
            str(rank),
            escape(m.file),
            f"{m.votes}/{result.n_queries}",
            str(m.in_time),
            _clock(m.offset_s),
            f"{m.similarity:.3f}",
        )
    out.print(table)
    out.print(
        "[dim]votes: recording snippets whose nearest library snippet is in the piece; in time: votes that agree "
        "on the offset; starts at: the piece time at the recording's start (negative: the piece starts later).[/]"
    )
