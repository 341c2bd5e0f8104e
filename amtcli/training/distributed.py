"""Several training processes with DistributedDataParallel: gloo on CPU, NCCL on GPUs.

Two ways in, the same code after:

- ``torchrun --nproc-per-node N amt train ...`` (also across nodes): torchrun sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`process_group`
  joins the group those describe.
- ``amt train --nproc N``: :func:`launch` spawns N local processes on a free port and runs a
  function in each, inside the group.

The library never starts a group on its own: :func:`context` reports the one that is running
(rank 0 of 1 without one), and every collective helper here is a no-op in a single process.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

from .. import errors
from ..errors import AmtError, BadInput

TIMEOUT_VAR = "AMT_DDP_TIMEOUT_MIN"  # how long ranks wait for each other (validation runs on rank 0 alone)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context() -> DistContext:
    """The running process group's view of this process (rank 0 of 1 without a group)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistContext()


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when not under torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise BadInput(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def rank_device(device: str, local_rank: int) -> str:
    """``cuda`` -> ``cuda:<local_rank>`` (one GPU per process); other devices unchanged."""
    if device.startswith("cuda"):
        return f"cuda:{local_rank}"
    return device


def _timeout() -> datetime.timedelta:
    return datetime.timedelta(minutes=float(os.environ.get(TIMEOUT_VAR, "120")))


def _init(device: str) -> DistContext:
    backend = "nccl" if device.startswith("cuda") else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise BadInput("multi-process training on cuda needs CUDA; use --device cpu for gloo")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://", timeout=_timeout())
    ctx = context()
    if backend == "gloo" and not os.environ.get("OMP_NUM_THREADS"):
        # share the cores between the processes of this node
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    return ctx


@contextlib.contextmanager
def process_group(device: str) -> Iterator[DistContext]:
    """Join the group torchrun describes (``WORLD_SIZE`` > 1); a single process otherwise."""
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield context()
        return
    ctx = _init(device)
    try:
        yield ctx
        _finish_together()
    finally:
        dist.destroy_process_group()


def _finish_together() -> None:
    """Wait for every rank before the group is torn down: a rank that destroys its group while a peer
    is still finishing (rank 0's last checkpoint and broadcast) can abort that peer inside gloo
    ("terminate called without an active exception", seen once in a full-suite run)."""
    dist.barrier()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, nproc: int, port: int, device: str, fn: Callable, args: tuple, error_dir: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
        }
    )
    _init(device)
    try:
        fn(*args)
        _finish_together()
    except AmtError as exc:
        # The peers of a failing process fail too ("connection closed by peer"), and the launcher
        # sees whichever error comes first; leave the amt error where the launcher looks first.
        with open(os.path.join(error_dir, f"rank-{rank}"), "w") as f:
            f.write(f"amtcli.errors.{type(exc).__name__}: {exc}")
        raise
    finally:
        dist.destroy_process_group()


def launch(fn: Callable, args: tuple = (), *, nproc: int, device: str = "cpu") -> None:
    """Run ``fn(*args)`` in ``nproc`` new local processes that form one group (``fn`` must be
    importable: a module-level function). An amt error in any process is raised here."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise BadInput("--nproc must be >= 1")
    if env_world_size() > 1:
        raise BadInput("--nproc cannot be used under torchrun (torchrun already started the processes)")
    if device.startswith("cuda") and nproc > torch.cuda.device_count():
        raise BadInput(f"--nproc {nproc} on {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="amt-ddp-") as error_dir:
        try:
            mp.spawn(_entry, args=(nproc, free_port(), device, fn, args, error_dir), nprocs=nproc, join=True)
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            reported = sorted(os.listdir(error_dir))
            if reported:
                with open(os.path.join(error_dir, reported[0])) as f:
                    raise _child_error(f.read()) from None
            if isinstance(exc, mp.ProcessExitedException):
                raise AmtError(f"a training process died ({exc})") from None
            raise _child_error(str(exc)) from None


def _child_error(text: str) -> AmtError:
    """The amt error a child raised (its traceback's last line ``amtcli.errors.Class: message``)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    head, _, message = last.partition(": ")
    cls = getattr(errors, head.rsplit(".", 1)[-1], None) if head.startswith("amtcli.errors.") else None
    if isinstance(cls, type) and issubclass(cls, AmtError):
        return cls(message)
    return AmtError(f"a training process failed: {last} (set AMT_DEBUG=1 and run a single process for a traceback)")


# ----------------------------------------------------------------------------- collectives


def barrier() -> None:
    if context().distributed:
        dist.barrier()


def broadcast(obj: Any, *, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (any picklable object)."""
    if not context().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    ctx = context()
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def mean(value: float) -> float:
    """The mean of ``value`` over ranks."""
    ctx = context()
    if not ctx.distributed:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0]) / ctx.world_size


def average_gradients(params, *scalars: float) -> list[float]:
    """Average the gradients of ``params`` over ranks in one flat all-reduce, together with
    ``scalars`` (e.g. the loss); returns the scalars' means. For loops that call a model's methods
    rather than its ``forward`` (which DistributedDataParallel hooks). Parameters without a
    gradient are skipped (the same ones on every rank: the ranks run the same code). A no-op that
    returns ``scalars`` in a single process."""
    ctx = context()
    if not ctx.distributed:
        return list(scalars)
    grads = [p.grad for p in params if p.grad is not None]
    device = grads[0].device if grads else torch.device("cpu")
    flat = torch.cat(
        [g.reshape(-1).float() for g in grads] + [torch.tensor(scalars, dtype=torch.float32, device=device)]
    )
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[offset:].tolist()


def on_main(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and hand its result (or its amt error) to every rank."""
    ctx = context()
    if not ctx.distributed:
        return fn()
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except AmtError as exc:
            error = (type(exc).__name__, str(exc))
    result, error = broadcast((result, error))
    if error is not None:
        cls = getattr(errors, error[0], AmtError)
        raise cls(error[1])
    return result


def sync_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if not context().distributed:
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names and exact tensor bytes, in key order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
