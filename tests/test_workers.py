"""Worker processes and the programs they start die with the command that started them (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _kill_middle_and_watch(code: str) -> None:
    """Run ``code`` in a process that starts a grandchild and prints its pid; kill -9 that process;
    the grandchild must be gone within a second (without the fix it sleeps on for a minute)."""
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = int(middle.stdout.readline())
    try:
        assert _alive(grandchild)
        middle.send_signal(signal.SIGKILL)
        middle.wait()
        deadline = time.monotonic() + 1.0
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(grandchild), "the grandchild outlived the process that started it"
    finally:
        if _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)
        middle.stdout.close()


def test_a_worker_dies_with_its_parent():
    _kill_middle_and_watch(
        "import multiprocessing as mp, os, time\n"
        "from amtcli.workers import die_with_parent\n"
        "def work(parent):\n"
        "    die_with_parent(parent)\n"
        "    time.sleep(60)\n"
        "p = mp.get_context('fork').Process(target=work, args=(os.getpid(),))\n"
        "p.start()\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )


def test_a_program_started_by_a_worker_dies_with_it():
    _kill_middle_and_watch(
        "import subprocess, time\n"
        "from amtcli.workers import dying_with_parent\n"
        "p = subprocess.Popen(dying_with_parent(['sleep', '60']))\n"
        "time.sleep(0.3)  # the shim has become sleep\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )


def test_the_wrapped_program_runs_as_given(tmp_path):
    from amtcli.workers import dying_with_parent

    out = subprocess.run(dying_with_parent(["sh", "-c", "echo $0 $1", "a b", "c"]), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "a b c\n"


def test_threads_per_worker():
    from amtcli.workers import threads_per_worker

    assert threads_per_worker(1, cores=2) == 2
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(3, cores=2) == 1
    assert threads_per_worker(2, cores=16) == 8
