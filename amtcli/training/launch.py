"""Train any model's run on one process, on ``nproc`` spawned local processes, or under torchrun.

:func:`train` picks the model's training (a :class:`~amtcli.training.solver.Task`) from the spec:
:class:`~amtcli.training.loop.RunSpec` (the U-Net), :class:`~amtcli.training.seq2seq.Seq2SeqSpec`
(the token Transformer) or :class:`~amtcli.training.embedding.EmbeddingSpec`.
:func:`run_training` adds the processes (:mod:`amtcli.training.distributed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import distributed as ddp
from .solver import Callback

# progress(run, total_steps=N): rank 0 calls it with ``run(on_event)``, which trains; it returns what run returns
Progress = Callable[..., Any]


def task_for(spec, *, initial_state=None, cache: bool = False):
    """The training task of ``spec``'s model."""
    from .embedding import EmbeddingSpec, EmbeddingTask
    from .loop import TranscriberTask
    from .seq2seq import Seq2SeqSpec, Seq2SeqTask

    if isinstance(spec, EmbeddingSpec):
        return EmbeddingTask(spec)
    if isinstance(spec, Seq2SeqSpec):
        return Seq2SeqTask(spec)
    return TranscriberTask(spec, initial_state=initial_state, cache=cache)


def train(
    spec,
    *,
    out_dir: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    on_event: Callback | None = None,
    initial_state=None,
    cache: bool = False,
    validate_first: bool = False,
    overwrite: bool = False,
) -> Path:
    """Train (or resume) the run of ``spec`` in ``out_dir`` in this process (one rank of a group, or
    alone). Returns the path of ``best.pt``."""
    from .solver import Solver

    task = task_for(spec, initial_state=initial_state, cache=cache)
    solver = Solver(
        task,
        out_dir=out_dir,
        resume=resume,
        device=device,
        on_event=on_event,
        validate_first=validate_first,
        overwrite=overwrite,
    )
    return solver.run()


def _worker(
    spec,
    out: Path,
    resume: bool,
    device: str,
    initial_state,
    cache: bool,
    validate_first: bool,
    progress: Progress | None,
):
    """One process's training; rank 0 shows the progress."""
    ctx = ddp.context()
    dev = ddp.rank_device(device, ctx.local_rank)

    def run(on_event: Callback | None = None) -> Path:
        return train(
            spec,
            out_dir=out,
            resume=resume,
            device=dev,
            on_event=on_event,
            initial_state=initial_state,
            cache=cache,
            validate_first=validate_first,
        )

    if ctx.is_main and progress is not None:
        return progress(run, total_steps=spec.train_config.steps)
    return run()


def run_training(
    spec,
    *,
    out: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    nproc: int = 1,
    initial_state=None,
    cache: bool = False,
    validate_first: bool = False,
    progress: Progress | None = None,
) -> tuple[Path, bool]:
    """Train on ``nproc`` spawned processes, under torchrun (``WORLD_SIZE`` > 1), or here.

    ``progress(run, total_steps=N)`` is called on rank 0 with ``run(on_event)``, the training
    itself (a module-level function, so that spawned processes can receive it).
    Returns ``(best checkpoint, is_main)``: under torchrun only rank 0 goes on to export and report.
    """
    out = Path(out)
    args = (spec, out, resume, device, initial_state, cache, validate_first, progress)
    if nproc > 1:
        ddp.launch(_worker, args, nproc=nproc, device=device)
        return out / "checkpoints" / "best.pt", True
    with ddp.process_group(device) as ctx:
        best = _worker(*args)
    return best, ctx.is_main
