"""Fine-tuning a released model on another dataset, and the measurements around it.

The experiment of the synthetic-instruments paper in one call, :func:`run_finetune`: start from a
release (or from a random init of the same architecture, the baseline), train on the target's train
split with early stopping on its validation split (:func:`amtcli.training.loop.train_transcriber`),
export the best checkpoint as a release, then score the starting point (zero-shot) and the result
on the target's test split. Validation F1 over steps comes from the runs' ``metrics.jsonl``
(:func:`read_curve`, :func:`plot_curves`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import DecodeConfig, FeatureConfig
from ..errors import BadInput

SCRATCH = "scratch"

FINETUNABLE = ("unet-bilstm",)  # architectures train_transcriber trains (frame-level heads)

SUMMARY_KEYS = ("frame_f1", "note_precision", "note_recall", "note_f1", "note_offset_f1")


@dataclass
class StartPoint:
    """Where a fine-tune starts: a release's weights, or a random init (``state`` None) of its architecture."""

    source: str
    architecture: str
    model_config: dict[str, Any]
    feature_config: FeatureConfig
    decode_config: DecodeConfig
    state: dict[str, torch.Tensor] | None = None

    @property
    def scratch(self) -> bool:
        return self.state is None


def load_start(source: str, *, like: str = "synthetic") -> StartPoint:
    """``source``: zoo name, release folder or ``hf://`` reference; ``scratch``: the architecture and
    configs of ``like`` with no weights."""
    from ..zoo import load_release, read_release_config, resolve

    if source == SCRATCH:
        cfg = read_release_config(resolve(like))
        _check_finetunable(cfg.architecture, like)
        return StartPoint(
            f"{SCRATCH} ({like})", cfg.architecture, cfg.model_config, cfg.feature_config, cfg.decode_config, None
        )
    folder = resolve(source)  # verified once (sha256), then loaded
    _check_finetunable(read_release_config(folder).architecture, source)
    model, cfg = load_release(folder, device="cpu")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return StartPoint(source, cfg.architecture, cfg.model_config, cfg.feature_config, cfg.decode_config, state)


def _check_finetunable(architecture: str, name: str) -> None:
    if architecture not in FINETUNABLE:
        raise BadInput(
            f"{name}: amt finetune trains frame-level transcribers ({', '.join(FINETUNABLE)}), not {architecture}"
        )


def start_model(start: StartPoint, *, seed: int):
    """The starting point as a loaded model ``(model, ReleaseConfig)``: the release's weights, or the
    random init the training loop begins from with this ``seed``."""
    from ..nets import build_model
    from ..zoo.release import ReleaseConfig

    torch.manual_seed(seed)  # as train_transcriber does before building the model
    model = build_model(start.architecture, start.model_config, start.feature_config)
    if start.state is not None:
        model.load_state_dict(start.state, strict=True)
    cfg = ReleaseConfig(start.architecture, dict(start.model_config), start.feature_config, start.decode_config)
    return model.eval(), cfg


# ----------------------------------------------------------------------------------- scoring


def summarize(run) -> dict[str, float | None]:
    """Frame F1, note P/R/F1 and note-with-offset F1 (micro) of an evaluation run."""
    micro = run.aggregate()["micro"]

    def get(metric: str, key: str = "f1"):
        s = micro.get(metric)
        return None if s is None else s[key]

    return {
        "frame_f1": get("frame"),
        "note_precision": get("note", "precision"),
        "note_recall": get("note", "recall"),
        "note_f1": get("note"),
        "note_offset_f1": get("note_offset"),
    }


def _score(items, systems, *, device: str, root: Path | None, on_step) -> tuple[dict, dict]:
    """``({name: summary}, {name: {metric: [tp, n_ref, n_est]}})`` of each system on ``items``."""
    from ..evaluation.suites import ModelSystem, run_evaluation

    runs = run_evaluation(
        items, [ModelSystem(m, name=n, device=device) for n, m in systems], root=root, on_step=on_step
    )
    counts = {}
    for r in runs:
        micro = r.aggregate()["micro"]
        counts[r.system] = {m: [v["tp"], v["n_ref"], v["n_est"]] for m, v in micro.items() if v is not None}
    return {r.system: summarize(r) for r in runs}, counts


def compare_on(
    items,
    systems: Sequence[tuple[str, Any]],
    *,
    device: str = "cpu",
    root: Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Score each ``(name, model)`` (a loaded ``(model, ReleaseConfig)`` or a model spec) on ``items``
    with :func:`amtcli.evaluation.suites.run_evaluation`; ``{name: summary}`` in order."""
    return _score(items, systems, device=device, root=root, on_step=on_step)[0]


def pool_counts(counts: Sequence[dict[str, list[int]]]) -> dict[str, float | None]:
    """The summary (:data:`SUMMARY_KEYS`) of pooled ``{metric: [tp, n_ref, n_est]}`` counts: micro
    scores over every file of every fold, as if scored in one run."""
    from ..evaluation.metrics import Counts

    total: dict[str, Counts] = {}
    for c in counts:
        for metric, (tp, n_ref, n_est) in c.items():
            total[metric] = total.get(metric, Counts(0, 0, 0)) + Counts(tp, n_ref, n_est)

    def get(metric: str, key: str = "f1"):
        return getattr(total[metric], key) if metric in total else None

    return {
        "frame_f1": get("frame"),
        "note_precision": get("note", "precision"),
        "note_recall": get("note", "recall"),
        "note_f1": get("note"),
        "note_offset_f1": get("note_offset"),
    }


# ------------------------------------------------------------------------------------ the recipe


@dataclass
class FinetuneResult:
    """What :func:`run_finetune` did: the report written to ``RUN/finetune.json`` (``OUT/folds.json``
    for k-fold runs) and the scores by system name; ``folds``: each fold's own result."""

    report: dict[str, Any]
    results: dict[str, dict[str, float | None]]
    title: str
    folds: list["FinetuneResult"] = field(default_factory=list)


def fold_folder(out: str | os.PathLike, fold: int) -> Path:
    """The run folder of fold ``fold`` of a k-fold fine-tune in ``out``: ``out/fold-<fold>``."""
    return Path(out) / f"fold-{fold}"


def run_finetune(
    *,
    source: str,
    target: str,
    out: str | os.PathLike,
    root: str | os.PathLike | None = None,
    release: str | os.PathLike | None = None,
    like: str = "synthetic",
    steps: int = 2000,
    lr: float = 1e-4,
    batch_size: int = 8,
    crop_s: float = 10.0,
    val_every: int = 100,
    patience: int = 5,
    freeze: Sequence[str] = (),
    pitch_balanced: bool = False,
    calibrate: bool = True,
    precision: str = "auto",
    seed: int = 0,
    test_limit: int | None = None,
    cache: bool = True,
    noise=None,
    nproc: int = 1,
    resume: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
    split_plan=None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    progress=None,
) -> FinetuneResult | None:
    """Fine-tune ``source`` (a model, or ``scratch`` shaped like ``like``) on dataset ``target``.

    Trains on the train split with early stopping on the validation split (``patience``
    validations without a better note F1), exports ``best.pt`` as a release folder (``release``,
    default ``OUT/release``), scores the starting point and the result on the test split (the first
    ``test_limit`` recordings) and writes ``OUT/finetune.json``. ``noise``: a
    :class:`~amtcli.training.noise.NoiseConfig` for noise rounds after the clean phase.

    ``split_plan``: a :class:`~amtcli.datasets.SplitPlan` replacing the dataset's own split (by
    piece; k-fold). With ``folds`` and no ``fold``, every fold runs in turn in ``OUT/fold-<i>``
    (each exports to its own ``release``), and the result pools the held-out scores of all folds
    (micro over every recording, each tested once; ``OUT/folds.json``); with ``resume``, folds
    already finished are read back from their ``finetune.json``.

    ``on_event(kind, data)`` reports: ``warning`` and ``info`` (a message), ``fold`` (the fold
    about to run), ``exported``, ``scoring`` (the number of scoring steps), ``scored`` (one step
    done). ``progress``: see :func:`amtcli.training.launch.run_training`. Returns ``None`` on the
    ranks other than 0 under torchrun.
    """
    from ..datasets import SplitPlan, load_dataset

    plan = split_plan or SplitPlan()
    args = {
        k: v
        for k, v in locals().items()
        if k not in ("plan", "split_plan", "SplitPlan", "load_dataset", "out", "release")
    }
    if plan.folds is None or plan.fold is not None:
        return _finetune_one(out=Path(out), release=release, plan=plan, **args)
    if release is not None:
        raise BadInput(
            f"--release {release}: with --folds {plan.folds} and no --fold each fold exports to "
            f"{Path(out) / 'fold-<i>' / 'release'}; give --fold to name one release folder"
        )
    load_dataset(target, root=root, split="all", plan=plan.with_fold(0))  # too many folds fails now
    emit = on_event or (lambda kind, data: None)
    parts: list[FinetuneResult] = []
    for fold in range(plan.folds):
        folder = fold_folder(out, fold)
        done = folder / "finetune.json"
        emit("fold", {"fold": fold, "folds": plan.folds, "folder": str(folder)})
        if resume and done.is_file():
            report = json.loads(done.read_text())
            emit("info", {"message": f"fold {fold}: finished before, read back from {done}"})
            parts.append(_result_of(report))
            continue
        result = _finetune_one(
            out=folder, release=None, plan=plan.with_fold(fold), **{**args, "resume": resume and folder.exists()}
        )
        if result is None:
            return None
        parts.append(result)
    return _pool(parts, out=Path(out), plan=plan)


def _result_of(report: dict[str, Any]) -> FinetuneResult:
    """A :class:`FinetuneResult` from a fold's ``finetune.json``."""
    names = report["systems"]
    results = {names["zero_shot"]: report["zero_shot"], names["fine_tuned"]: report["fine_tuned"]}
    return FinetuneResult(report, results, report["title"])


def _pool(parts: list[FinetuneResult], *, out: Path, plan) -> FinetuneResult:
    """The held-out scores of every fold, pooled; written to ``out/folds.json``."""
    first = parts[0].report
    zero = pool_counts([p.report["counts"]["zero_shot"] for p in parts])
    tuned = pool_counts([p.report["counts"]["fine_tuned"] for p in parts])
    n_items = sum(p.report["test_items"] for p in parts)
    report = {
        "from": first["from"],
        "to": first["to"],
        "root": first["root"],
        "split": plan.to_dict(),
        "folds": [p.report for p in parts],
        "test_items": n_items,
        "zero_shot": zero,
        "fine_tuned": tuned,
    }
    (out / "folds.json").write_text(json.dumps(report, indent=2) + "\n")
    zero_name = first["systems"]["zero_shot"]
    tuned_name = f"fine-tuned: {out.name} ({len(parts)} folds)"
    title = f"{first['to']} · held-out folds · {n_items} recording(s), each tested once: {first['from']} -> {out.name}"
    return FinetuneResult(report, {zero_name: zero, tuned_name: tuned}, title, folds=parts)


def _finetune_one(*, out: Path, release, plan, **kw) -> FinetuneResult | None:
    from ..config import TrainConfig
    from ..datasets import dataset_info, load_dataset, select_split
    from ..errors import OutputExists
    from ..nets import freeze_groups
    from ..zoo.export import export_run
    from ..zoo.registry import RELEASE_FILES
    from .data import dataset_source
    from .launch import run_training
    from .loop import RunSpec
    from .noise import NoiseConfig

    source, target, root, seed, overwrite = kw["source"], kw["target"], kw["root"], kw["seed"], kw["overwrite"]
    device = kw["device"]
    emit = kw["on_event"] or (lambda kind, data: None)
    release = Path(release) if release is not None else out / "release"
    dataset_info(target)  # unknown names fail here
    existing = [f for f in RELEASE_FILES if (release / f).exists()]
    if existing and not overwrite:
        raise OutputExists(f"--release {release}: already holds {', '.join(existing)} (use --overwrite)")

    # every split first: an empty one fails now, not after training
    everything = load_dataset(target, root=root, split="all", plan=plan)
    counts = {s: len(select_split(everything, s)) for s in ("train", "validation", "test")}
    have = ", ".join(f"{k} {v}" for k, v in counts.items())
    if not counts["train"] or not counts["test"]:
        hint = ""
        if plan.default:
            hint = (
                "; re-split it by piece with --split-by piece (80/10/10, at least one recording each for validation "
                "and test) or --folds K (k-fold: every recording tested once)"
            )
        raise BadInput(
            f"{target} ({everything.root}): fine-tuning needs train and test recordings (found: {have}){hint}"
        )
    if not counts["validation"]:
        emit("warning", {"message": f"{target} has no validation recordings: no early stopping, the last step is kept"})
    start = load_start(source, like=kw["like"])
    groups = freeze_groups(start.architecture)
    for group in kw["freeze"]:
        if group not in groups:
            raise BadInput(
                f"--freeze {group}: not a part of {start.architecture} that can be frozen (choose from {', '.join(groups) or 'none'})"
            )
    split_note = "" if plan.default else f" ({plan.describe()})"
    emit("info", {"message": f"{target} ({everything.root}){split_note}: {have}; starting from {start.source}"})

    steps, lr = kw["steps"], kw["lr"]
    tc = TrainConfig(
        steps=steps,
        batch_size=kw["batch_size"],
        crop_s=kw["crop_s"],
        lr=lr,
        lr_min=min(TrainConfig.lr_min, lr / 10),
        warmup_steps=max(1, min(200, steps // 20)),
        val_every=kw["val_every"],
        checkpoint_every=kw["val_every"],
        pitch_balanced=kw["pitch_balanced"],
        precision=kw["precision"],
        seed=seed,
        calibrate=kw["calibrate"],
    )
    spec = RunSpec(
        start.architecture,
        dict(start.model_config),
        start.feature_config,
        tc,
        start.decode_config,
        data=[dataset_source(target, everything.root)],
        init_from=start.source,
        noise=kw["noise"] or NoiseConfig(),
        freeze=tuple(kw["freeze"]),
        patience=kw["patience"],
        split=None if plan.default else plan.to_dict(),
    )
    _, is_main = run_training(
        spec,
        out=out,
        resume=kw["resume"],
        device=device,
        nproc=kw["nproc"],
        initial_state=start.state,
        cache=kw["cache"],
        validate_first=True,
        progress=kw["progress"],
    )
    if not is_main:
        return None
    exported = export_run(out, release, checkpoint="best", name=release.name, overwrite=overwrite)
    emit("exported", {"folder": str(exported.folder), "step": exported.step})

    items = load_dataset(target, root=everything.root, split="test", plan=plan)
    if kw["test_limit"]:
        items = items[: kw["test_limit"]]
    zero_name = "random init (scratch)" if start.scratch else f"zero-shot: {source}"
    tuned_name = f"fine-tuned: {out.name}"
    emit("scoring", {"total": 2 * len(items)})
    results, scored = _score(
        items,
        [(zero_name, start_model(start, seed=seed)), (tuned_name, str(release))],
        device=device,
        root=everything.root,
        on_step=lambda message: emit("scored", {"message": message}),
    )
    fold = "" if plan.fold is None else f" · fold {plan.fold} of {plan.folds}"
    title = f"{target} · test{fold} · {len(items)} recording(s): {start.source} -> {out.name}"
    report = {
        "from": start.source,
        "to": target,
        "root": str(everything.root),
        "split": plan.to_dict(),
        "split_counts": counts,
        "test_items": len(items),
        "test_ids": [it.id for it in items],
        "release": str(release),
        "best_step": exported.step,
        "zero_shot": results[zero_name],
        "fine_tuned": results[tuned_name],
        "counts": {"zero_shot": scored[zero_name], "fine_tuned": scored[tuned_name]},
        "systems": {"zero_shot": zero_name, "fine_tuned": tuned_name},
        "title": title,
    }
    (out / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
    return FinetuneResult(report, results, title)


# ------------------------------------------------------------------------------------ curves


@dataclass
class Curve:
    """Validation scores of one run over steps, with the events that shape them."""

    name: str
    init_from: str | None
    steps: list[int] = field(default_factory=list)
    note_f1: list[float] = field(default_factory=list)
    note_offset_f1: list[float] = field(default_factory=list)
    rounds: list[tuple[int, float]] = field(default_factory=list)  # (step, snr_db) where noise rounds began
    early_stop: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} (from {self.init_from})" if self.init_from else self.name


def read_curve(run_dir: str | os.PathLike) -> Curve:
    """The validation curve logged in ``RUN/metrics.jsonl`` (a torn last line is skipped)."""
    run = Path(run_dir)
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        raise BadInput(f"{run}: no metrics.jsonl (not a training run folder?)")
    init_from = None
    try:
        init_from = json.loads((run / "config.json").read_text()).get("init_from")
    except (OSError, json.JSONDecodeError):
        pass
    name = f"{run.parent.name}/{run.name}" if run.name.startswith("fold-") else run.name
    curve = Curve(name, init_from)
    for line in metrics.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec.get("val"), dict):
            curve.steps.append(int(rec["step"]))
            curve.note_f1.append(float(rec["val"].get("note_f1", 0.0)))
            curve.note_offset_f1.append(float(rec["val"].get("note_offset_f1", 0.0)))
        elif isinstance(rec.get("noise_search"), dict):
            curve.rounds.append((int(rec["step"]), float(rec["noise_search"]["snr_db"])))
        elif isinstance(rec.get("early_stop"), dict):
            curve.early_stop = int(rec["step"])
    return curve


def plot_curves(path: str | os.PathLike, run_dirs: Sequence[str | os.PathLike], *, title: str | None = None) -> Path:
    """Validation note F1 (solid) and note-with-offset F1 (dashed) against step for each run, noise
    rounds as dotted lines labelled with their SNR; one .png/.pdf/.svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    curves = [read_curve(r) for r in run_dirs]
    if not any(c.steps for c in curves):
        raise BadInput("nothing to plot: no validation scores in " + ", ".join(str(r) for r in run_dirs))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, c in enumerate(curves):
        colour = f"C{i}"
        ax.plot(c.steps, c.note_f1, "-o", color=colour, markersize=3, label=f"{c.label}: note F1")
        ax.plot(c.steps, c.note_offset_f1, "--", color=colour, alpha=0.6, label=f"{c.label}: note+offset F1")
        for step, snr in c.rounds:
            ax.axvline(step, color=colour, linestyle=":", alpha=0.7)
            ax.annotate(
                f"{snr:.0f} dB", (step, 1.0), xytext=(2, -10), textcoords="offset points", fontsize=7, color=colour
            )
        if c.early_stop is not None:
            ax.axvline(c.early_stop, color=colour, linestyle="-.", alpha=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("validation F1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Validation F1 during training")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
