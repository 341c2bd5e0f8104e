"""Real-time factor and peak memory of `amt transcribe` as a whole process (model load included).

    .venv/bin/python benchmarks/bench_transcribe.py                 # 5-minute file, bundled model
    .venv/bin/python benchmarks/bench_transcribe.py --minutes 60 --repeats 1 --no-basic-pitch   # one hour: memory
    .venv/bin/python benchmarks/bench_transcribe.py --model tiny-test
    .venv/bin/python benchmarks/bench_transcribe.py --precision bf16    # force a precision
    .venv/bin/python benchmarks/bench_transcribe.py --backend torch     # torch instead of onnxruntime
    .venv/bin/python benchmarks/bench_transcribe.py --stages            # also: where the time goes

The input is the bundled example (examples/piano.flac) repeated to the requested length, written to
a temporary 16 kHz FLAC. Each run is a fresh `amt transcribe` process; the peak resident set size
comes from the kernel's accounting of that child (ru_maxrss). Targets on a 2-core CPU: 5 minutes
in under 6 s (50x real time) with peak RSS under 600 MB; one hour under 1 GB. The CPU seconds
(user + system) of the process are printed too: accuracy per CPU-second is what amt competes on.

Absolute seconds do not carry from one machine to another, so the same file is also transcribed by
basic-pitch 0.4.0 (ONNX, the peer built by ../shared/tools/basic-pitch-peer, or ``--basic-pitch
PATH``; skipped with a note when absent) in the same run, and the ratio of the two is printed. The
precision that ``--precision auto`` chose on this machine is printed too (``amt info`` says why), and
the backend ``--backend auto`` chose (onnxruntime where the model has a model.onnx, on the CPU; see
amtcli/inference/backends.py). The load average is printed beside the figures: on a shared machine,
wall times mean little when it is above zero, and the basic-pitch ratio is the figure to quote.

``--stages`` times each step of one transcription in a fresh process (imports, model load, audio
decoding, CQT, network, decoding, MIDI writing with tempo tracking), best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--model", default="synthetic")
    ap.add_argument("--repeats", type=int, default=3, help="runs; the best wall time is reported")
    ap.add_argument("--precision", default="auto", help="auto, fp32, bf16 (passed to amt transcribe)")
    ap.add_argument("--backend", default="auto", help="auto, torch, onnx (passed to amt transcribe)")
    ap.add_argument("--stages", action="store_true", help="also time each step of one transcription")
    ap.add_argument("--no-basic-pitch", dest="no_peer", action="store_true", help="skip the basic-pitch comparison")
    ap.add_argument("--stages-child", dest="stages_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--basic-pitch", dest="basic_pitch", default=None, help="the basic-pitch executable (default: the peer venv)"
    )
    args = ap.parse_args()
    if args.stages_child:
        return stages_child(args.stages_child, model=args.model, backend=args.backend, precision=args.precision)

    from amtcli.inference.backends import choose_backend
    from amtcli.zoo import read_release_config, resolve

    folder = resolve(args.model)
    chosen = choose_backend(
        args.backend,
        device="cpu",
        folder=folder,
        architecture=read_release_config(folder).architecture,
        precision=args.precision,
    )
    print(f"backend {args.backend} -> {chosen}")
    if chosen.name == "onnx":
        print(f"precision {args.precision} -> fp32 (onnxruntime)")
    else:
        from amtcli.devices import resolve_precision

        print(f"precision {args.precision} -> {resolve_precision(args.precision, 'cpu')}")

    from amtcli.audio.io import load_audio, save_audio

    example = load_audio(ROOT / "examples" / "piano.flac", sample_rate=16000)
    n = int(args.minutes * 60 * 16000)
    audio = np.resize(example, n).astype(np.float32)
    amt = str(Path(sys.executable).with_name("amt"))
    with tempfile.TemporaryDirectory() as tmp:
        src = save_audio(Path(tmp) / "long.flac", audio, sample_rate=16000)
        del audio
        cmd = [amt, "transcribe", str(src), "--model", args.model, "--device", "cpu", "--precision", args.precision]
        cmd += ["--backend", args.backend]
        walls, rss, cpus = timed_runs(lambda i: cmd + ["-o", str(Path(tmp) / f"out{i}.mid")], args.repeats)
        if walls is None:
            return 1
        dur = args.minutes * 60
        best = min(walls)
        print(
            f"model {args.model} ({chosen.name}): {dur:.0f} s of audio in {best:.2f} s wall (best of {len(walls)}) = {dur / best:.1f}x real time; "
            f"{min(cpus):.2f} CPU-s (fewest); peak RSS {max(rss):.0f} MB; cores {os.cpu_count()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {load_average()}"
        )
        if args.stages:
            print_stages(src, args)
        if args.no_peer:
            return 0
        bp = find_basic_pitch(args.basic_pitch)
        if bp is None:
            print(
                "basic-pitch: not installed (run ../shared/tools/basic-pitch-peer once, or give --basic-pitch); no ratio"
            )
            return 0
        bp_walls, _, bp_cpus = timed_runs(
            lambda i: [bp, "--model-serialization", "onnx", str(Path(tmp) / f"bp{i}"), str(src)],
            args.repeats,
            mkdir=True,
        )
        if bp_walls is None:
            return 1
        print(
            f"basic-pitch 0.4.0 (onnx): {min(bp_walls):.2f} s wall = {dur / min(bp_walls):.1f}x real time; {min(bp_cpus):.2f} CPU-s"
        )
        print(
            f"ratio basic-pitch / amt: {min(bp_walls) / best:.2f}x wall, {min(bp_cpus) / min(cpus):.2f}x CPU-s (> 1: amt is faster); {load_average()}"
        )
    return 0


def load_average() -> str:
    """The 1/5/15-minute load averages (as ``uptime`` prints them): other work on the machine."""
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


STAGES = ("imports", "model load", "audio decode", "CQT", "network", "decoding", "MIDI (tempo tracking, writing)")


def print_stages(src: Path, args) -> None:
    """Run :func:`stages_child` in fresh processes; print the best wall time of each step and its CPU seconds."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        cmd = [sys.executable, __file__, "--stages-child", str(src), "--model", args.model]
        cmd += ["--backend", args.backend, "--precision", args.precision]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            name, wall, cpu = line.rsplit(" ", 2)
            if float(wall) < best.get(name, (float("inf"), 0.0))[0]:
                best[name] = (float(wall), float(cpu))
    shown = ", ".join(f"{k} {best[k][0]:.2f} s ({best[k][1]:.2f} CPU-s)" for k in STAGES if k in best)
    print(f"stages (best of {args.repeats} fresh processes, after interpreter start-up): {shown}")


def stages_child(src: str, *, model: str, backend: str, precision: str) -> int:
    """One transcription of ``src``, step by step as amt transcribe does it, printing ``STEP WALL_S CPU_S`` lines."""

    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    t0 = now()
    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.inference.backends import OnnxTranscriber, choose_backend, load_transcriber
    from amtcli.inference.decoding import decode_frames
    from amtcli.inference.transcribe import Transcription, posteriors_from_features
    from amtcli.zoo import read_release_config, resolve

    folder = resolve(model)
    release = read_release_config(folder)
    name = choose_backend(backend, device="cpu", folder=folder, architecture=release.architecture, precision=precision)
    if name.name == "torch":
        import torch  # noqa: F401  (what the torch path pays at start-up)
    marks = [("imports", now())]
    net, release = load_transcriber(folder, backend=name.name, release=release)
    marks.append(("model load", now()))
    fc = release.feature_config
    audio = load_audio(src, sample_rate=fc.sample_rate)
    marks.append(("audio decode", now()))
    feats = compute_features(audio, config=fc, engine="numpy" if isinstance(net, OnnxTranscriber) else "torch")
    marks.append(("CQT", now()))
    post = posteriors_from_features(net, feats, precision=precision)
    marks.append(("network", now()))
    notes = decode_frames(
        post["onset"],
        post["frame"],
        offset=post["offset"],
        velocity=post["velocity"],
        frame_rate=fc.frame_rate,
        config=release.decode_config,
        fmin_midi=fc.fmin_midi,
    )
    marks.append(("decoding", now()))
    result = Transcription(
        notes, post, None, fc.frame_rate, len(audio) / fc.sample_rate, onset_strength=post["onset"].sum(axis=1)
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result.to_midi(Path(tmp) / "out.mid")
    marks.append(("MIDI (tempo tracking, writing)", now()))
    prev = t0
    for step, t in marks:
        print(f"{step} {t[0] - prev[0]:.4f} {t[1] - prev[1]:.4f}")
        prev = t
    return 0


def find_basic_pitch(given: str | None) -> str | None:
    """The basic-pitch executable: the one given, the peer venv, or one on PATH."""
    venv = Path(os.environ.get("BP_VENV", Path.home() / ".cache" / "amt-peers" / "basic-pitch"))
    for cand in (given, str(venv / "bin" / "basic-pitch"), shutil.which("basic-pitch")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def timed_runs(make_cmd, repeats: int, *, mkdir: bool = False):
    """Run ``make_cmd(i)`` ``repeats`` times as child processes: (wall seconds, peak RSS MB, CPU seconds) lists."""
    walls, rss, cpus = [], [], []
    for i in range(repeats):
        cmd = make_cmd(i)
        if mkdir:
            Path(cmd[-2]).mkdir(parents=True, exist_ok=True)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        before, cpu_before = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            print(f"{Path(cmd[0]).name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None, None, None
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss.append(max(before, ru.ru_maxrss) / 1024)
        cpus.append(ru.ru_utime + ru.ru_stime - cpu_before)  # user + system CPU seconds of that process
        print(
            f"  {Path(cmd[0]).name} run {i + 1}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} CPU-s; {proc.stdout.strip()[-200:]}"
        )
    return walls, rss, cpus


if __name__ == "__main__":
    raise SystemExit(main())
