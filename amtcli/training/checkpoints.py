"""Run folders and training checkpoints: the on-disk format of a training run, owned here.

Layout of a run folder (every model's training writes the same)::

    RUN/config.json               the resolved run (architecture, model, features, train, ...), written
                                  once the data is loaded, just before the first step
    RUN/metrics.jsonl             one JSON object per logged step / validation / event
    RUN/checkpoints/best.pt       the state with the best validation score
    RUN/checkpoints/step-*.pt     the last few states
    RUN/checkpoints/last.pt       the newest state: resume from here

A checkpoint is a dict for ``torch.load(..., weights_only=True)``: the modules' state dicts
(``model``, ``discriminator``...), ``optimizer``, ``step``, the best score so far, every rank's
random generators, and ``config`` (the run's JSON). Files are written atomically (a temporary
file, then ``os.replace``), best first and ``last.pt`` last: ``last.pt`` is the commit point, so
it never claims a best checkpoint that is not on disk, and a crash at any moment leaves a run
that resumes.

A folder *holds a run* once it has ``last.pt`` or a ``step-*.pt``. A folder with ``config.json``
and no such checkpoint is a failed start (the process died before its first checkpoint was
committed): a new run may start there, and ``--resume`` starts it from step 0.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import BadInput, OutputExists

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
LAST, BEST = "last.pt", "best.pt"
_STEP_RE = re.compile(r"step-(\d{9})\.pt$")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then ``os.replace``: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A training checkpoint as a dict; any file that is not one is a one-line :class:`BadInput` naming it."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: empty file, not an amt training checkpoint (cut short by a crash?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise BadInput(f"{path}: not a readable amt training checkpoint ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise BadInput(f"{path}: not an amt training checkpoint (a {type(state).__name__}, not a dict)")
    return state


def checkpoint_config(state: dict[str, Any], *, where: Path) -> dict[str, Any]:
    """The run config stored in a checkpoint (a JSON string; a dict in early embedding runs)."""
    config = state.get("config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{where}: the checkpoint's config is not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise BadInput(f"{where}: not an amt training checkpoint (no run config with an architecture)")
    return config


def check_state(state: dict[str, Any], *, where: Path, modules: tuple[str, ...] = ("model",)) -> None:
    """Refuse a checkpoint dict without the entries a resume reads, in one line naming the file."""
    missing = [k for k in (*modules, "optimizer", "step") if k not in state]
    if missing:
        raise BadInput(f"{where}: damaged training checkpoint (no {', '.join(repr(k) for k in missing)})")
    for name in modules:
        part = state[name]
        if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
            raise BadInput(f"{where}: damaged training checkpoint ({name!r} is not a dict of tensors)")
    if not isinstance(state["optimizer"], dict):
        raise BadInput(f"{where}: damaged training checkpoint ('optimizer' is not a dict)")
    if isinstance(state["step"], bool) or not isinstance(state["step"], int) or state["step"] < 0:
        raise BadInput(f"{where}: damaged training checkpoint (step {state['step']!r})")


def load_module_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], *, where: Path, part: str = "model"
) -> None:
    """``load_state_dict(strict=True)`` after checking names and shapes, with one line naming the file."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise BadInput(
            f"{where}: the {part} weights do not fit the run's architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise BadInput(
                f"{where}: the {part} weight {name!r} has shape {tuple(state[name].shape)}, the run's architecture {tuple(tensor.shape)}"
            )
    module.load_state_dict(state, strict=True)


def step_path(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f"step-{step:09d}.pt"


def prune_checkpoints(checkpoint_dir: Path, *, keep: int) -> None:
    """Delete all but the ``keep`` newest ``step-*.pt`` files (``last.pt`` and ``best.pt`` stay)."""
    steps = sorted(p for p in checkpoint_dir.glob("step-*.pt") if _STEP_RE.search(p.name))
    for p in steps[: max(0, len(steps) - keep)]:
        p.unlink(missing_ok=True)


def remove_stale_temporaries(checkpoint_dir: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a crash interrupted."""
    stale = sorted(checkpoint_dir.glob(".*.pt.tmp")) if checkpoint_dir.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _step_files(checkpoint_dir: Path) -> list[Path]:
    return (
        sorted(p for p in checkpoint_dir.glob("step-*.pt") if _STEP_RE.search(p.name))
        if checkpoint_dir.is_dir()
        else []
    )


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds a run: it has ``last.pt`` or a ``step-*.pt`` (a best.pt alone is what
    a process killed in its first checkpoint write leaves)."""
    return (out / CHECKPOINT_DIR / LAST).exists() or bool(_step_files(out / CHECKPOINT_DIR))


def open_run(out: Path, *, resume: bool, overwrite: bool = False) -> tuple[dict[str, Any] | None, Path | None]:
    """Open the run folder ``out``: ``(state, its path)`` of the checkpoint to resume from when
    resuming a run (``last.pt``; the newest ``step-*.pt`` if a kill came between the two), else
    ``(None, None)`` for a run that starts at step 0.

    A new run must not land on a run (unless ``overwrite``, which deletes its checkpoints and
    metrics); ``resume`` needs a run, or a failed start, to continue. Stale temporary checkpoints
    are deleted, and what a failed start left (metrics, a first best.pt) too.
    """
    ckpts = out / CHECKPOINT_DIR
    remove_stale_temporaries(ckpts)
    steps = _step_files(ckpts)
    if resume and (ckpts / LAST).is_file():
        return load_checkpoint(ckpts / LAST), ckpts / LAST
    if resume and steps:
        return load_checkpoint(steps[-1]), steps[-1]
    if holds_run(out):
        if not overwrite:
            raise OutputExists(f"{out}: a run is already there (use --resume to continue it, or another --out)")
        for p in list(ckpts.glob("*.pt")):
            p.unlink()
    elif resume and not ((out / CONFIG_NAME).is_file() or (ckpts / BEST).is_file()):
        raise BadInput(f"{out}: nothing to resume (no {CHECKPOINT_DIR}/{LAST})")
    (ckpts / BEST).unlink(missing_ok=True)  # a failed start's first checkpoint, never committed
    (out / METRICS_NAME).unlink(missing_ok=True)  # a failed start's (or an overwritten run's) records
    return None, None


def trim_metrics(path: Path, *, step: int) -> None:
    """Make a resumed run's metrics log end where its checkpoint is: drop a line cut short by a
    crash and the records of steps after ``step`` (they are logged again as training goes on)."""
    if not path.is_file():
        return
    keep, changed = [], False
    with path.open("rb") as f:
        for raw in f:
            try:
                record = json.loads(raw)
                ok = raw.endswith(b"\n") and not (
                    isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step
                )
            except (json.JSONDecodeError, UnicodeDecodeError):
                ok = False
            if ok:
                keep.append(raw)
            else:
                changed = True
    if changed:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(b"".join(keep))
        os.replace(tmp, path)


def write_config(out: Path, config: dict[str, Any]) -> None:
    """``RUN/config.json``, atomically."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{CONFIG_NAME}.tmp"
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, out / CONFIG_NAME)


def append_metrics(out: Path, record: dict[str, Any]) -> None:
    with (out / METRICS_NAME).open("a") as f:
        f.write(json.dumps(record) + "\n")
