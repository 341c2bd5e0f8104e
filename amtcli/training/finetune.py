"""Fine-tuning a released model on another dataset, and the measurements around it.

The experiment of the synthetic-instruments paper in one call chain: start from a release (or
from a random init of the same architecture, the baseline), train on the target's train split
with early stopping on its validation split (:func:`amtcli.training.loop.train_transcriber`),
then score the starting point (zero-shot) and the result on the target's test split. Validation
F1 over steps comes from the runs' ``metrics.jsonl`` (:func:`read_curve`, :func:`plot_curves`).
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

# architecture -> group -> module names (attributes of the model); "encoder" is everything before
# the per-key BiLSTM in the U-Net + BiLSTM (see amtcli/nets/unet_bilstm.py).
FREEZE_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "unet-bilstm": {"encoder": ("input_norm", "enc0", "to_keys", "enc1", "bottleneck", "dec1")},
}

FINETUNABLE = ("unet-bilstm",)  # architectures train_transcriber trains (frame-level heads)

SUMMARY_KEYS = ("frame_f1", "note_precision", "note_recall", "note_f1", "note_offset_f1")


def freeze_modules(model: torch.nn.Module, groups: Sequence[str], *, architecture: str) -> list[torch.nn.Module]:
    """Stop gradients into the modules of ``groups``; returns those modules (the loop keeps them in
    eval mode so their BatchNorm statistics stay fixed too)."""
    if not groups:
        return []
    known = FREEZE_GROUPS.get(architecture, {})
    modules: list[torch.nn.Module] = []
    for group in groups:
        if group not in known:
            choices = ", ".join(sorted(known)) or "none"
            raise BadInput(f"--freeze {group}: not a part of {architecture} that can be frozen (choose from {choices})")
        for name in known[group]:
            module = getattr(model, name)
            for p in module.parameters():
                p.requires_grad_(False)
            modules.append(module)
    return modules


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
        return StartPoint(f"{SCRATCH} ({like})", cfg.architecture, cfg.model_config, cfg.feature_config, cfg.decode_config, None)
    folder = resolve(source)  # verified once (sha256), then loaded
    _check_finetunable(read_release_config(folder).architecture, source)
    model, cfg = load_release(folder, device="cpu")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return StartPoint(source, cfg.architecture, cfg.model_config, cfg.feature_config, cfg.decode_config, state)


def _check_finetunable(architecture: str, name: str) -> None:
    if architecture not in FINETUNABLE:
        raise BadInput(f"{name}: amt finetune trains frame-level transcribers ({', '.join(FINETUNABLE)}), not {architecture}")


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


def compare_on(items, systems: Sequence[tuple[str, Any]], *, device: str = "cpu", root: Path | None = None, on_step: Callable[[str], None] | None = None) -> dict[str, dict[str, float | None]]:
    """Score each ``(name, model)`` (a loaded ``(model, ReleaseConfig)`` or a model spec) on ``items``
    with :func:`amtcli.evaluation.suites.run_evaluation`; ``{name: summary}`` in order."""
    from ..evaluation.suites import ModelSystem, run_evaluation

    runs = run_evaluation(items, [ModelSystem(m, name=n, device=device) for n, m in systems], root=root, on_step=on_step)
    return {r.system: summarize(r) for r in runs}


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
    curve = Curve(run.name, init_from)
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
            ax.annotate(f"{snr:.0f} dB", (step, 1.0), xytext=(2, -10), textcoords="offset points", fontsize=7, color=colour)
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
