"""Training loop of the joint audio-score embedding (``amt train --model embedding``).

Run folder layout (``out_dir``)::

    config.json               architecture, model_config, feature_config, train_config, data (the keys
                              of the transcriber's runs, so `amt models export` reads both)
    metrics.jsonl             one JSON line per logged step (loss, lr, speed) and per validation
                              ({"step": N, "val": {"R@1": ..., "R@5": ..., "MRR": ..., "MR": ...}})
    checkpoints/last.pt       model, optimizer, scheduler, step, config (atomic: temp file + os.replace)

Batches are drawn from a generator seeded with ``(seed, step)``, so a resumed run sees exactly the
batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import FeatureConfig, from_dict, override, to_dict
from ..errors import BadInput, ConfigMismatch, DatasetNotFound, OutputExists

TRAIN_SPLITS = ("train",)
VALID_SPLITS = ("valid", "validation", "val")


@dataclass(frozen=True)
class EmbeddingTrainConfig:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    final_lr_fraction: float = 0.1  # cosine decay from lr to lr * this over `steps`
    seed: int = 0
    max_transpose: int = 5  # semitones, both ways, applied to CQT and roll together
    max_gain_db: float = 10.0
    min_active: float = 0.5  # a snippet needs a sounding note in this fraction of its frames
    log_every: int = 10
    checkpoint_every: int = 50
    valid_every: int = 100
    valid_snippets: int = 500
    precision: str = "auto"  # auto (bf16 autocast on CPU, as the transcriber's loop), fp32, bf16, fp16 (CUDA)


ProgressFn = Callable[[int, int, dict], None]


def _lr_factor(step: int, cfg: EmbeddingTrainConfig) -> float:
    t = min(1.0, step / max(1, cfg.steps))
    return cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint (``torch.load(weights_only=True)``) given as a ``.pt`` file or a run folder."""
    from .checkpoints import load_checkpoint as _load

    path = Path(path)
    return _load(path / "checkpoints" / "last.pt" if path.is_dir() else path)


def model_from_checkpoint(path: str | os.PathLike):
    """The embedding model of a training checkpoint (or run folder), in eval mode."""
    from ..nets import build_model
    from ..nets.embedding import EmbeddingConfig

    ckpt = load_checkpoint(path)
    spec = ckpt.get("config") or {}
    if spec.get("architecture") != "embedding":
        raise ConfigMismatch(f"{path}: not an embedding checkpoint (architecture {spec.get('architecture')!r})")
    model = build_model(
        "embedding", from_dict(EmbeddingConfig, spec["model_config"]), from_dict(FeatureConfig, spec["feature_config"])
    )
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval()


def _validate(model, items, *, cfg: EmbeddingTrainConfig, snippet_frames: int) -> dict:
    from ..datasets.embedding_pairs import retrieval_snippets
    from ..evaluation.retrieval import embed_snippets, ranks_from_similarity, retrieval_metrics

    audio, score, _ = retrieval_snippets(
        items, n=cfg.valid_snippets, snippet_frames=snippet_frames, seed=cfg.seed, min_active=cfg.min_active
    )
    a, s = embed_snippets(model, audio, score)
    return retrieval_metrics(ranks_from_similarity(a @ s.T), ks=(1, 5))


def train_embedding(
    data_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    out_dir: str | os.PathLike,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    resume: bool = False,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    model_config: Any = None,
    feature_config: FeatureConfig | None = None,
    train_config: EmbeddingTrainConfig | None = None,
    device: str = "cpu",
) -> dict:
    """Train the joint embedding on ``amt synth`` datasets; returns the last logged metrics.

    ``data_dirs``: dataset folders (``manifest.jsonl``); items of split ``train`` are trained on,
    ``valid`` items (if any) are used for a retrieval check every ``valid_every`` steps.
    ``resume=True`` continues ``out_dir/checkpoints/last.pt`` (its configs win; ``steps`` may grow).
    ``progress(step, total_steps, metrics)`` is called after every step.
    """
    import torch

    from ..datasets.embedding_pairs import load_pair_items, sample_batch
    from ..nets import build_model, model_config_class
    from .checkpoints import save_checkpoint
    from ..devices import resolve_precision

    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    if isinstance(data_dirs, (str, os.PathLike)):
        data_dirs = [data_dirs]
    data_dirs = [str(d) for d in data_dirs]

    ckpt = None
    if resume:
        if not ckpt_path.is_file():
            raise BadInput(f"{out_dir}: nothing to resume (no checkpoints/last.pt)")
        ckpt = load_checkpoint(ckpt_path)
        spec = ckpt.get("config") or {}
        if spec.get("architecture") != "embedding":
            raise ConfigMismatch(f"{ckpt_path}: not an embedding run")
        feature_config = from_dict(FeatureConfig, spec["feature_config"])
        mcfg = from_dict(model_config_class("embedding"), spec["model_config"])
        cfg = override(from_dict(EmbeddingTrainConfig, spec["train_config"]), steps=steps)
    else:
        if ckpt_path.exists() and not overwrite:
            raise OutputExists(f"{out_dir}: already holds a run (resume it, or pass --overwrite to start over)")
        feature_config = feature_config or FeatureConfig()
        cls = model_config_class("embedding")
        mcfg = model_config if isinstance(model_config, cls) else from_dict(cls, model_config)
        cfg = override(train_config or EmbeddingTrainConfig(), steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    if cfg.steps < 1 or cfg.batch_size < 2:
        raise BadInput("training needs steps >= 1 and a batch of at least 2 pairs (the loss compares pairs)")

    train_items = load_pair_items(data_dirs, feature_config=feature_config, splits=TRAIN_SPLITS)
    if not train_items:
        raise DatasetNotFound(f"{', '.join(data_dirs)}: no items of split 'train'")
    valid_items = load_pair_items(data_dirs, feature_config=feature_config, splits=VALID_SPLITS)

    autocast_dtype = resolve_precision(cfg.precision, device).dtype
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    torch.manual_seed(cfg.seed)
    model = build_model("embedding", mcfg, feature_config).to(device)
    if autocast_dtype is not None and not device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)  # oneDNN's fast path for bf16 convolutions
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step = int(ckpt["step"])
        torch.set_rng_state(ckpt["torch_rng"])

    run_config = {
        "architecture": "embedding",
        "model_config": to_dict(mcfg),
        "feature_config": to_dict(feature_config),
        "train_config": to_dict(cfg),
        "data": data_dirs,
        "n_train_items": len(train_items),
        "n_train_pieces": len({it.piece for it in train_items}),
        "n_valid_items": len(valid_items),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(run_config, indent=2) + "\n")
    metrics_path = out_dir / "metrics.jsonl"
    if ckpt is None and metrics_path.exists():
        metrics_path.unlink()
    wall = float(ckpt.get("wall_time_s", 0.0)) if ckpt else 0.0

    def save(step: int) -> None:
        save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "torch_rng": torch.get_rng_state(),
                "wall_time_s": wall,
                "config": run_config,
            },
            ckpt_path,
        )

    last: dict = {"step": step}
    window_loss, window_n, t_window = 0.0, 0, time.perf_counter()
    with open(metrics_path, "a") as log:
        while step < cfg.steps:
            t0 = time.perf_counter()
            rng = np.random.default_rng([cfg.seed, step])
            audio, score, _ = sample_batch(
                train_items,
                batch_size=cfg.batch_size,
                snippet_frames=mcfg.snippet_frames,
                rng=rng,
                feature_config=feature_config,
                max_transpose=cfg.max_transpose,
                max_gain_db=cfg.max_gain_db,
                min_active=cfg.min_active,
            )
            model.train()
            with torch.autocast(
                device_type="cuda" if device.startswith("cuda") else "cpu",
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ):
                a, s = model(torch.from_numpy(audio).to(device), torch.from_numpy(score).to(device))
            loss = model.loss(a.float(), s.float())
            if not torch.isfinite(loss):
                raise ConfigMismatch(f"the loss became {loss.item()} at step {step + 1}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            wall += time.perf_counter() - t0
            window_loss += float(loss.item())
            window_n += 1
            last = {"step": step, "loss": float(loss.item()), "lr": sched.get_last_lr()[0]}
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                entry = {
                    "step": step,
                    "loss": window_loss / window_n,
                    "lr": last["lr"],
                    "steps_per_s": window_n / max(1e-9, now - t_window),
                    "wall_time_s": wall,
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
                window_loss, window_n, t_window = 0.0, 0, now
                last.update(entry)
            if valid_items and (step % cfg.valid_every == 0 or step == cfg.steps):
                model.eval()
                v = _validate(model, valid_items, cfg=cfg, snippet_frames=mcfg.snippet_frames)
                log.write(json.dumps({"step": step, "val": v}) + "\n")
                log.flush()
                last.update({f"valid_{k}": x for k, x in v.items()})
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save(step)
            if progress is not None:
                progress(step, cfg.steps, dict(last))
    model.eval()
    last["checkpoint"] = str(ckpt_path)
    last["wall_time_s"] = wall
    return last


def export_release(run_dir: str | os.PathLike, folder: str | os.PathLike, *, card: str | None = None, extra=None):
    """Write the model of ``run_dir/checkpoints/last.pt`` (or a ``.pt`` file) as a release folder."""
    from ..zoo.release import save_release

    model = model_from_checkpoint(run_dir)
    return save_release(model, folder, card=card, extra=extra)
