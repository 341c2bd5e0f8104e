"""Fault injection: ``kill -9`` of `amt transcribe` and `amt synth --workers 2` at random points, then a
rerun, then integrity checks (issue 20). A kill may land anywhere: before, between or inside writes.

After the kill no worker of the killed command may live on (they would write files nobody lists
and race the rerun). After the rerun the outputs are complete and identical to an undisturbed run:
no partial file, no stale temporary file, no file a manifest does not list.

(`amt train` is killed and resumed in the training tests, which own its run folders.)
Seeded; the kill points are random in the window where the command does its work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import render_sines

from amtcli.audio.io import load_audio, save_audio
from amtcli.notes import NoteArray, midi_to_notes, notes_to_midi

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills and /proc: Linux")

AMT = [sys.executable, "-c", "import sys; from amtcli.cli import app; sys.argv[0] = 'amt'; app()"]
SR = 16000


def start(args, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "AMT_PROGRESS": ""}
    return subprocess.Popen(
        [*AMT, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run(args, cwd: Path) -> subprocess.CompletedProcess:
    proc = start(args, cwd)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def kill_when(proc: subprocess.Popen, ready, *, delay_s: float, timeout_s: float = 120.0) -> set[int]:
    """Wait until ``ready()`` (the command has started its work), then ``delay_s`` more, then SIGKILL
    the command. Returns the processes it had started. Asserts none of them outlives it by 1 s (SIGKILL from the kernel takes milliseconds)."""
    t0 = time.monotonic()
    while not ready() and proc.poll() is None and time.monotonic() - t0 < timeout_s:
        time.sleep(0.02)
    time.sleep(delay_s)
    children = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # not communicate(): that would wait for orphans holding the output pipes
    deadline = time.monotonic() + 1.0
    while any(alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [c for c in children if alive(c)]
    for c in survivors:  # do not leave them running after a failed test
        os.kill(c, signal.SIGKILL)
    proc.communicate()
    assert not survivors, f"{len(survivors)} worker(s) outlived the killed command"
    return children


def no_temp_files(folder: Path) -> None:
    temps = [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]
    assert not temps, temps


# ------------------------------------------------------------------------------------- transcribe


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Eight short recordings in a folder with a sub-folder."""
    root = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(7)
    for i in range(8):
        rows = [(0.1 + 0.3 * k, 0.35 + 0.3 * k, int(rng.integers(48, 84)), 90) for k in range(5)]
        save_audio(
            root / ("sub" if i % 2 else ".") / f"r{i}.wav",
            render_sines(NoteArray.from_lists(rows), duration_s=1.8),
            sample_rate=SR,
        )
    return root


DECODE = ["--onset-threshold", "0.465", "--frame-threshold", "0.505"]  # inside the tiny model's range: notes come out


@pytest.fixture(scope="module")
def reference(recordings, tmp_path_factory):
    """The undisturbed run, one file after another (in this process: no second torch import)."""
    from typer.testing import CliRunner

    from amtcli.cli import app

    out = tmp_path_factory.mktemp("ref") / "out"
    r = CliRunner().invoke(
        app,
        [
            "transcribe",
            str(recordings),
            "-o",
            str(out),
            "-m",
            "tiny-test",
            "--device",
            "cpu",
            "--format",
            "json",
            *DECODE,
        ],
    )
    assert r.exit_code == 0, r.output
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.json")}


def test_kill_transcribe_then_rerun(recordings, reference, tmp_path, seed=0):
    """kill -9 of `amt transcribe --jobs 2` (its workers must die with it), then a rerun one by one."""
    rng = np.random.default_rng(seed)
    out = tmp_path / "out"
    args = ["transcribe", recordings, "-o", out, "-m", "tiny-test", "--device", "cpu", "--format", "json", *DECODE]
    proc = start([*args, "--jobs", 2], cwd=tmp_path)
    kill_when(proc, lambda: any(out.rglob("*.json")), delay_s=float(rng.uniform(0.0, 1.5)))
    for path in out.rglob("*.json"):  # whatever is there is complete: atomic writes
        assert path.read_bytes() == reference[path.relative_to(out).as_posix()]
    r = run([*args, "--skip-existing"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.json")}
    assert got == reference
    no_temp_files(out)


def test_a_killed_worker_costs_nothing(recordings, reference, tmp_path):
    """kill -9 of one `--jobs 2` worker: its file is tried again and the batch ends complete."""
    out = tmp_path / "out"
    proc = start(
        [
            "transcribe",
            recordings,
            "-o",
            out,
            "-m",
            "tiny-test",
            "--device",
            "cpu",
            "--format",
            "json",
            "--jobs",
            2,
            *DECODE,
        ],
        cwd=tmp_path,
    )
    t0 = time.monotonic()
    while not any(out.rglob("*.json")) and proc.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.02)
    workers = [
        p for p in descendants(proc.pid) if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
    ]
    assert workers, "no worker processes found"
    os.kill(max(workers), signal.SIGKILL)
    out_text, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.json")}
    assert got == reference
    no_temp_files(out)


# ------------------------------------------------------------------------------------------ synth


@pytest.fixture(scope="module")
def synth_inputs(tmp_path_factory):
    """16 small MIDI files and a one-shot bank of sines (no FluidSynth needed)."""
    root = tmp_path_factory.mktemp("synth-in")
    rng = np.random.default_rng(3)
    for k in range(16):
        rows = [(0.05 + 0.15 * i, 0.2 + 0.15 * i, int(rng.integers(50, 80)), 90) for i in range(6)]
        notes_to_midi(NoteArray.from_lists(rows), root / "midi" / f"p{k:02d}.mid")
    bank = root / "bank"
    bank.mkdir()
    t = np.arange(SR) / SR
    lines = ["file,pitch,velocity,timbre"]
    for pitch in range(48, 88, 6):
        f = 440.0 * 2 ** ((pitch - 69) / 12)
        save_audio(
            bank / f"s{pitch}.wav",
            (0.4 * np.sin(2 * np.pi * f * t) * np.exp(-3 * t)).astype(np.float32),
            sample_rate=SR,
        )
        lines.append(f"s{pitch}.wav,{pitch},100,sine")
    (bank / "oneshots.csv").write_text("\n".join(lines) + "\n")
    return root


def synth_args(inputs: Path, out: Path) -> list:
    return [
        "synth",
        inputs / "midi",
        "-o",
        out,
        "--renderer",
        "oneshot",
        "--oneshots",
        inputs / "bank",
        "--excerpt-s",
        "1",
        "-k",
        "2",
        "--workers",
        "2",
    ]


def check_dataset(out: Path) -> dict[str, dict]:
    """The folder holds exactly what its manifest lists, every file readable; returns the records by id."""
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    listed = {r[k] for r in rows for k in ("audio", "label", "features") if r.get(k)}
    on_disk = {
        p.relative_to(out).as_posix()
        for sub in ("audio", "labels", "features")
        for p in (out / sub).rglob("*")
        if p.is_file()
    }
    assert on_disk == listed, f"unlisted: {sorted(on_disk - listed)[:5]}, missing: {sorted(listed - on_disk)[:5]}"
    for r in rows:
        assert len(load_audio(out / r["audio"])) > 0
        assert len(midi_to_notes(out / r["label"])) == r["n_notes"]
    no_temp_files(out)
    return {r["id"]: r for r in rows}


@pytest.fixture(scope="module")
def synth_reference(synth_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-ref") / "ds"
    t0 = time.monotonic()
    r = run(synth_args(synth_inputs, out), cwd=out.parent)
    assert r.returncode == 0, r.stderr
    return check_dataset(out), time.monotonic() - t0


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_synth_workers_then_rerun(synth_inputs, synth_reference, tmp_path, seed):
    reference, seconds = synth_reference
    rng = np.random.default_rng(seed)
    out = tmp_path / "ds"
    proc = start(synth_args(synth_inputs, out), cwd=tmp_path)
    # early in the work, once the workers write: most items are still to be rendered
    kill_when(proc, lambda: any((out / "audio").glob("*")), delay_s=float(rng.uniform(0.0, 0.1 * seconds)))
    time.sleep(0.3)  # had the workers lived on, they would now be writing unlisted files
    # a rerun over fewer sources must leave exactly what its manifest lists...
    r = run([*synth_args(synth_inputs, out), "--max-files", "4"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    check_dataset(out)
    # ... and the full rerun the same dataset as an undisturbed run
    r = run(synth_args(synth_inputs, out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = check_dataset(out)
    assert sorted(got) == sorted(reference)
    for item_id, rec in got.items():  # items are deterministic: the same whatever the interruption
        ref = reference[item_id]
        assert {k: rec[k] for k in ("split", "n_notes", "duration_s", "timbres")} == {
            k: ref[k] for k in ("split", "n_notes", "duration_s", "timbres")
        }
