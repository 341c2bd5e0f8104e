"""Training run -> release folder, with a filled-in model card and the sha256 of each file.

A run folder (written by ``amtcli.training``)::

    RUN/config.json               architecture, model_config, feature_config, decode_config, train_config, data
    RUN/checkpoints/best.pt       torch.save dict: model (state_dict), optimizer, step, config (JSON), ...
    RUN/checkpoints/last.pt
    RUN/metrics.jsonl             one JSON object per line; validations look like {"step": N, "val": {...}}

Checkpoints are loaded with ``weights_only=True``; only the model weights reach the release.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import DecodeConfig, FeatureConfig, from_dict
from ..errors import BadInput, OutputExists
from .registry import RELEASE_FILES, sha256_file
from .release import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, load_weights_strict, save_release


@dataclass
class ExportResult:
    folder: Path
    checkpoint: Path
    step: int | None
    metrics: dict[str, Any]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (sha256, size)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: missing (is {path.parent} a training run folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None


def find_checkpoint(run_dir: Path, checkpoint: str = "best") -> Path:
    """``best`` / ``last`` (in ``RUN/checkpoints/``), or a path to a ``.pt`` file."""
    if checkpoint in ("best", "last"):
        path = run_dir / "checkpoints" / f"{checkpoint}.pt"
        if not path.is_file():
            raise BadInput(f"{run_dir}: no checkpoints/{checkpoint}.pt (has the run saved a checkpoint yet?)")
        return path
    path = Path(checkpoint)
    if not path.is_file():
        raise BadInput(f"{checkpoint}: no such checkpoint (use best, last or a .pt path)")
    return path


def validation_metrics(metrics_path: Path, *, step: int | None) -> tuple[int | None, dict[str, Any]]:
    """The validation scores logged at ``step`` (else the last validation logged): ``(step, scores)``."""
    if not metrics_path.is_file():
        return None, {}
    chosen: tuple[int | None, dict[str, Any]] = (None, {})
    for line in metrics_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        scores = record.get("val") if isinstance(record, dict) else None
        if not isinstance(scores, dict):
            continue
        rec_step = record.get("step")
        if step is not None and rec_step == step:
            return rec_step, scores
        if step is None or rec_step is None or rec_step <= step:
            chosen = (rec_step, scores)
    return chosen


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _domain_lines(spec: dict[str, Any]) -> list[str]:
    """What a token-Transformer run did about the domain gap (``amt train --unlabeled``)."""
    if spec.get("architecture") != "transformer":
        return []
    unlabeled = spec.get("unlabeled") or []
    if not unlabeled:
        return ["- Domain confusion: none (trained on the labelled synthetic data alone)"]
    dc = spec.get("domain_config") or {}
    hidden = (spec.get("model_config") or {}).get("disc_hidden", "?")
    return [
        (
            f"- Domain confusion: a per-frame discriminator (MLP, {hidden} hidden units) on the encoder's features behind "
            f"a gradient-reversal layer; factor rising linearly from 0 to {dc.get('weight', '?')} over "
            f"{dc.get('warmup_steps', '?')} steps"
        ),
        "- Unlabeled audio (its train split when an `amt synth` folder): " + ", ".join(f"`{u}`" for u in unlabeled),
    ]


def model_card(
    name: str,
    *,
    spec: dict[str, Any],
    step: int | None,
    checkpoint: Path,
    val_step: int | None,
    metrics: dict[str, Any],
    files: dict[str, tuple[str, int]],
) -> str:
    """The README.md of a release folder (markdown)."""
    train = spec.get("train_config") or {}
    data = spec.get("data") or []
    lines = [
        f"# {name}",
        "",
        f"Automatic music transcription model for [amt](https://pypi.org/project/amtcli/) {__version__}: "
        f"architecture `{spec['architecture']}`, exported from the training run `{checkpoint.parent.parent.name}` "
        f"(checkpoint `{checkpoint.name}`, step {step if step is not None else 'unknown'}).",
        "",
        "## Training",
        "",
        f"- Steps: {step if step is not None else 'unknown'}"
        + (f" of {train['steps']} planned" if "steps" in train else ""),
    ]
    for key in ("batch_size", "crop_s", "lr", "precision", "seed"):
        if key in train:
            lines.append(f"- {key}: {train[key]}")
    if spec.get("init_from"):
        lines.append(f"- Fine-tuned from: `{spec['init_from']}`")
    lines += _domain_lines(spec)
    lines += ["", "Training data:", ""]
    lines += [f"- `{d}`" for d in data] or ["- (not recorded in the run's config.json)"]
    lines += [
        "",
        "Licenses: the weights inherit the terms of the data above (MIDI corpora, soundfonts, recordings);",
        "check each source's license before redistributing.",
        "",
        "## Metrics",
        "",
    ]
    if metrics:
        lines += [
            f"Validation scores logged by `amt train` at step {val_step} (`metrics.jsonl` of the run):",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    else:
        lines.append("No validation scores were logged for this checkpoint; none are claimed.")
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"amt transcribe recording.wav --model path/to/{name}",
        "```",
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    lines += [f"| {fname} | {size} | `{digest}` |" for fname, (digest, size) in files.items()]
    lines.append("")
    return "\n".join(lines)


def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    checkpoint: str = "best",
    name: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write the weights of a training checkpoint as a release folder with a model card.

    Returns an :class:`ExportResult` whose ``files`` hold the sha256 and size of every file written.
    """
    from ..nets import build_model
    from ..training.checkpoints import load_checkpoint

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such training run folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(f"{out_dir}: exists and is not a folder")
    existing = [f for f in RELEASE_FILES if (out_dir / f).exists()]
    if existing and not overwrite:
        raise OutputExists(f"{out_dir}: already holds {', '.join(existing)} (use --overwrite)")

    ckpt_path = find_checkpoint(run_dir, checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise BadInput(f"{ckpt_path}: not an amt training checkpoint (no 'model' entry)")
    # The checkpoint carries the config the weights were trained with; config.json is the fallback.
    spec = ckpt.get("config")
    if isinstance(spec, str):
        spec = json.loads(spec)
    if not isinstance(spec, dict):
        spec = _read_json(run_dir / "config.json")
    for key in ("architecture", "model_config", "feature_config"):
        if key not in spec:
            raise BadInput(f"{run_dir}: the run's config has no {key!r}")

    feature_config = from_dict(FeatureConfig, spec["feature_config"])
    # Decoding thresholds are chosen on the validation split after training and written to the run's
    # config.json (amtcli.training.calibrate), so they come from there when the run has one.
    run_config_path = run_dir / "config.json"
    run_decode = _read_json(run_config_path).get("decode_config") if run_config_path.is_file() else None
    decode_config = from_dict(DecodeConfig, run_decode if run_decode is not None else spec.get("decode_config"))
    model = build_model(spec["architecture"], spec["model_config"], feature_config)
    load_weights_strict(model, ckpt["model"], where=ckpt_path, architecture=spec["architecture"])

    step = ckpt.get("step")
    step = int(step) if isinstance(step, (int, float)) else None
    val_step, metrics = validation_metrics(run_dir / "metrics.jsonl", step=step)
    name = name or out_dir.name
    extra = {"name": name, "run": run_dir.name, "checkpoint": ckpt_path.name, "step": step, "metrics": metrics}
    if existing:
        (out_dir / CARD_NAME).unlink(missing_ok=True)  # never leave the previous card beside new weights
    save_release(model, out_dir, decode_config=decode_config, card=None, extra=extra)
    files = {f: (sha256_file(out_dir / f), (out_dir / f).stat().st_size) for f in (CONFIG_NAME, WEIGHTS_NAME)}
    card = model_card(name, spec=spec, step=step, checkpoint=ckpt_path, val_step=val_step, metrics=metrics, files=files)
    (out_dir / CARD_NAME).write_text(card)
    files[CARD_NAME] = (sha256_file(out_dir / CARD_NAME), (out_dir / CARD_NAME).stat().st_size)
    return ExportResult(folder=out_dir, checkpoint=ckpt_path, step=step, metrics=metrics, files=files)
