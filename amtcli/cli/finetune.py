"""`amt finetune`: carry a model to another dataset; zero-shot versus fine-tuned on its test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, OverwriteOpt, PrecisionOpt, console, err_console, handle_errors, progress, warn
from .evaluate import FoldOpt, FoldsOpt, SplitByOpt, split_plan
from .train import (
    NoiseDomainOpt,
    NoiseKindOpt,
    NoiseRoundsOpt,
    NoiseStepsOpt,
    NoiseTargetOpt,
    NprocOpt,
    noise_config,
    render_training,
)

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _fmt(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.3f}"


def _render_comparison(results: dict, *, title: str) -> None:
    from rich.table import Table

    from ..training.finetune import SUMMARY_KEYS

    labels = {
        "frame_f1": "Frame F1",
        "note_precision": "Note P",
        "note_recall": "Note R",
        "note_f1": "Note F1",
        "note_offset_f1": "Note+Off F1",
    }
    table = Table(title=title, title_justify="left")
    table.add_column("System")
    for key in SUMMARY_KEYS:
        table.add_column(labels[key], justify="right")
    rows = list(results.items())
    for i, (name, summary) in enumerate(rows):
        table.add_row(name, *(_fmt(summary[k]) for k in SUMMARY_KEYS), end_section=i == len(rows) - 1)
    if len(rows) == 2:
        (_, a), (_, b) = rows
        cells = []
        for k in SUMMARY_KEYS:
            cells.append("—" if a[k] is None or b[k] is None else f"{b[k] - a[k]:+.3f}")
        table.add_row("change", *cells)
    console().print(table)


def default_run_folder(
    source: str, target: str, *, resume: bool = False, base: Path = Path("runs")
) -> tuple[Path, Path | None]:
    """``runs/<from>-to-<to>`` for a fine-tuning run without ``--out``, never an existing folder:
    if it is taken, the first free ``-2``, ``-3``...; with ``resume``, the latest existing one.
    Returns ``(folder, the taken folder it steps past or None)``."""
    import re

    def plain(text: str) -> str:
        name = text.split("://", 1)[-1].split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.") or "model"

    first = base / f"{plain(source)}-to-{plain(target)}"
    candidates = [first, *(first.with_name(f"{first.name}-{n}") for n in range(2, 10_000))]
    if resume:
        existing = [c for c in candidates[:1] if c.exists()]
        n = 2
        while candidates[n - 1].exists():
            existing.append(candidates[n - 1])
            n += 1
        return (existing[-1] if existing else first), None
    free = next(c for c in candidates if not c.exists())
    return free, (first if free != first else None)


@app.command()
@handle_errors
def finetune(
    source: Annotated[
        Optional[str],
        typer.Option(
            "--from",
            help="Model to start from: zoo name, release folder or hf://owner/repo@rev; `scratch` for a random init of the same architecture (the baseline, see --like).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        Optional[str],
        typer.Option(
            "--to",
            help="Dataset to fine-tune on: maps, guitarset, maestro, synthetic (an `amt synth` folder) or pairs (audio + same-stem MIDI).",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        Optional[Path], typer.Option("--root", help="The dataset folder (default: $AMT_DATA/<dataset>).")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help="Run folder (checkpoints, metrics.jsonl, finetune.json). Default: runs/<from>-to-<to>, or -2, -3... if that is taken.",
            show_default=False,
        ),
    ] = None,
    release: Annotated[
        Optional[Path],
        typer.Option(
            "--release",
            help="Release folder to export the fine-tuned model to. [default: RUN/release]",
            show_default=False,
        ),
    ] = None,
    like: Annotated[
        str, typer.Option("--like", help="With --from scratch: the model whose architecture and configs to copy.")
    ] = "synthetic",
    steps: Annotated[
        int, typer.Option(min=1, help="Optimizer steps of the clean phase (early stopping may end it sooner).")
    ] = 2000,
    lr: Annotated[
        float, typer.Option(min=0.0, help="Peak learning rate (short warm-up, cosine decay to a tenth).")
    ] = 1e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="Excerpts per step (per process).")] = 8,
    crop_s: Annotated[float, typer.Option(min=0.5, help="Seconds per training excerpt.")] = 10.0,
    val_every: Annotated[
        int, typer.Option(min=1, help="Validate (note F1 on the validation split) every N steps.")
    ] = 100,
    patience: Annotated[
        int, typer.Option(min=0, help="Stop after this many validations without a better F1 (0: never).")
    ] = 5,
    freeze: Annotated[
        Optional[list[str]],
        typer.Option(
            "--freeze", help="Keep a part fixed: encoder (the U-Net before the BiLSTM). Repeatable.", show_default=False
        ),
    ] = None,
    pitch_balanced: Annotated[
        bool,
        typer.Option(
            "--pitch-balanced/--no-pitch-balanced",
            help="Weight each key's positive and negative frames equally (AT4rAMT).",
        ),
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate/--keep-thresholds",
            help="Choose the decoding thresholds on the validation split at the end, or keep the starting model's "
            "(better when the validation split is one or two recordings).",
        ),
    ] = True,
    precision: PrecisionOpt = "auto",
    seed: Annotated[int, typer.Option(help="Random seed (batches; the random init with --from scratch).")] = 0,
    split_by: SplitByOpt = "dataset",
    folds: FoldsOpt = None,
    fold: FoldOpt = None,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the split by piece and of the folds.")] = 0,
    test_limit: Annotated[
        Optional[int], typer.Option("--test-limit", min=1, help="Score only the first N test recordings (by id).")
    ] = None,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache", help="Keep the features computed from the audio in RUN/features (reused on --resume)."
        ),
    ] = True,
    noise_rounds: NoiseRoundsOpt = None,
    noise_steps: NoiseStepsOpt = None,
    noise_target: NoiseTargetOpt = None,
    noise_kind: NoiseKindOpt = None,
    noise_domain: NoiseDomainOpt = None,
    nproc: NprocOpt = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out where it stopped, then export and score.")
    ] = False,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot", help="Draw validation F1 against step (this run and every --compare run) as .png/.pdf/.svg."
        ),
    ] = None,
    compare: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--compare",
            help="Another run folder to draw in --plot (repeatable). With only --plot and --compare, just draw.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
):
    """Fine-tune a model on a dataset and compare it with the starting model on the test split.

    Trains on the train split with early stopping on the validation split, exports a release
    folder, and prints zero-shot versus fine-tuned F1 on the test split. A small set (MAPS's
    Disklavier takes, a few recordings of one's own) is re-split by piece: --split-by piece, or
    --folds K to run every fold (RUN/fold-<i>) and pool their held-out scores.

    [bold]amt finetune --from synthetic --to guitarset --root data/GuitarSet --steps 2000 --out runs/gs --plot gs.png[/]
    [bold]amt finetune --from scratch --to guitarset --root data/GuitarSet --steps 2000 --out runs/gs-scratch[/]
    [bold]amt finetune --from synthetic --to maps --root data/maps --folds 3 --steps 400 --out runs/maps[/]
    [bold]amt finetune --compare runs/gs --compare runs/gs-scratch --plot curves.png[/]
    """
    from ..errors import BadInput, OutputExists

    compare = list(compare or [])
    if plot is not None:
        if plot.suffix.lower() not in PLOT_SUFFIXES:
            raise BadInput(f"--plot {plot}: give a .png, .pdf or .svg file name")
        if plot.exists() and not overwrite:
            raise OutputExists(f"{plot} already exists (use --overwrite to replace it)")
    compare = [r for run in compare for r in _run_folders(run)]

    if source is None and target is None and out is None:  # only draw
        if plot is None or not compare:
            raise BadInput(
                "give --from and --to to fine-tune (and --out, default runs/<from>-to-<to>), or --plot FILE with --compare RUN... to draw runs"
            )
        from ..training.finetune import plot_curves

        plot_curves(plot, compare)
        console().print(f"wrote {plot}")
        return
    missing = [flag for flag, value in (("--from", source), ("--to", target)) if value is None]
    if missing:
        raise BadInput(f"fine-tuning needs {', '.join(missing)}")
    plan = split_plan(split_by, folds, fold, seed=split_seed)
    if out is None:
        out, taken = default_run_folder(source, target, resume=resume)
        note = f" ({taken} already holds a run; --resume continues the latest)" if taken else ""
        err_console().print(f"run folder: {out}{note}", soft_wrap=True)
    from ..devices import resolve_device
    from ..training.finetune import plot_curves, run_finetune

    nc = noise_config(
        None, rounds=noise_rounds, steps=noise_steps, target=noise_target, kind=noise_kind, domain=noise_domain
    )
    dev = resolve_device(device)
    scoring = {}

    def on_event(kind: str, data: dict) -> None:
        if kind == "warning":
            warn(data["message"])
        elif kind == "info":
            err_console().print(data["message"], soft_wrap=True)
        elif kind == "fold":
            console().print(
                f"[bold]fold {data['fold']} (of 0..{data['folds'] - 1})[/]: {data['folder']}", soft_wrap=True
            )
        elif kind == "exported":
            console().print(f"release: {data['folder']} (step {data['step']})")
        elif kind == "scoring":
            scoring["bar"] = bar = progress()
            bar.start()
            scoring["task"] = bar.add_task("scoring the test split", total=data["total"], info="")
        elif kind == "scored":
            scoring["bar"].update(scoring["task"], advance=1, info=data["message"])

    if nproc > 1:
        console().print(f"training on {nproc} processes ({'NCCL' if dev.startswith('cuda') else 'gloo'})")
    try:
        result = run_finetune(
            source=source,
            target=target,
            root=root,
            out=out,
            release=release,
            like=like,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            crop_s=crop_s,
            val_every=val_every,
            patience=patience,
            freeze=list(freeze or []),
            pitch_balanced=pitch_balanced,
            calibrate=calibrate,
            precision=precision,
            seed=seed,
            test_limit=test_limit,
            cache=cache,
            noise=nc,
            nproc=nproc,
            resume=resume,
            device=dev,
            overwrite=overwrite,
            split_plan=plan,
            on_event=on_event,
            progress=render_training,
        )
    finally:
        if "bar" in scoring:
            scoring["bar"].stop()
    if result is None:  # another rank under torchrun
        return
    for part in result.folds:
        _render_comparison(part.results, title=part.title)
    _render_comparison(result.results, title=result.title)
    if plot is not None:
        plot_curves(plot, [*_run_folders(out), *compare], title=f"{target}: validation F1 while fine-tuning")
        console().print(f"wrote {plot}")


def _run_folders(run: Path) -> list[Path]:
    """A training run folder, or the ``fold-<i>`` run folders of a k-fold fine-tune."""
    from ..errors import BadInput

    if (run / "metrics.jsonl").is_file():
        return [run]
    found = [p.parent for p in run.glob("fold-*/metrics.jsonl") if p.parent.name[5:].isdigit()]
    folds = sorted(found, key=lambda p: int(p.name[5:]))
    if not folds:
        raise BadInput(f"--compare {run}: not a training run folder (no metrics.jsonl, no fold-<i>/metrics.jsonl)")
    return folds
