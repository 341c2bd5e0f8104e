"""Print the figures a model card quotes from a training run and its release folder.

    .venv/bin/python scripts/run_summary.py work/transformer-compact/runs/synthetic-only \\
        --release models/synthetic-transformer

From RUN/metrics.jsonl (written by `amt train`): mean steps/s and target tokens/s over the logged
windows, the time the training steps took (the sum of each 10-step window's length, validation
excluded), the last discriminator accuracy when the run used domain confusion, and the validation
curve. From a release folder: the number of weights in model.safetensors.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a training run folder (holds metrics.jsonl)")
    ap.add_argument("--release", type=Path, help="a release folder (holds model.safetensors)")
    args = ap.parse_args()
    path = args.run / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (not a run folder of `amt train`)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    timed = [r for r in records if "steps_per_s" in r]
    if not timed:
        raise SystemExit(f"error: {path} logs no steps_per_s")
    previous, seconds = 0, 0.0
    for r in timed:  # each record covers the steps since the previous timed one
        seconds += (r["step"] - previous) / r["steps_per_s"]
        previous = r["step"]
    print(f"steps: {timed[-1]['step']}; mean steps/s {statistics.mean(r['steps_per_s'] for r in timed):.2f}", end="")
    if "tokens_per_s" in timed[0]:
        print(f"; mean target tokens/s {statistics.mean(r['tokens_per_s'] for r in timed):.0f}", end="")
    print(f"; training steps took {seconds / 60:.1f} min (validation excluded)")
    disc = [r["disc_acc"] for r in records if "disc_acc" in r]
    if disc:
        print(f"discriminator accuracy, last 10 logged steps: {min(disc[-10:]):.2f}-{max(disc[-10:]):.2f}")
    for r in records:
        if "val" in r:
            print(f"validation at step {r['step']}: note F1 {r['val']['note_f1']:.3f}")
    if args.release:
        from safetensors import safe_open

        with safe_open(str(args.release / "model.safetensors"), framework="numpy") as f:
            n = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        print(f"release {args.release}: {n:,} weights")


if __name__ == "__main__":
    main()
