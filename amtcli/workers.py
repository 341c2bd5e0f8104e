"""Worker processes that never outlive the command that started them.

A worker pool's children are normally re-parented when the parent is killed (``kill -9``, the OOM
killer) and go on working from what is already queued: rendering items no manifest will list,
racing a rerun for the same temporary file names. :func:`die_with_parent`, called first in every
worker initializer, asks Linux to kill the worker with the parent (``PR_SET_PDEATHSIG``), and exits
at once if the parent is already gone; :func:`dying_with_parent` does the same for an external
program a worker runs. On other systems they do nothing.
"""

from __future__ import annotations

import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have this process receive SIGKILL when its parent dies; exit now if ``parent_pid`` is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: the parent check below still helps
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


# Run as ``python -S -c _SHIM PARENT_PID PROGRAM ARGS...``: arm PR_SET_PDEATHSIG, then become PROGRAM
# (the setting survives exec), so an external program dies with the worker that started it.
_SHIM = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped so that the program it starts is killed when this process dies (Linux; elsewhere
    ``cmd`` unchanged). For external programs started by worker processes (FluidSynth), which would
    otherwise render on for nobody after a ``kill -9``."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-S", "-c", _SHIM, str(os.getpid()), *map(str, cmd)]


def threads_per_worker(jobs: int, *, cores: int | None = None) -> int:
    """Torch threads for each of ``jobs`` workers sharing the machine: ``max(1, cores // jobs)``."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, jobs))
