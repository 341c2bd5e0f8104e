"""``amt models``: list, inspect, download and export released models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import OverwriteOpt, console, handle_errors, progress

models_app = typer.Typer(
    no_args_is_help=True,
    help="The model zoo: list, inspect and download released models; export a training run as a release (and its network as model.onnx).",
)
app.add_typer(models_app, name="models")


def human_size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "?"
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _headline(metrics: dict) -> str:
    if not metrics:
        return "—"
    key, value = next(iter(metrics.items()))
    return f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"


_WHERE_STYLE = {"bundled": "green", "cached": "cyan", "remote": "yellow", "missing": "red"}


@models_app.command("list")
@handle_errors
def list_models():
    """Table of the models amt knows: where each one is (bundled, cached, remote) and its headline metric."""
    from rich.table import Table

    from ..zoo import load_registry, locate

    registry = load_registry()
    table = Table(title="amt models", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("architecture")
    table.add_column("size", justify="right")
    table.add_column("where")
    table.add_column("headline metric")
    table.add_column("description", overflow="fold")
    for entry in registry.values():
        where = locate(entry)
        table.add_row(
            entry.name,
            entry.architecture,
            human_size(entry.size),
            f"[{_WHERE_STYLE[where]}]{where}[/]",
            _headline(entry.metrics),
            entry.description,
        )
    console().print(table)


def _show_folder(folder: Path, *, title: str) -> None:
    import json

    from rich.markdown import Markdown
    from rich.panel import Panel
    from rich.syntax import Syntax

    from ..zoo import read_release_config

    cfg = read_release_config(folder)
    console().print(
        Panel(Syntax(json.dumps(cfg.to_json(), indent=2), "json", word_wrap=True), title=f"{title}: config.json")
    )
    card = folder / "README.md"
    if card.is_file():
        console().print(Panel(Markdown(card.read_text()), title=f"{title}: model card (README.md)"))
    else:
        console().print(f"{title}: no model card (README.md)")


@models_app.command("info")
@handle_errors
def info(
    name: Annotated[
        str, typer.Argument(help="Model name (see `amt models list`), release folder, or hf://owner/repo[@rev].")
    ],
):
    """The registry entry, model card and config of a model (no download: remote models show the entry only)."""
    from rich.table import Table

    from ..errors import ModelNotFound
    from ..zoo import bundled_folder, hub, load_registry, locate, resolve_spec

    if name.startswith("hf://"):
        repo_id, revision = hub.parse_hf_ref(name)
        cfg_path = hub.cached_path(repo_id, "config.json", revision=revision)
        if cfg_path is None:
            console().print(f"{name}: not in the Hub cache; `amt models download {name}` fetches it")
            return
        _show_folder(cfg_path.parent, title=name)  # text files only, from the cache: no network
        return
    registry = load_registry()
    if name not in registry:
        folder = Path(name).expanduser()
        if folder.is_dir():
            _show_folder(resolve_spec(name).path, title=str(folder))
            return
        raise ModelNotFound(
            f"{name!r} is not a model name or a release folder (known names: {', '.join(registry) or 'none'})"
        )
    entry = registry[name]
    where = locate(entry)
    table = Table(show_header=False, title=f"{entry.name}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("description", entry.description)
    table.add_row("architecture", entry.architecture)
    table.add_row("where", where)
    if entry.bundled:
        table.add_row("bundled as", str(bundled_folder(entry) or f"models/{entry.bundled} (not in this install)"))
    if entry.repo_id:
        table.add_row("Hub", f"{entry.repo_id} @ {entry.revision}")
    table.add_row("size", human_size(entry.size))
    for fname, finfo in entry.files.items():
        table.add_row(fname, f"{human_size(finfo.size)}  sha256 {finfo.sha256}")
    for key, value in entry.metrics.items():
        table.add_row(key, str(value))
    console().print(table)
    if where in ("bundled", "cached"):
        _show_folder(resolve_spec(name).path, title=name)
    else:
        console().print(f"Not downloaded: `amt models download {name}` fetches it ({human_size(entry.size)}).")


@models_app.command("download")
@handle_errors
def download(
    names: Annotated[list[str], typer.Argument(help="Model names (see `amt models list`) or hf://owner/repo[@rev].")],
):
    """Fetch models into the Hugging Face cache, checking every file's sha256, for later offline use."""
    from rich.table import Table

    from ..zoo import download as zoo_download
    from ..zoo import get_entry, hub

    totals = {}
    for name in names:  # unknown names fail before anything is downloaded
        totals[name] = None if name.startswith("hf://") else get_entry(name).size
    results = []
    with progress() as bar:
        for name in names:
            task = bar.add_task(name, total=totals[name], info="")

            def on_bytes(filename: str, n: int, task=task) -> None:
                bar.update(task, advance=n, info=filename)

            results.append((name, zoo_download(name, on_bytes=on_bytes)))
            bar.update(task, completed=totals[name] or bar.tasks[task].completed, info="verified")
    notes = {"bundled": "bundled with amt; nothing to download", "cached": "already in the Hub cache"}
    table = Table(title=f"Hub cache: {hub.hub_cache_dir()}", title_justify="left")
    table.add_column("model", style="bold")
    table.add_column("result")
    table.add_column("size", justify="right")
    table.add_column("folder", overflow="fold")
    for name, result in results:
        table.add_row(
            name,
            notes.get(result.source, "downloaded") + ", sha256 verified",
            human_size(totals[name]) if totals[name] is not None else "",
            str(result.path),
        )
    console().print(table)


@models_app.command("export")
@handle_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Training run folder (runs/NAME) with config.json and checkpoints/.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Release folder to write (config.json, model.safetensors, README.md; model.onnx for U-Net models).",
        ),
    ],
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best, last, or a path to a .pt checkpoint.")
    ] = "best",
    name: Annotated[
        Optional[str], typer.Option("--name", help="Model name for the card (default: the output folder's name).")
    ] = None,
    overwrite: OverwriteOpt = False,
):
    """Turn a training run into a release folder with a filled-in model card and the sha256 of each file.

    U-Net models also get model.onnx (the network for onnxruntime, checked against torch), which
    `amt transcribe` runs on the CPU without torch.
    """
    from rich.table import Table

    from ..zoo.export import export_run

    result = export_run(run_dir, output, checkpoint=checkpoint, name=name, overwrite=overwrite)
    table = Table(title=f"{result.folder} (from {result.checkpoint}, step {result.step})", title_justify="left")
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    for fname, (digest, size) in result.files.items():
        table.add_row(fname, human_size(size), digest)
    console().print(table)
    if result.metrics:
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.metrics.items())
        console().print(f"validation: {shown}")
    console().print(
        "To add it to the zoo: .venv/bin/python scripts/register_model.py NAME --folder "
        f"{result.folder} --description '...' [--repo-id OWNER/REPO --revision SHA]"
    )


@models_app.command("onnx")
@handle_errors
def onnx(
    folder: Annotated[Path, typer.Argument(help="Release folder of a U-Net model (config.json, model.safetensors).")],
    overwrite: OverwriteOpt = False,
):
    """Write FOLDER/model.onnx from FOLDER's model.safetensors (after new weights were put there).

    The network (CQT features in, onset/frame/offset/velocity probabilities out; any batch and
    length) is checked against torch before it is written, and records the sha256 of the weights it
    came from: `amt transcribe` refuses a model.onnx left beside other weights. A registered model
    then needs its registry entry refreshed (scripts/register_model.py).
    """
    from ..zoo.export import ONNX_TOLERANCE, write_onnx

    if not folder.is_dir():
        from ..errors import ModelNotFound

        raise ModelNotFound(f"{folder}: no such release folder")
    result = write_onnx(folder, overwrite=overwrite)
    console().print(
        f"{result.path}: {human_size(result.size)}, sha256 {result.sha256}; onnxruntime vs torch: largest "
        f"probability difference {result.max_difference:.1e} (allowed {ONNX_TOLERANCE:.0e})"
    )
