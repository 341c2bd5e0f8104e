"""Training of the joint audio-score embedding (``amt train --model embedding``).

The run is the common skeleton's (:mod:`amtcli.training.solver`: resume, seeds, precision,
checkpoints, metrics, ``--nproc``/torchrun); this module contributes the batch (one audio snippet
per score snippet, :func:`amtcli.datasets.embedding_pairs.sample_batch`), the ranking loss and the
retrieval validation (R@1, R@5, MRR, MR on snippets of the validation split; ``best.pt`` keeps the
best MRR). The run folder is the transcribers' (:mod:`amtcli.training.checkpoints`), so
``amt models export`` turns it into a release; its ``config.json`` also counts the items and pieces.

Batches are drawn from a generator seeded with ``(seed + rank, step)``, so a resumed run sees
exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FeatureConfig, from_dict, override, to_dict
from ..errors import BadInput, ConfigMismatch, DatasetNotFound
from .solver import Schedule, Solver, Task

TRAIN_SPLIT, VALID_SPLIT = "train", "validation"


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
    precision: str = "auto"  # auto (by the hardware, amtcli.devices.resolve_precision), fp32, bf16, fp16 (CUDA)
    keep_checkpoints: int = 3
    threads: int = 0  # 0: torch's default


@dataclass
class EmbeddingSpec:
    """Everything that defines an embedding run (``config.json`` and every checkpoint)."""

    model_config: dict[str, Any]
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    train_config: EmbeddingTrainConfig = field(default_factory=EmbeddingTrainConfig)
    data: list[str] = field(default_factory=list)
    architecture: str = "embedding"

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "model_config": self.model_config,
            "feature_config": to_dict(self.feature_config),
            "train_config": to_dict(self.train_config),
            "data": list(self.data),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EmbeddingSpec:
        return cls(
            model_config=d["model_config"],
            feature_config=from_dict(FeatureConfig, d["feature_config"]),
            train_config=from_dict(EmbeddingTrainConfig, d["train_config"]),
            data=list(d.get("data") or []),
        )


def lr_factor(step: int, cfg: EmbeddingTrainConfig) -> float:
    """Cosine decay of the learning rate from 1 to ``final_lr_fraction`` over ``steps``."""
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
    from .checkpoints import checkpoint_config, load_module_state

    ckpt = load_checkpoint(path)
    where = Path(path)
    spec = checkpoint_config(ckpt, where=where)
    if spec.get("architecture") != "embedding":
        raise ConfigMismatch(f"{path}: not an embedding checkpoint (architecture {spec.get('architecture')!r})")
    model = build_model(
        "embedding", from_dict(EmbeddingConfig, spec["model_config"]), from_dict(FeatureConfig, spec["feature_config"])
    )
    load_module_state(model, ckpt.get("model") or {}, where=where)
    return model.eval()


class EmbeddingTask(Task):
    """The embedding's part of a run: snippet-pair batches, the ranking loss, retrieval validation."""

    architecture = "embedding"
    score = "MRR"
    best_key = "best_mrr"

    def __init__(self, spec: EmbeddingSpec):
        from ..nets import model_config_class

        cls = model_config_class("embedding")
        self.mcfg = spec.model_config if isinstance(spec.model_config, cls) else from_dict(cls, spec.model_config)
        spec.model_config = to_dict(self.mcfg)
        self.spec = spec
        self.counts: dict[str, int] = {}
        cfg = spec.train_config
        if cfg.steps < 1 or cfg.batch_size < 2:
            raise BadInput("training needs steps >= 1 and a batch of at least 2 pairs (the loss compares pairs)")

    def schedule(self) -> Schedule:
        c = self.spec.train_config
        return Schedule(
            steps=c.steps,
            seed=c.seed,
            precision=c.precision,
            threads=c.threads,
            val_every=c.valid_every,
            checkpoint_every=c.checkpoint_every,
            keep_checkpoints=c.keep_checkpoints,
            log_every=c.log_every,
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.spec.to_json(), **self.counts}

    def resume_from(self, saved: dict[str, Any], *, where: Path) -> None:
        spec = self.spec
        self.check_same_model(saved, where=where, model_config=spec.model_config, feature_config=spec.feature_config)
        try:
            old = EmbeddingSpec.from_json(saved)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{where}: the checkpoint's run config is damaged ({type(exc).__name__}: {exc})") from None
        self.spec = EmbeddingSpec(old.model_config, old.feature_config, spec.train_config, old.data)

    def build(self, solver: Solver):
        import torch

        from ..nets import build_model

        model = build_model("embedding", self.mcfg, self.spec.feature_config).to(solver.device)
        if solver.precision.dtype is not None and not solver.device.startswith("cuda"):
            model = model.to(memory_format=torch.channels_last)  # oneDNN's fast path for bf16 convolutions
        self.device = solver.device
        self.rank = solver.ctx.rank
        return {"model": model}

    def optimizer(self):
        import torch

        return torch.optim.Adam(self.parameters(), lr=self.spec.train_config.lr)

    def load_data(self, solver: Solver) -> dict[str, Any]:
        from ..datasets.embedding_pairs import load_pair_items

        spec = self.spec

        def on_progress(done: int, total: int) -> None:
            solver.emit("load", {"done": done, "total": total})

        self.train = load_pair_items(
            spec.data, feature_config=spec.feature_config, splits=(TRAIN_SPLIT,), progress=on_progress
        )
        if not self.train:
            raise DatasetNotFound(f"{', '.join(spec.data)}: no items of split 'train'")
        self.val = (
            load_pair_items(spec.data, feature_config=spec.feature_config, splits=(VALID_SPLIT,))
            if solver.ctx.is_main
            else []
        )
        self.counts = {
            "n_train_items": len(self.train),
            "n_train_pieces": len({it.piece for it in self.train}),
            "n_valid_items": len(self.val),
        }
        return {"train_items": len(self.train), "val_items": len(self.val)}

    def has_validation(self) -> bool:
        return bool(self.val)

    def lr(self, step: int) -> float:
        cfg = self.spec.train_config
        return cfg.lr * lr_factor(step, cfg)

    def batch(self, rng: np.random.Generator, step: int):
        from ..datasets.embedding_pairs import sample_batch

        cfg = self.spec.train_config
        audio, score, _ = sample_batch(
            self.train,
            batch_size=cfg.batch_size,
            snippet_frames=self.mcfg.snippet_frames,
            rng=np.random.default_rng([cfg.seed + self.rank, step]),
            feature_config=self.spec.feature_config,
            max_transpose=cfg.max_transpose,
            max_gain_db=cfg.max_gain_db,
            min_active=cfg.min_active,
        )
        return audio, score

    def batch_bytes(self, batch) -> bytes:
        return batch[0].tobytes()

    def loss(self, batch, step: int):
        import torch

        audio, score = batch
        model = self.modules["model"]
        with self.autocast():
            a, s = self.net(torch.from_numpy(audio).to(self.device), torch.from_numpy(score).to(self.device))
        return model.loss(a.float(), s.float()), {}

    def validate(self) -> dict[str, float]:
        from ..datasets.embedding_pairs import retrieval_snippets
        from ..evaluation.retrieval import ranks_from_similarity, retrieval_metrics
        from ..nets.embedding import embed_snippets

        cfg, model = self.spec.train_config, self.modules["model"]
        audio, score, _ = retrieval_snippets(
            self.val,
            n=cfg.valid_snippets,
            snippet_frames=self.mcfg.snippet_frames,
            seed=cfg.seed,
            min_active=cfg.min_active,
        )
        a, s = embed_snippets(model, audio, score)
        model.train()
        return retrieval_metrics(ranks_from_similarity(a @ s.T), ks=(1, 5))


ProgressFn = Callable[[int, int, dict], None]


def train_embedding(
    data_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    out_dir: str | os.PathLike,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    model_config: Any = None,
    feature_config: FeatureConfig | None = None,
    train_config: EmbeddingTrainConfig | None = None,
    device: str = "cpu",
) -> dict:
    """Train the joint embedding on ``amt synth`` datasets in this process; returns the last logged metrics.

    ``data_dirs``: dataset folders; items of split ``train`` are trained on, ``validation`` items
    (if any) are used for a retrieval check every ``valid_every`` steps. ``steps``, ``batch_size``,
    ``lr`` and ``seed`` override ``train_config``'s fields (defaults: :class:`EmbeddingTrainConfig`).
    ``resume=True`` continues ``out_dir/checkpoints/last.pt`` (the model and features must be the
    run's; the schedule is the one given). ``overwrite=True`` starts over on an existing run.
    ``progress(step, total_steps, metrics)`` is called after every step.
    """
    if isinstance(data_dirs, (str, os.PathLike)):
        data_dirs = [data_dirs]
    cfg = override(train_config or EmbeddingTrainConfig(), steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    spec = EmbeddingSpec(model_config or {}, feature_config or FeatureConfig(), cfg, [str(d) for d in data_dirs])
    last: dict[str, Any] = {"step": 0}

    def on_event(kind: str, record: dict[str, Any]) -> None:
        if kind == "step":
            last.update(record)
            if progress is not None:
                progress(record["step"], spec.train_config.steps, dict(last))
        elif kind == "val":
            last.update({f"valid_{k}": v for k, v in record["val"].items()})

    task = EmbeddingTask(spec)
    solver = Solver(task, out_dir=out_dir, resume=resume, device=device, on_event=on_event, overwrite=overwrite)
    solver.run()
    last["checkpoint"] = str(Path(out_dir) / "checkpoints" / "last.pt")
    last["wall_time_s"] = solver.wall_s
    return last


def describe_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The config of an embedding run's last checkpoint, with its step and training time."""
    from .checkpoints import checkpoint_config

    ckpt = load_checkpoint(run_dir)
    config = checkpoint_config(ckpt, where=Path(run_dir))
    run_config = (
        json.loads((Path(run_dir) / "config.json").read_text()) if (Path(run_dir) / "config.json").is_file() else {}
    )
    return {**run_config, **config, "step": int(ckpt["step"]), "wall_time_s": float(ckpt.get("wall_time_s", 0.0))}
