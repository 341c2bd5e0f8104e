"""The transcriber training loop: random crops, Adam with warm-up + cosine decay, gradient clipping
before the step, bf16 autocast on CPU / AMP on CUDA, validation note F1, atomic resumable checkpoints.

Run folder layout::

    runs/NAME/config.json          resolved configuration (architecture, model, features, decode, train)
    runs/NAME/metrics.jsonl        one JSON object per logged step / validation
    runs/NAME/checkpoints/last.pt  newest state (resume from here); step-*.pt the last few; best.pt best val F1
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import DecodeConfig, FeatureConfig, TrainConfig, from_dict, to_dict
from ..errors import BadInput
from .checkpoints import load_checkpoint, prune_checkpoints, save_checkpoint, step_path
from .data import Example, load_examples, sample_batch
from .losses import count_positives, pitch_balance_weights, transcription_loss

Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class RunSpec:
    """Everything that defines a run; written to ``config.json`` and into every checkpoint."""

    architecture: str
    model_config: dict[str, Any]
    feature_config: FeatureConfig
    train_config: TrainConfig
    decode_config: DecodeConfig = field(default_factory=DecodeConfig)
    data: list[str] = field(default_factory=list)
    init_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "model_config": self.model_config,
            "feature_config": to_dict(self.feature_config),
            "decode_config": to_dict(self.decode_config),
            "train_config": to_dict(self.train_config),
            "data": self.data,
            "init_from": self.init_from,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(
            architecture=d["architecture"],
            model_config=d["model_config"],
            feature_config=from_dict(FeatureConfig, d["feature_config"]),
            train_config=from_dict(TrainConfig, d["train_config"]),
            decode_config=from_dict(DecodeConfig, d.get("decode_config")),
            data=list(d.get("data") or []),
            init_from=d.get("init_from"),
        )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr_min`` at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def resolve_precision(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if not device.startswith("cuda"):
            raise BadInput("--precision fp16 needs CUDA")
        return torch.float16
    if precision == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if torch.backends.mkldnn.is_available() else None
    raise BadInput(f"unknown precision {precision!r} (auto, fp32, bf16, fp16)")


def validate(model, examples: list[Example], *, device: str, decode: DecodeConfig) -> dict[str, float]:
    """Note P/R/F1 (onset 50 ms) and frame F1, micro-averaged over the validation examples."""
    from ..inference.decoding import decode_frames
    from ..inference.transcribe import posteriors_from_features
    from .calibrate import note_scores

    fc = model.feature_config
    refs, ests = [], []
    model.eval()
    for ex in examples:
        post = posteriors_from_features(model, np.asarray(ex.features), device=device)
        est = decode_frames(post["onset"], post["frame"], offset=post["offset"], velocity=post["velocity"], frame_rate=fc.frame_rate, config=decode, fmin_midi=fc.fmin_midi)
        refs.append(ex.notes)
        ests.append(est)
    model.train()
    return note_scores(refs, ests)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {"numpy": json.dumps(rng.bit_generator.state), "torch": torch.get_rng_state(), "python": json.dumps(random.getstate())}


def _set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def train_transcriber(
    spec: RunSpec,
    *,
    out_dir: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    on_event: Callback | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Train (or resume) a run in ``out_dir``. Returns the path of the best checkpoint.

    ``initial_state``: weights to start from (fine-tuning); ignored when resuming.
    """
    from ..nets import build_model

    emit = on_event or (lambda kind, data: None)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    cfg = spec.train_config
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    if resume:
        last = ckpt_dir / "last.pt"
        if not last.is_file():
            raise BadInput(f"{out}: nothing to resume (no checkpoints/last.pt)")
        state = load_checkpoint(last)
        saved = RunSpec.from_json(json.loads(state["config"]))
        # the schedule may be extended (--steps), everything else must match the run
        if (saved.architecture, saved.model_config, saved.feature_config) != (spec.architecture, spec.model_config, spec.feature_config):
            raise BadInput(f"{out}: --resume with a different model or features than the run was started with")
        spec = RunSpec(saved.architecture, saved.model_config, saved.feature_config, cfg, saved.decode_config, saved.data, saved.init_from)
    else:
        if (out / "config.json").exists() or (ckpt_dir / "last.pt").exists():
            raise BadInput(f"{out}: a run is already there (use --resume to continue it, or another --out)")
        state = None

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    fc = spec.feature_config
    model = build_model(spec.architecture, spec.model_config, fc).to(device)
    if initial_state is not None and state is None:
        model.load_state_dict(initial_state, strict=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best_f1 = 0, -1.0
    if state is not None:
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        step, best_f1 = int(state["step"]), float(state["best_f1"])
        _set_rng_state(rng, state["rng"])

    emit("status", {"message": "loading training data"})
    train = load_examples(spec.data, split="train", feature_config=fc, on_progress=lambda i, n: emit("load", {"done": i, "total": n}))
    if not train:
        raise BadInput(f"no training items in {', '.join(spec.data)} (split 'train')")
    val = load_examples(spec.data, split="validation", feature_config=fc, limit=cfg.val_items)
    key_weights = None
    if cfg.pitch_balanced:
        w = pitch_balance_weights(count_positives(train, feature_config=fc))
        key_weights = {k: torch.from_numpy(v).to(device) for k, v in w.items()}
    crop_frames = max(8, int(round(cfg.crop_s * fc.frame_rate)))
    autocast_dtype = resolve_precision(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    emit("start", {"step": step, "steps": cfg.steps, "train_items": len(train), "val_items": len(val), "precision": str(autocast_dtype or "fp32")})

    def checkpoint(tag_best: bool) -> None:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "best_f1": best_f1,
            "rng": _rng_state(rng),
            "config": json.dumps(spec.to_json()),
        }
        save_checkpoint(payload, ckpt_dir / "last.pt")
        save_checkpoint(payload, step_path(ckpt_dir, step))
        prune_checkpoints(ckpt_dir, keep=cfg.keep_checkpoints)
        if tag_best:
            save_checkpoint(payload, ckpt_dir / "best.pt")

    metrics_path = out / "metrics.jsonl"
    model.train()
    t_last, steps_since = time.perf_counter(), 0
    while step < cfg.steps:
        x, y = sample_batch(train, batch_size=cfg.batch_size, crop_frames=crop_frames, feature_config=fc, rng=rng)
        xb = torch.from_numpy(x).to(device)
        yb = {k: torch.from_numpy(v).to(device) for k, v in y.items()}
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits = model(xb)
        loss, parts = transcription_loss(logits, yb, key_weights=key_weights)
        if not torch.isfinite(loss):
            raise BadInput(f"the loss became {float(loss)} at step {step}: lower --lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad))  # before the step
        scaler.step(optimizer)
        scaler.update()
        step += 1
        steps_since += 1
        now = time.perf_counter()
        record = {"step": step, "loss": float(loss.detach()), **{f"loss_{k}": v for k, v in parts.items()}, "lr": lr, "grad_norm": grad_norm}
        if step % 10 == 0 or step == cfg.steps:
            record["steps_per_s"] = steps_since / max(1e-9, now - t_last)
            t_last, steps_since = now, 0
            with metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        emit("step", record)
        is_val = val and (step % cfg.val_every == 0 or step == cfg.steps)
        if is_val:
            scores = validate(model, val, device=device, decode=spec.decode_config)
            improved = scores["note_f1"] > best_f1
            best_f1 = max(best_f1, scores["note_f1"])
            rec = {"step": step, "val": scores, "best_f1": best_f1}
            with metrics_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            emit("val", rec)
            checkpoint(tag_best=improved)
        elif step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint(tag_best=not val and step == cfg.steps)
    if not (ckpt_dir / "best.pt").exists():
        checkpoint(tag_best=True)
    if cfg.calibrate and val:
        from .calibrate import calibrate_decoding

        emit("status", {"message": "choosing decoding thresholds on the validation split"})
        model.load_state_dict(load_checkpoint(ckpt_dir / "best.pt")["model"], strict=True)
        model.eval()
        decode, report = calibrate_decoding(model, val, device=device, base=spec.decode_config)
        spec = RunSpec(spec.architecture, spec.model_config, spec.feature_config, spec.train_config, decode, spec.data, spec.init_from)
        (out / "config.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        (out / "calibration.json").write_text(json.dumps(report, indent=1) + "\n")
        emit("calibrated", report["chosen"])
    emit("done", {"step": step, "best_f1": best_f1})
    return ckpt_dir / "best.pt"
