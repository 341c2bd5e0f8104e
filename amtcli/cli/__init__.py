"""The ``amt`` command. One module per command; heavy imports live inside command bodies."""

from __future__ import annotations

import typer

from .. import __version__

app = typer.Typer(
    name="amt",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    help="Automatic music transcription: recordings in, MIDI out. Models trained on synthetic audio.",
)


def _version(value: bool):
    if value:
        typer.echo(f"amt {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """Automatic music transcription: recordings in, MIDI out."""


# Each command module registers itself on ``app`` when imported, in the order `amt --help` lists them.
# isort: off
from . import transcribe  # noqa: E402,F401
from . import train  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
from . import models  # noqa: E402,F401
from . import synth  # noqa: E402,F401
from . import identify  # noqa: E402,F401
from . import finetune  # noqa: E402,F401
from . import info  # noqa: E402,F401
from . import align  # noqa: E402,F401
# isort: on
