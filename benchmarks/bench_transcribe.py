"""Real-time factor and peak memory of `amt transcribe` as a whole process (model load included).

    .venv/bin/python benchmarks/bench_transcribe.py                 # 5-minute file, bundled model
    .venv/bin/python benchmarks/bench_transcribe.py --minutes 60    # the one-hour memory check
    .venv/bin/python benchmarks/bench_transcribe.py --model tiny-test

The input is the bundled example (examples/piano.flac) repeated to the requested length, written to
a temporary 16 kHz FLAC. Each run is a fresh `amt transcribe` process; the peak resident set size
comes from the kernel's accounting of that child (ru_maxrss). Targets on a 2-core CPU: 5 minutes
in under 6 s (50x real time) with peak RSS under 600 MB; one hour under 1 GB. The CPU seconds
(user + system) of the process are printed too: accuracy per CPU-second is what amt competes on.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    args = ap.parse_args()

    from amtcli.audio.io import load_audio, save_audio

    example = load_audio(ROOT / "examples" / "piano.flac", sample_rate=16000)
    n = int(args.minutes * 60 * 16000)
    audio = np.resize(example, n).astype(np.float32)
    amt = str(Path(sys.executable).with_name("amt"))
    with tempfile.TemporaryDirectory() as tmp:
        src = save_audio(Path(tmp) / "long.flac", audio, sample_rate=16000)
        del audio
        walls, rss, cpus = [], [], []
        for i in range(args.repeats):
            out = Path(tmp) / f"out{i}.mid"
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            before, cpu_before = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
            t0 = time.perf_counter()
            proc = subprocess.run([amt, "transcribe", str(src), "-o", str(out), "--model", args.model, "--device", "cpu"], capture_output=True, text=True)
            walls.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux)
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            rss.append(max(before, ru.ru_maxrss) / 1024)
            cpus.append(ru.ru_utime + ru.ru_stime - cpu_before)  # user + system CPU seconds of that process
            print(f"run {i + 1}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} CPU-s; {proc.stdout.strip()}")
    dur = args.minutes * 60
    best = min(walls)
    print(f"model {args.model}: {dur:.0f} s of audio in {best:.2f} s wall (best of {len(walls)}) = {dur / best:.1f}x real time; "
          f"{min(cpus):.2f} CPU-s (fewest); peak RSS {max(rss):.0f} MB; cores {os.cpu_count()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
