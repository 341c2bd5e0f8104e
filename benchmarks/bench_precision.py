"""Training and transcription speed at each precision on this machine, and what ``auto`` picks.

    .venv/bin/python benchmarks/bench_precision.py                 # U-Net training, 30 steps each
    .venv/bin/python benchmarks/bench_precision.py --steps 60 --model transformer

For each of fp32, bf16 and auto, a fresh ``amt train`` process trains the same small run (16 Nottingham
tunes from ``$AMT_DATA``, rendered by ``amt synth`` into 8 s excerpts; batch 4 x 5 s crops) and the mean ``steps_per_s`` of its
``metrics.jsonl`` after the first few steps is printed; then the bundled model transcribes 60 s of
audio at fp32 and bf16 (network time, best of 2). The issue's check: ``auto`` within 10 % of the
faster of fp32 and bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_dataset(folder: Path) -> Path:
    """A small `amt synth` dataset: 16 Nottingham tunes, 8 s excerpts (FluidSynth, a few seconds)."""
    data = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data")) / "midi" / "nottingham"
    if not data.is_dir():
        raise SystemExit(f"{data}: not here (set AMT_DATA); this benchmark renders a few of its tunes")
    amt = str(Path(sys.executable).with_name("amt"))
    cmd = [
        amt,
        "synth",
        str(data),
        "-o",
        str(folder),
        "--max-files",
        "16",
        "--excerpt-s",
        "8",
        "--seed",
        "5",
        "--workers",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"amt synth failed:\n{proc.stderr[-2000:]}")
    return folder


def train_speed(data: Path, out: Path, precision: str, *, steps: int, model: str) -> tuple[float, str]:
    amt = str(Path(sys.executable).with_name("amt"))
    cmd = [
        amt,
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        model,
        "--steps",
        str(steps),
        "--batch-size",
        "4",
        "--crop-s",
        "5",
        "--val-every",
        str(10 * steps),
        "--precision",
        precision,
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"amt train --precision {precision} failed:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    said = re.search(r"precision (\S+)", proc.stdout)  # the training log's start line
    chosen = said.group(1) if said else "?"
    rates = [r["steps_per_s"] for r in rows if isinstance(r.get("steps_per_s"), (int, float))]
    rates = rates[len(rates) // 4 :] or rates  # skip the warm-up records
    return (float(np.mean(rates)) if rates else float("nan")), chosen


def transcribe_speed(precision: str) -> float:
    import torch

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.inference.transcribe import posteriors_from_features
    from amtcli.zoo import load_model

    net, _ = load_model("synthetic", device="cpu")
    audio = np.resize(load_audio(ROOT / "examples" / "piano.flac", sample_rate=16000), 60 * 16000)
    feats = compute_features(audio, config=net.feature_config)
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        try:
            posteriors_from_features(net, feats, device="cpu", precision=precision)
        except RuntimeError as exc:  # a oneDNN build without bf16 kernels for one layer
            print(f"  transcribe at {precision}: {str(exc).splitlines()[0][:100]}")
            return float("nan")
        best = min(best, time.perf_counter() - t0)
    del torch
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--model", default="unet-bilstm")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each precision, interleaved; the best is kept")
    args = ap.parse_args()

    from amtcli.devices import resolve_precision

    print(f"precision auto -> {resolve_precision('auto', 'cpu')}", flush=True)
    speeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "data")
        for r in range(args.rounds):
            for p in ("fp32", "bf16", "auto"):
                rate, chosen = train_speed(data, Path(tmp) / f"run-{p}-{r}", p, steps=args.steps, model=args.model)
                speeds[p] = max(speeds.get(p, 0.0), rate)
                print(
                    f"train {args.model} --precision {p}: {rate:.3f} steps/s (run log: precision {chosen})", flush=True
                )
    fastest = max(speeds["fp32"], speeds["bf16"])
    print(
        f"best of {args.rounds}: fp32 {speeds['fp32']:.3f}, bf16 {speeds['bf16']:.3f}, auto {speeds['auto']:.3f} steps/s; "
        f"auto / fastest of fp32, bf16 = {speeds['auto'] / fastest:.2f} (target >= 0.90)"
    )
    for p in ("fp32", "bf16"):
        print(f"transcribe 60 s, network only, {p}: {transcribe_speed(p):.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
