"""One training skeleton for every model (in the manner of demucs' ``solver.py``).

A model's training is a :class:`Task`: it builds its modules, loads its data, draws a batch,
computes the loss and validates. :class:`Solver` does everything else, the same way for the U-Net
(:mod:`.loop`), the token Transformer (:mod:`.seq2seq`) and the embedding (:mod:`.embedding`):

- opens or resumes the run folder (:mod:`.checkpoints`); a resumed run must have the same
  architecture, model and features, compared by :func:`same_config` (immune to tuple/list and key
  order); the schedule (``--steps``...) is the one asked for now;
- seeds the generators: ``numpy`` per rank (``seed + rank``), torch and ``random`` with ``seed``
  before the weights are built (every rank starts from the same weights), torch with ``seed + rank``
  after (dropout differs per rank); every rank's generators go into each checkpoint, so a resumed
  run continues exactly;
- precision from :func:`amtcli.devices.resolve_precision` (autocast; a gradient scaler for fp16);
- the optimizer step: the task's learning rate, gradient clipping before the step, a non-finite loss
  stops the run with one line;
- the metrics log (``metrics.jsonl``), validation every ``val_every`` steps and at the end of a
  phase, ``best.pt`` for the best validation score (written before ``last.pt``), ``step-*.pt``;
- DistributedDataParallel (torchrun or :mod:`.launch`): the task's model wrapped, or its gradients
  averaged over the ranks after each backward pass; rank 0 alone validates and writes files; at
  the end every replica must hold the same weights.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BadInput
from . import checkpoints as ck
from . import distributed as ddp

Callback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Schedule:
    """What the solver needs of a task's training config."""

    steps: int
    seed: int = 0
    precision: str = "auto"
    threads: int = 0  # 0: torch's default
    val_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    clip_grad: float | None = None

    @classmethod
    def of(cls, c: Any) -> Schedule:
        """The schedule of a transcriber's :class:`~amtcli.config.TrainConfig` (U-Net and Transformer)."""
        return cls(
            steps=c.steps,
            seed=c.seed,
            precision=c.precision,
            threads=c.threads,
            val_every=c.val_every,
            checkpoint_every=c.checkpoint_every,
            keep_checkpoints=c.keep_checkpoints,
            clip_grad=c.clip_grad,
        )


def canonical(value: Any) -> Any:
    """``value`` as JSON would give it back: tuples become lists, dataclasses dicts, integral floats ints."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def same_config(a: Any, b: Any) -> bool:
    """Whether two configs are equal as JSON values, whatever their key order and tuple/list spelling."""
    return json.dumps(canonical(a), sort_keys=True) == json.dumps(canonical(b), sort_keys=True)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "numpy": json.dumps(rng.bit_generator.state),
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
    }


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def restore_rank_rng(
    rng: np.random.Generator, state: dict[str, Any], *, ctx: ddp.DistContext, seed: int, step: int
) -> np.random.Generator:
    """This rank's random generators from a checkpoint (``rng_ranks`` holds every rank's under DDP).
    Resumed with more processes than the run had, the new ranks continue from fresh generators:
    the run goes on, but not bit-exactly."""
    ranks = state.get("rng_ranks")
    if ctx.distributed and ranks is not None and len(ranks) == ctx.world_size:
        set_rng_state(rng, ranks[ctx.rank])
    elif ctx.rank == 0 and "rng" in state:
        set_rng_state(rng, state["rng"])
    elif ctx.rank == 0 and "torch_rng" in state:  # embedding runs before the common skeleton
        torch.set_rng_state(state["torch_rng"])
    else:
        rng = np.random.default_rng([seed + ctx.rank, step])
    return rng


class Task:
    """What one model contributes to training. Subclasses set the attributes and override the
    methods marked *model*; the others have defaults that suit a single-phase run."""

    architecture: str = ""
    score: str = "note_f1"  # the validation score best.pt keeps (higher is better)
    best_key: str = "best_f1"  # its name in checkpoints, validation records and events
    ddp_wrap: bool = (
        True  # DistributedDataParallel around ``model`` (its forward); else gradients are averaged after backward
    )
    rate_keys: tuple[str, ...] = ()  # per-step counts in loss records, logged as "<key>_per_s" (summed over ranks)

    # -- the run's config (model)
    def schedule(self) -> Schedule:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The run config (``config.json`` and every checkpoint)."""
        raise NotImplementedError

    def resume_from(self, saved: dict[str, Any], *, where: Path) -> None:
        """Check that the run in ``saved`` (its config) is this one; adopt what it fixed."""
        raise NotImplementedError

    def check_same_model(self, saved: dict[str, Any], *, where: Path, model_config: Any, feature_config: Any) -> None:
        """The common resume check: same architecture, model and features. Both sides are read
        through their config classes first, so a field added since the run started (with its
        default) is no difference."""
        from ..config import FeatureConfig, from_dict
        from ..nets import model_config_class

        def read(cls, value):
            try:
                return value if not isinstance(value, dict) else from_dict(cls, value)
            except BadInput as exc:
                raise BadInput(f"{where}: {exc}") from None

        different = f"{where.parent.parent}: --resume with a different model or features than the run was started with"
        if saved.get("architecture") != self.architecture:
            raise BadInput(different)
        cls = model_config_class(self.architecture)
        if not same_config(read(cls, saved.get("model_config")), read(cls, model_config)):
            raise BadInput(different)
        if not same_config(read(FeatureConfig, saved.get("feature_config")), read(FeatureConfig, feature_config)):
            raise BadInput(different)

    # -- modules and data (model)
    def build(self, solver: Solver) -> dict[str, torch.nn.Module]:
        """The modules to train and checkpoint, by name (``model`` first), on ``solver.device``."""
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]

    def optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    def load_data(self, solver: Solver) -> dict[str, Any]:
        """Read the data (validation items on rank 0 only); returns counts for the start event."""
        raise NotImplementedError

    def has_validation(self) -> bool:
        return False

    # -- one step (model)
    def lr(self, step: int) -> float:
        raise NotImplementedError

    def batch(self, rng: np.random.Generator, step: int) -> Any:
        raise NotImplementedError

    def loss(self, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss of one batch and what to log of it; the forward pass runs in ``self.autocast()``."""
        raise NotImplementedError

    def batch_bytes(self, batch: Any) -> bytes:
        """The input of a batch, for the check that every rank trained on other data."""
        return b""

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    # -- phases and state (defaults: one phase of ``schedule().steps`` steps)
    def next_phase(self, solver: Solver) -> bool:
        """Called before each step: whether to train another step."""
        return solver.step < self.schedule().steps

    def phase_end(self, step: int) -> bool:
        return step == self.schedule().steps

    def planned_steps(self, step: int) -> int:
        return max(step, self.schedule().steps)

    def validation_extra(self) -> dict[str, Any]:
        return {}

    def after_validation(self, solver: Solver, improved: bool) -> None:
        pass

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def train_mode(self) -> None:
        for m in self.modules.values():
            m.train()

    def start_info(self) -> dict[str, Any]:
        return {}

    def finish(self, solver: Solver) -> None:
        """After the last step, on rank 0 (e.g. choosing decoding thresholds)."""

    # set by the solver
    modules: dict[str, torch.nn.Module]
    net: torch.nn.Module  # ``modules["model"]``, or its DistributedDataParallel wrapper
    resuming: bool = False  # whether the run continues from a checkpoint (set before ``build``)
    autocast: Callable[[], Any]  # the precision's autocast context for the run's device


class Solver:
    """Train ``task`` in ``out_dir`` (a new run, or ``resume`` the one there). ``on_event(kind, record)``
    reports progress on rank 0: start, status, load, step, val, done (and the task's own kinds)."""

    def __init__(
        self,
        task: Task,
        *,
        out_dir: str | os.PathLike,
        resume: bool = False,
        device: str = "cpu",
        on_event: Callback | None = None,
        validate_first: bool = False,
        overwrite: bool = False,
    ):
        self.task = task
        self.out = Path(out_dir)
        self.ckpt_dir = self.out / ck.CHECKPOINT_DIR
        self.resume = resume
        self.device = device
        self.validate_first = validate_first
        self.overwrite = overwrite
        self.ctx = ddp.context()
        self._on_event = on_event if self.ctx.is_main else None
        self.step = 0
        self.best = -1.0
        self.wall_s = 0.0
        self.has_val = False
        self.rng = np.random.default_rng(0)
        self.precision = None

    # -- reporting
    def emit(self, kind: str, record: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(kind, record)

    def log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            ck.append_metrics(self.out, record)

    def autocast(self):
        return self.precision.autocast(self.device)

    def write_config(self) -> None:
        if self.ctx.is_main:
            ck.write_config(self.out, self.task.to_json())

    # -- run folder
    def _open(self) -> tuple[dict[str, Any] | None, Path | None]:
        """On rank 0: the checkpoint to resume from (checked), after the task has adopted its config."""
        state, where = ck.open_run(self.out, resume=self.resume, overwrite=self.overwrite)
        if state is None:
            return None, None
        saved = ck.checkpoint_config(state, where=where)
        self.task.resume_from(saved, where=where)
        return state, where

    def checkpoint(self, *, best: bool) -> None:
        """Write ``best.pt`` (if ``best``), ``step-N.pt`` and ``last.pt``, in that order."""
        rng_states = ddp.all_gather(rng_state(self.rng))  # every rank's generators, for an exact resume
        if not self.ctx.is_main:
            return
        payload = {name: module.state_dict() for name, module in self.task.modules.items()}
        payload.update(
            {
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                self.task.best_key: self.best,
                "rng": rng_states[0],
                "config": json.dumps(self.task.to_json()),
                "wall_time_s": self.wall_s,
                **self.task.extra_state(),
            }
        )
        if self.ctx.distributed:
            payload["rng_ranks"] = rng_states
        if best:
            ck.save_checkpoint(payload, self.ckpt_dir / ck.BEST)
        ck.save_checkpoint(payload, ck.step_path(self.ckpt_dir, self.step))
        ck.save_checkpoint(payload, self.ckpt_dir / ck.LAST)  # the commit point: written last
        ck.prune_checkpoints(self.ckpt_dir, keep=self.schedule.keep_checkpoints)

    def validation(self) -> None:
        task = self.task
        rec = None
        if self.ctx.is_main:
            scores = task.validate()
            value = float(scores[task.score])
            rec = {
                "step": self.step,
                "val": scores,
                task.best_key: max(self.best, value),
                "improved": value > self.best,
                **task.validation_extra(),
            }
        rec = ddp.broadcast(rec)  # the others wait here while rank 0 validates
        improved = rec.pop("improved")
        self.best = rec[task.best_key]
        self.log(rec)
        self.emit("val", {**rec, "metric": task.score, "best": self.best})
        task.after_validation(self, improved)
        self.checkpoint(best=improved)

    # -- the run
    def run(self) -> Path:
        """Train to the end of the schedule; returns the path of ``best.pt``."""
        from ..devices import resolve_precision

        task, ctx = self.task, self.ctx
        self.schedule = sched = task.schedule()
        if sched.threads:
            torch.set_num_threads(sched.threads)
        state, where = ddp.on_main(self._open)  # rank 0 reads the run; every rank gets the same state
        if state is not None and not ctx.is_main:
            task.resume_from(ck.checkpoint_config(state, where=where), where=where)
        sched = self.schedule = task.schedule()  # a resumed run's task may have adopted settings
        self.precision = resolve_precision(sched.precision, self.device)  # before seeding: it may measure

        self.rng = np.random.default_rng(sched.seed + ctx.rank)  # each rank draws its own batches
        torch.manual_seed(sched.seed)
        random.seed(sched.seed)
        task.resuming = resumed = state is not None
        task.autocast = self.autocast
        task.modules = task.build(self)
        if ctx.distributed:
            torch.manual_seed(sched.seed + ctx.rank)  # dropout differs per rank; the weights start equal
        self.optimizer = task.optimizer()
        if state is not None:
            self._restore(state, where)
            del state
        task.net = task.modules["model"]
        if ctx.distributed and task.ddp_wrap:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            task.net = DistributedDataParallel(task.modules["model"], device_ids=ids)

        if self.resume and not resumed:
            self.emit("status", {"message": f"{self.out} has no checkpoint yet: starting the run from step 0"})
        self.emit("status", {"message": "loading training data"})
        counts = task.load_data(self)
        self.has_val = bool(ddp.broadcast(task.has_validation()))
        self.write_config()
        if ctx.is_main and self.step:
            ck.trim_metrics(self.out / ck.METRICS_NAME, step=self.step)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.scaler)
        self.emit(
            "start",
            {
                "step": self.step,
                "steps": task.planned_steps(self.step),
                **counts,
                "precision": str(self.precision),
                "processes": ctx.world_size,
                **task.start_info(),
            },
        )
        if self.validate_first and self.has_val and self.step == 0:
            self.validation()  # where training starts from (the zero-shot score when fine-tuning)
        self._train()
        self._end()
        return self.ckpt_dir / ck.BEST

    def _restore(self, state: dict[str, Any], where: Path) -> None:
        task = self.task
        ck.check_state(state, where=where, modules=tuple(task.modules))
        for name, module in task.modules.items():
            ck.load_module_state(module, state[name], where=where, part=name)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
            self.best = float(state.get(task.best_key, -1.0))
            self.wall_s = float(state.get("wall_time_s", 0.0))
            task.load_extra_state(state)
            self.rng = restore_rank_rng(self.rng, state, ctx=self.ctx, seed=self.schedule.seed, step=self.step)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, json.JSONDecodeError) as exc:
            raise BadInput(f"{where}: damaged training checkpoint ({ck.first_line(exc)})") from None

    def _train(self) -> None:
        task, ctx, sched = self.task, self.ctx, self.schedule
        params = task.parameters()
        data_crc = 0  # what this rank trained on (ranks must differ)
        rates = dict.fromkeys(task.rate_keys, 0)
        task.train_mode()
        t_last, steps_since = time.perf_counter(), 0
        while task.next_phase(self):
            t0 = time.perf_counter()
            batch = task.batch(self.rng, self.step)
            if ctx.distributed:
                data_crc = zlib.crc32(task.batch_bytes(batch), data_crc)
            lr = task.lr(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss, record = task.loss(batch, self.step)
            loss_value = float(loss.detach())
            if not ctx.distributed and not math.isfinite(loss_value):
                raise BadInput(f"the loss became {loss_value} at step {self.step}: lower --lr or check the data")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if ctx.distributed and not task.ddp_wrap:
                # mean over ranks of the gradients and the loss (a non-finite loss on any rank stops every rank)
                (loss_value,) = ddp.average_gradients(params, loss_value)
                if not math.isfinite(loss_value):
                    raise BadInput(f"the loss became {loss_value} at step {self.step}: lower --lr or check the data")
            self.scaler.unscale_(self.optimizer)
            grad_norm = None
            if sched.clip_grad is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, sched.clip_grad))  # before the step
                if ctx.distributed and task.ddp_wrap and not self.scaler.is_enabled() and not math.isfinite(grad_norm):
                    # gradients are averaged over ranks, so every rank stops here together
                    raise BadInput(
                        f"the gradients became {grad_norm} at step {self.step}: lower --lr or check the data"
                    )
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            steps_since += 1
            self.wall_s += time.perf_counter() - t0
            for k in rates:
                rates[k] += int(record.pop(k, 0)) * ctx.world_size
            now = time.perf_counter()
            record = {"step": self.step, "loss": loss_value, **record, "lr": lr}
            if grad_norm is not None:
                record["grad_norm"] = grad_norm
            phase_end = task.phase_end(self.step)
            if self.step % sched.log_every == 0 or phase_end:
                elapsed = max(1e-9, now - t_last)
                record["steps_per_s"] = steps_since / elapsed
                for k in rates:
                    record[f"{k}_per_s"] = rates[k] / elapsed
                    rates[k] = 0
                record["wall_time_s"] = self.wall_s
                t_last, steps_since = now, 0
                if ctx.distributed and task.ddp_wrap:
                    record["loss"] = ddp.mean(record["loss"])  # over ranks
                self.log(record)
            if self.has_val and (self.step % sched.val_every == 0 or phase_end):
                self.validation()
            elif self.step % sched.checkpoint_every == 0 or phase_end:
                self.checkpoint(best=not self.has_val and phase_end)
            self.emit("step", record)
        self._data_crc = data_crc

    def _end(self) -> None:
        task, ctx = self.task, self.ctx
        if not ddp.on_main(lambda: (self.ckpt_dir / ck.BEST).exists()):
            self.checkpoint(best=True)
        if ctx.distributed:  # every replica must hold the same weights: check, and say what each rank saw
            weights: dict[str, torch.Tensor] = {}
            for name, module in task.modules.items():
                ddp.sync_buffers(module)
                weights.update({k if name == "model" else f"{name}.{k}": v for k, v in module.state_dict().items()})
            replicas = ddp.all_gather(
                {"rank": ctx.rank, "weights_sha256": ddp.state_checksum(weights), "data_crc32": self._data_crc}
            )
            self.log({"step": self.step, "replicas": replicas})
            if len({r["weights_sha256"] for r in replicas}) != 1:
                raise RuntimeError(f"the {ctx.world_size} training processes ended with different weights")
            if not ctx.is_main:
                return
        task.finish(self)
        self.emit("done", {"step": self.step, task.best_key: self.best, "best": self.best, "metric": task.score})
