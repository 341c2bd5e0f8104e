"""Training checkpoints: atomic writes, ``weights_only`` loads, retention of the last few."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import BadInput

_STEP_RE = re.compile(r"step-(\d{9})\.pt$")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then ``os.replace``: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BadInput(f"{path}: not a readable amt training checkpoint ({str(exc).splitlines()[0]})") from None


def step_path(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f"step-{step:09d}.pt"


def prune_checkpoints(checkpoint_dir: Path, *, keep: int) -> None:
    """Delete all but the ``keep`` newest ``step-*.pt`` files (``last.pt`` and ``best.pt`` stay)."""
    steps = sorted(p for p in checkpoint_dir.glob("step-*.pt") if _STEP_RE.search(p.name))
    for p in steps[: max(0, len(steps) - keep)]:
        p.unlink(missing_ok=True)


def open_run(out: Path, *, resume: bool) -> dict[str, Any] | None:
    """The state in ``out/checkpoints/last.pt`` when resuming; ``None`` for a new run, which must not
    land on an existing one."""
    last = out / "checkpoints" / "last.pt"
    if resume:
        if not last.is_file():
            raise BadInput(f"{out}: nothing to resume (no checkpoints/last.pt)")
        return load_checkpoint(last)
    if (out / "config.json").exists() or last.exists():
        raise BadInput(f"{out}: a run is already there (use --resume to continue it, or another --out)")
    return None
