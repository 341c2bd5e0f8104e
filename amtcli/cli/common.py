"""What every command shares: the error -> message/exit-code table, the console, option aliases.

Only ``amtcli.cli`` prints or imports rich; the library reports progress through callbacks.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..errors import AmtError, AmtWarning

_console = None
_err_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False)
    return _console


def err_console():
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False)
    return _err_console


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    from rich.markup import escape

    err_console().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    from rich.markup import escape

    err_console().print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    """Turn every error a user can cause into one line on stderr and a non-zero exit code, and
    every :class:`~amtcli.errors.AmtWarning` into one ``warning:`` line.

    ``AMT_DEBUG=1`` re-raises, for a traceback when debugging amt itself.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                show = warnings.showwarning

                def show_amt_warnings(message, category, *rest, **kw):
                    if issubclass(category, AmtWarning):
                        warn(str(message))
                    else:
                        show(message, category, *rest, **kw)

                warnings.showwarning = show_amt_warnings
                warnings.simplefilter("always", AmtWarning)
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except AmtError as exc:
            if os.environ.get("AMT_DEBUG"):
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            raise fail("out of memory (try a smaller --batch-size or --chunk-s)", 1) from None
        except OSError as exc:
            if os.environ.get("AMT_DEBUG"):
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise fail(f"{where}{exc.strerror or exc}", 1) from None
        except Exception as exc:  # a bug in amt: still one line, with a way to see more
            if os.environ.get("AMT_DEBUG"):
                raise
            raise fail(f"internal error: {type(exc).__name__}: {exc} (set AMT_DEBUG=1 for a traceback)", 70) from None

    return wrapper


def progress(**kwargs):
    """A rich progress bar with the columns every command uses (hidden when output is not a terminal)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console(),
        transient=False,
        disable=not sys.stderr.isatty() and not os.environ.get("AMT_PROGRESS"),
        **kwargs,
    )


# Option aliases shared by several commands.
ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="Zoo name (see `amt models list`), release folder, or hf://owner/repo[@rev]."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto (by the hardware: bf16 only on a CPU with native bf16 that measures faster, AMP on CUDA, "
        "else fp32; `amt info` shows the choice), fp32, bf16, fp16.",
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")]
OptionalPath = Optional[Path]
