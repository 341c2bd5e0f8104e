"""Training run -> release folder, with a filled-in model card and the sha256 of each file.

A run folder (written by ``amtcli.training``)::

    RUN/config.json               architecture, model_config, feature_config, decode_config, train_config, data
    RUN/checkpoints/best.pt       torch.save dict: model (state_dict), optimizer, step, config (JSON), ...
    RUN/checkpoints/last.pt
    RUN/metrics.jsonl             one JSON object per line; validations look like {"step": N, "val": {...}}

Checkpoints are loaded with ``weights_only=True``; only the model weights reach the release.
For U-Net models the release also gets ``model.onnx`` (:func:`write_onnx`), the network for onnxruntime.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..config import DecodeConfig, FeatureConfig, from_dict
from ..errors import BadInput, ConfigMismatch, OutputExists
from .registry import RELEASE_FILES, sha256_file
from .release import (
    CARD_NAME,
    CONFIG_NAME,
    ONNX_HEADS,
    ONNX_NAME,
    ONNX_WEIGHTS_KEY,
    WEIGHTS_NAME,
    load_release,
    load_weights_strict,
    read_release_config,
    save_release,
)

ONNX_OPSET = 17
# Largest difference allowed between a probability from torch and from onnxruntime on the check
# inputs; float32 rounding gives about 1e-6 on the bundled model.
ONNX_TOLERANCE = 1e-4


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


def remove_pitch_prior(model, ckpt: dict[str, Any], spec: dict[str, Any], *, where: Path) -> None:
    """Make a checkpoint of a pitch-balanced run release-ready (outputs probabilities, as best.pt is
    after training): its stored ``prior_offsets``, or offsets counted again from the run's training data."""

    from ..training.calibrate import debias_pitch_balanced, remove_prior

    offsets = ckpt.get("prior_offsets")
    if isinstance(offsets, dict):
        remove_prior(model, offsets)
        return
    from ..training.data import load_examples

    data = [d for d in spec.get("data") or [] if Path(d).is_dir()]
    if not data or len(data) != len(spec.get("data") or []):
        raise BadInput(
            f"{where}: a checkpoint of a pitch-balanced run from before checkpoints kept the prior; "
            "its training data folders are needed to remove it and are not all there"
        )
    debias_pitch_balanced(model, load_examples(data, split="train", feature_config=model.feature_config))


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
    from ..nets import build_model, has_onnx_export
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
    if (spec.get("train_config") or {}).get("pitch_balanced") and not ckpt.get("debiased"):
        remove_pitch_prior(model, ckpt, spec, where=ckpt_path)

    step = ckpt.get("step")
    step = int(step) if isinstance(step, (int, float)) else None
    val_step, metrics = validation_metrics(run_dir / "metrics.jsonl", step=step)
    name = name or out_dir.name
    extra = {"name": name, "run": run_dir.name, "checkpoint": ckpt_path.name, "step": step, "metrics": metrics}
    if existing:
        (out_dir / CARD_NAME).unlink(missing_ok=True)  # never leave the previous card beside new weights
    save_release(model, out_dir, decode_config=decode_config, card=None, extra=extra)
    written = [CONFIG_NAME, WEIGHTS_NAME]
    if has_onnx_export(spec["architecture"]):
        write_onnx(out_dir, overwrite=True)
        written.append(ONNX_NAME)
    else:
        (out_dir / ONNX_NAME).unlink(missing_ok=True)  # never leave a network made from other weights
    files = {f: (sha256_file(out_dir / f), (out_dir / f).stat().st_size) for f in written}
    card = model_card(name, spec=spec, step=step, checkpoint=ckpt_path, val_step=val_step, metrics=metrics, files=files)
    (out_dir / CARD_NAME).write_text(card)
    files[CARD_NAME] = (sha256_file(out_dir / CARD_NAME), (out_dir / CARD_NAME).stat().st_size)
    return ExportResult(folder=out_dir, checkpoint=ckpt_path, step=step, metrics=metrics, files=files)


# ------------------------------------------------------------------------------------------- ONNX


@dataclass
class OnnxExport:
    """What :func:`write_onnx` wrote: the file, its sha256 and size, and the largest difference between
    torch's and onnxruntime's probabilities on the check inputs."""

    path: Path
    sha256: str
    size: int
    max_difference: float


def onnx_check_inputs(feature_config: FeatureConfig) -> list[np.ndarray]:
    """Features ``(batch, frames, n_bins)`` a ``model.onnx`` is checked on against torch: the CQT of a
    seeded mixture of tones and noise (so every layer sees music-like input), at three shapes
    (one long excerpt, a batch of two, a single frame), so the dynamic axes are exercised too."""
    from ..audio.features import compute_features

    sr = feature_config.sample_rate
    rng = np.random.default_rng(13)
    t = np.arange(4 * sr) / sr
    audio = 0.01 * rng.standard_normal(len(t))
    for k in range(6):  # six notes, 0.6 s apart, each 0.8 s with a decay
        midi = int(rng.integers(36, 96))
        start = 0.6 * k
        env = np.where(t >= start, np.exp(-(t - start) * 3.0), 0.0) * (t < start + 0.8)
        audio += 0.2 * env * np.sin(2 * np.pi * 440.0 * 2.0 ** ((midi - 69) / 12) * t)
    feats = compute_features(audio.astype(np.float32), config=feature_config, engine="numpy")
    return [feats[None], np.stack([feats[:40], feats[-40:]]), feats[None, 60:61]]


def onnx_difference(model, onnx_path: str | os.PathLike, inputs: list[np.ndarray]) -> float:
    """Largest ``|p_torch - p_onnxruntime|`` over the heads and ``inputs`` (``(batch, frames, n_bins)`` each)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in inputs:
        with torch.inference_mode():
            ref = model.predict(torch.from_numpy(x))
        got = session.run(list(ONNX_HEADS), {"features": x})
        for name, value in zip(ONNX_HEADS, got):
            worst = max(worst, float(np.abs(ref[name].float().numpy() - value).max()))
    return worst


def write_onnx(folder: str | os.PathLike, *, overwrite: bool = False) -> OnnxExport:
    """Write ``folder/model.onnx`` from the release in ``folder`` (its ``model.safetensors``).

    The graph maps features ``(batch, frames, n_bins)`` to the probabilities of each head (outputs
    ``onset``, ``frame``, ``offset``, ``velocity``, ``(batch, frames, 88)``), with dynamic batch and
    time axes; the BiLSTM stays one ONNX ``LSTM`` node. The metadata records the sha256 of the
    weights it was made from. Before it replaces anything, onnxruntime's output is compared with
    torch's on :func:`onnx_check_inputs`; a difference above ``ONNX_TOLERANCE`` is an error and
    nothing is written.
    """
    import io
    import warnings

    import onnx
    import torch

    from ..nets import has_onnx_export

    folder = Path(folder)
    cfg = read_release_config(folder)
    if not has_onnx_export(cfg.architecture):
        raise BadInput(f"{folder}: {cfg.architecture!r} models have no ONNX export (only 'unet-bilstm' ones)")
    target = folder / ONNX_NAME
    if target.exists() and not overwrite:
        raise OutputExists(f"{target}: already there (use --overwrite to write it again)")
    model, cfg = load_release(folder, device="cpu")

    class Probabilities(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, features):
            probs = self.net.predict(features)
            return tuple(probs[name] for name in ONNX_HEADS)

    inputs = onnx_check_inputs(cfg.feature_config)
    axes = {"features": {0: "batch", 1: "frames"}, **{name: {0: "batch", 1: "frames"} for name in ONNX_HEADS}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript exporter (dynamo=False), which torch marks deprecated: torch.export's exporter
        # took 110 s for this 33 k-parameter network on a 2-core machine (2 s here) and gives the same graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Probabilities(model).eval(),
            (torch.from_numpy(inputs[0]),),
            buffer,
            input_names=["features"],
            output_names=list(ONNX_HEADS),
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in (
        (ONNX_WEIGHTS_KEY, sha256_file(folder / WEIGHTS_NAME)),
        ("amtcli.architecture", cfg.architecture),
        ("amtcli.version", __version__),
    ):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    tmp = folder / f".{ONNX_NAME}.tmp"
    tmp.write_bytes(proto.SerializeToString())
    try:
        diff = onnx_difference(model, tmp, inputs)
        if not diff <= ONNX_TOLERANCE:
            raise ConfigMismatch(
                f"{folder}: the ONNX export differs from torch by {diff:.1e} (allowed {ONNX_TOLERANCE:.0e}); "
                f"{ONNX_NAME} not written"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return OnnxExport(target, sha256_file(target), target.stat().st_size, diff)
