"""`amt evaluate`: standard transcription metrics on a dataset, for our models or any tool's MIDI
files, optionally under noise at several SNRs.

The command is a dispatcher over tasks (``--task``); each task is one function taking the parsed
options: ``transcription``, and ``retrieval`` (embedding models, in :mod:`amtcli.cli.retrieval`);
another task is one more entry in ``_TASKS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, OverwriteOpt, PrecisionOpt, console, err_console, handle_errors, progress

DEFAULT_MODEL = "synthetic"  # scored when neither --model nor --predictions is given

# the dataset split options that amt evaluate and amt finetune share
SplitByOpt = Annotated[
    str,
    typer.Option(
        "--split-by",
        help="dataset: the dataset's own split (official, or 80/10/10 by piece); piece: re-split every recording by "
        "piece (80/10/10, at least one piece each for validation and test; all takes of a piece stay together).",
    ),
]
FoldsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--folds",
        min=2,
        help="K-fold cross-validation by piece (implies --split-by piece): fold i is the test split, validation "
        "comes from the other folds, every recording is tested once.",
        show_default=False,
    ),
]
FoldOpt = Annotated[
    Optional[int],
    typer.Option("--fold", min=0, help="With --folds K: the fold to hold out (0..K-1).", show_default=False),
]


def split_plan(split_by: str, folds: Optional[int], fold: Optional[int], *, seed: int):
    """The :class:`~amtcli.datasets.SplitPlan` of the split options (bad combinations: BadInput)."""
    from ..datasets import SplitPlan

    return SplitPlan(by=split_by, folds=folds, fold=fold, seed=seed)


def _fmt(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.3f}"


def _check_outputs(paths: list[Optional[Path]], *, overwrite: bool) -> None:
    from ..errors import BadInput, OutputExists

    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise BadInput(f"{path} is a folder; give a file name")
        if path.exists() and not overwrite:
            raise OutputExists(f"{path} already exists (use --overwrite to replace it)")


def _unique_names(systems) -> None:
    seen: dict[str, int] = {}
    for s in systems:
        n = seen.get(s.name, 0)
        seen[s.name] = n + 1
        if n:
            s.name = f"{s.name} ({n + 1})"


def _render_aggregates(runs, *, title: str) -> None:
    from rich.table import Table

    from ..evaluation.metrics import METRIC_LABELS, METRICS

    table = Table(title=title, title_justify="left")
    table.add_column("System")
    if any(r.condition.snr_db is not None for r in runs):
        table.add_column("Condition")
    table.add_column("Metric")
    for scope in ("micro", "macro"):
        for k in ("P", "R", "F1"):
            table.add_column(f"{scope}\n{k}", justify="right")
    with_condition = any(r.condition.snr_db is not None for r in runs)
    for ri, run in enumerate(runs):
        agg = run.aggregate()
        for mi, metric in enumerate(METRICS):
            cells = []
            for scope in ("micro", "macro"):
                s = agg[scope][metric]
                cells += [_fmt(None if s is None else s[k]) for k in ("precision", "recall", "f1")]
            head = [run.system if mi == 0 else ""]
            if with_condition:
                head.append(run.condition.name if mi == 0 else "")
            table.add_row(
                *head, METRIC_LABELS[metric], *cells, end_section=mi == len(METRICS) - 1 and ri < len(runs) - 1
            )
    console().print(table)


def _render_per_file(run) -> None:
    from rich.table import Table

    from ..evaluation.metrics import METRIC_LABELS, METRICS

    table = Table(title=f"{run.system} · {run.condition.name} · per file (F1)", title_justify="left")
    table.add_column("File", overflow="fold")
    table.add_column("ref", justify="right")
    table.add_column("est", justify="right")
    for metric in METRICS:
        table.add_column(METRIC_LABELS[metric], justify="right")
    for f in run.files:
        note = f.counts["note"]
        table.add_row(
            f.item_id,
            str(note.n_ref),
            str(note.n_est),
            *(_fmt(None if f.counts[m] is None else f.counts[m].f1) for m in METRICS),
        )
    console().print(table)


def _render_robustness(runs, *, noise: str) -> None:
    from rich.table import Table

    from ..evaluation.robustness import f1_by_condition

    systems, conditions, note = f1_by_condition(runs, metric="note")
    _, _, frame = f1_by_condition(runs, metric="frame")
    table = Table(title=f"F1 against SNR ({noise} noise, micro)", title_justify="left")
    table.add_column("SNR")
    for s in systems:
        table.add_column(f"{s} note F1", justify="right")
        table.add_column(f"{s} frame F1", justify="right")
    for c in conditions:
        label = "clean" if c.snr_db is None else f"{c.snr_db:g} dB"
        row = [label]
        for s in systems:
            row += [_fmt(note.get((s, c))), _fmt(frame.get((s, c)))]
        table.add_row(*row)
    console().print(table)


def _name_skipped(skipped, *, title: str, show: int = 20) -> None:
    """Name each skipped file with its reason (the first ``show`` of them), on stderr."""
    from rich.markup import escape

    if not skipped:
        return
    ec = err_console()
    ec.print(f"[yellow]{len(skipped)} {title}:[/]")
    for path, reason in skipped[:show]:
        ec.print(f"  {escape(str(path))}: {escape(str(reason))}", soft_wrap=True)
    if len(skipped) > show:
        ec.print(f"  ... and {len(skipped) - show} more (all of them are in --json)")


def _run_transcription(opts: dict) -> None:
    from ..datasets import dataset_info, load_dataset, select_split
    from ..errors import BadInput
    from ..evaluation.reports import plot_robustness, write_csv, write_json
    from ..evaluation.robustness import snr_conditions
    from ..evaluation.suites import CLEAN, ModelSystem, PredictionFolder, parse_snrs, run_evaluation

    models, predictions = opts["model"] or [], opts["predictions"] or []
    if not models and not predictions:
        models = [DEFAULT_MODEL]  # what `amt transcribe` would use
    from ..audio.noise import NOISE_KINDS, check_noise, noise_label

    if opts["noise"] not in NOISE_KINDS:
        if not Path(opts["noise"]).expanduser().is_file():
            raise BadInput(f"unknown --noise {opts['noise']!r}: give white, pink, brown, or an audio file of noise")
        if not opts["snr"]:
            raise BadInput(f"--noise {opts['noise']} is mixed in at the SNRs of --snr; give --snr too")
        opts["noise"] = check_noise(opts["noise"])  # a noise recording, read once here: a bad file fails now
    snrs = parse_snrs(opts["snr"]) if opts["snr"] else None
    if snrs and predictions:
        raise BadInput(
            "--snr needs --model only: prediction files were made from clean audio and amt cannot re-run the "
            "tool that wrote them"
        )
    if opts["plot"] is not None and not snrs:
        raise BadInput("--plot draws F1 against SNR; give --snr too (e.g. --snr 30,20,10,0,-5)")
    if opts["plot"] is not None and opts["plot"].suffix.lower() not in (".png", ".pdf", ".svg"):
        raise BadInput(f"--plot {opts['plot']}: give a .png, .pdf or .svg file name")
    _check_outputs([opts["json"], opts["csv"], opts["plot"]], overwrite=opts["overwrite"])

    name = opts["dataset"]
    dataset_info(name)  # unknown names fail here, before anything is read
    plan = split_plan(opts["split_by"], opts["folds"], opts["fold"], seed=opts["split_seed"])
    if plan.folds is not None and plan.fold is None:
        raise BadInput(f"--folds {plan.folds}: say which fold's split to score (--fold 0..{plan.folds - 1})")
    split = opts["split"] or ("all" if name == "pairs" and plan.default else "test")
    everything = load_dataset(
        name,
        root=opts["root"],
        split="all",
        split_seed=opts["split_seed"],
        audio_variant=opts["audio_variant"],
        annotation=opts["annotation"],
        plan=plan,
    )
    items = select_split(everything, split)
    if not items:
        counts: dict[str, int] = {}
        for it in everything:
            counts[it.split] = counts.get(it.split, 0) + 1
        have = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        raise BadInput(
            f"{name}: no recordings in split {split!r} (found: {have}); choose another --split, or --split all"
        )
    if opts["limit"]:
        items = items[: opts["limit"]]

    systems = []
    for d in predictions:
        systems.append(PredictionFolder(d))
    for m in models:
        systems.append(ModelSystem(m, device=opts["device"], precision=opts["precision"]))
    _unique_names(systems)
    for s in systems:  # fail early: bad model specs, unmatched prediction files
        if isinstance(s, ModelSystem):
            s.load()
        else:
            s.match(items, root=everything.root)
    conditions = snr_conditions(snrs, noise=opts["noise"]) if snrs else [CLEAN]

    skipped = f"; {len(everything.skipped)} skipped (no audio or annotation)" if everything.skipped else ""
    err_console().print(
        f"{name} ({everything.root}), split {split}: {len(items)} recording(s){skipped}; "
        f"{len(systems)} system(s) ({', '.join(s.name for s in systems)}) x {len(conditions)} condition(s)",
        soft_wrap=True,
    )
    with progress() as bar:
        task = bar.add_task("evaluating", total=len(items) * len(systems), info="")

        def step(message: str) -> None:
            bar.update(task, advance=1, info=message)

        unreadable: list[tuple[str, str]] = []

        def skip(item, reason: str) -> None:
            unreadable.append((str(item.label), reason))

        runs = run_evaluation(
            items, systems, conditions=conditions, seed=opts["seed"], root=everything.root, on_step=step, on_skip=skip
        )
    _name_skipped(everything.skipped, title="not evaluated (no audio or annotation)")
    _name_skipped(unreadable, title="skipped (could not be read)")

    if opts["per_file"]:
        for run in runs:
            _render_per_file(run)
    clean = [r for r in runs if r.condition.snr_db is None]
    _render_aggregates(clean, title=f"{name} · {split} · {len(items)} recording(s) · clean audio")
    if snrs:
        _render_robustness(runs, noise=noise_label(opts["noise"]))

    meta = {
        "dataset": {
            "name": name,
            "root": str(everything.root),
            "split": split,
            "split_seed": opts["split_seed"],
            "split_plan": plan.to_dict(),
            "audio_variant": opts["audio_variant"],
            "annotation": opts["annotation"],
            "n_items": len(items),
            "skipped": [{"path": path, "reason": reason} for path, reason in [*everything.skipped, *unreadable]],
        },
        "systems": [
            {"name": s.name, "kind": s.kind, "source": str(getattr(s, "folder", getattr(s, "spec", "")))}
            for s in systems
        ],
        "noise": {"snr_db": snrs, "kind": opts["noise"], "seed": opts["seed"]} if snrs else None,
        "clip_to_audio": True,
    }
    if opts["json"] is not None:
        write_json(opts["json"], runs, meta=meta)
        console().print(f"wrote {opts['json']}")
    if opts["csv"] is not None:
        write_csv(opts["csv"], runs)
        console().print(f"wrote {opts['csv']}")
    if opts["plot"] is not None:
        plot_robustness(opts["plot"], runs, title=f"{name} · {split}: F1 under {noise_label(opts['noise'])} noise")
        console().print(f"wrote {opts['plot']}")


def _run_retrieval(opts: dict) -> None:
    from .retrieval import run_retrieval_task

    run_retrieval_task(opts)


_TASKS = {"transcription": _run_transcription, "retrieval": _run_retrieval}


@app.command()
@handle_errors
def evaluate(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="maps, guitarset, maestro, synthetic (an `amt synth` folder) or pairs (audio + same-stem MIDI).",
        ),
    ] = "pairs",
    root: Annotated[
        Optional[Path], typer.Option("--root", help="The dataset folder (default: $AMT_DATA/<dataset>).")
    ] = None,
    split: Annotated[
        Optional[str], typer.Option("--split", help="train, validation, test or all (default: test; all for pairs).")
    ] = None,
    split_seed: Annotated[
        int,
        typer.Option(
            "--split-seed",
            help="Seed of the 80/10/10 split by piece (datasets without an official split; --split-by piece; --folds).",
        ),
    ] = 0,
    split_by: SplitByOpt = "dataset",
    folds: FoldsOpt = None,
    fold: FoldOpt = None,
    audio_variant: Annotated[
        Optional[str],
        typer.Option(
            "--audio-variant",
            help="GuitarSet audio: mono-mic (default), mono-pickup_mix, hex-pickup_original, hex-pickup_debleeded.",
        ),
    ] = None,
    annotation: Annotated[
        Optional[str],
        typer.Option("--annotation", help="MAPS labels: mid (default when present; velocities, pedal) or txt."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N recordings (by id).")] = None,
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model",
            "-m",
            help="Our model to run: zoo name, release folder or hf://owner/repo@rev. Repeat to compare. Default (without --predictions): synthetic.",
        ),
    ] = None,
    predictions: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--predictions",
            "-p",
            help="Folder of MIDI files from any tool, named like the audio (<stem>.mid). Repeat to compare.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    snr: Annotated[
        Optional[str],
        typer.Option("--snr", help="Also evaluate with noise at these SNRs in dB, e.g. 30,20,10,0,-5 (models only)."),
    ] = None,
    noise: Annotated[
        str,
        typer.Option(
            "--noise",
            help="Noise for --snr: white, pink, brown, or an audio file of noise (an excerpt of it per recording).",
        ),
    ] = "white",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the noise (each file's noise is fixed by seed and file id).")
    ] = 0,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="With --snr: write F1 against SNR as a .png (or .pdf, .svg).")
    ] = None,
    per_file: Annotated[bool, typer.Option("--per-file", help="Also show a row per recording.")] = False,
    json_path: Annotated[
        Optional[Path], typer.Option("--json", help="Write every score (per file and aggregate) as JSON.")
    ] = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write per-file and aggregate rows as CSV.")] = None,
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="What to evaluate: transcription, or retrieval (an embedding model, audio-to-score, on an `amt synth` folder: -d synthetic --root DIR).",
        ),
    ] = "transcription",
    overwrite: OverwriteOpt = False,
):
    """Score transcriptions with the standard metrics (mir_eval): frame, note, note with offset,
    note with offset and velocity; micro (pooled) and macro (mean per file) averages.

    [bold]amt evaluate -d maestro --split test -m synthetic[/] — our model on MAESTRO's test split.
    [bold]amt evaluate -d pairs --root takes/ -p other_tool_midi/ -m synthetic[/] — two tools side by side.
    [bold]amt evaluate -d maps -m synthetic --snr 30,20,10,0,-5 --noise pink --plot snr.png[/] — robustness to noise.
    [bold]amt evaluate -d maps -m runs/maps/fold-0/release --folds 3 --fold 0[/] — a fine-tune on the fold it never saw.
    """
    from ..errors import BadInput

    if task not in _TASKS:
        raise BadInput(f"unknown --task {task!r} (available: {', '.join(_TASKS)})")
    _TASKS[task](
        {
            "dataset": dataset,
            "root": root,
            "split": split,
            "split_seed": split_seed,
            "split_by": split_by,
            "folds": folds,
            "fold": fold,
            "audio_variant": audio_variant,
            "annotation": annotation,
            "limit": limit,
            "model": model,
            "predictions": predictions,
            "device": device,
            "precision": precision,
            "snr": snr,
            "noise": noise,
            "seed": seed,
            "plot": plot,
            "per_file": per_file,
            "json": json_path,
            "csv": csv_path,
            "overwrite": overwrite,
        }
    )
