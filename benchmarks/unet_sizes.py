"""What a wider U-Net + BiLSTM costs at inference: parameters and network time per size, as shipped.

    .venv/bin/python benchmarks/unet_sizes.py                       # the default sizes, 5 minutes of audio
    .venv/bin/python benchmarks/unet_sizes.py --sizes 8,16,32/24 16,32,64/48 --minutes 2

Each size (U-Net channels / BiLSTM units per direction) is built with random weights (the cost does
not depend on them), saved as a release, exported to ONNX as `amt models export` does, and run on
onnxruntime over the log-CQT of the bundled example repeated to ``--minutes`` (the CQT is computed once
and is the same for every size; its time is printed apart). Best of ``--repeats``.

Absolute seconds do not carry from one machine to another; the ratio to the first size (the bundled
`synthetic` model's shape, 8,16,32/24) does. The end-to-end real-time factor of a size is about
``audio / (cqt + network + the rest)``; ``benchmarks/bench_transcribe.py --stages`` times the rest.
The load average is printed: on a busy machine the figures are slower than idle ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = ("8,16,32/24", "12,24,48/32", "16,32,64/48", "24,48,96/64")


def parse_size(text: str) -> tuple[tuple[int, int, int], int]:
    try:
        channels, hidden = text.split("/")
        c = tuple(int(x) for x in channels.split(","))
        if len(c) != 3 or min(c) < 1 or int(hidden) < 1:
            raise ValueError
        return c, int(hidden)
    except ValueError:
        raise SystemExit(f"error: size {text!r} is not C0,C1,C2/HIDDEN (e.g. 16,32,64/48)") from None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="C0,C1,C2/HIDDEN each")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: amt's choice)")
    args = ap.parse_args()
    sizes = [parse_size(s) for s in args.sizes]

    import torch

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import FeatureConfig
    from amtcli.inference.backends import OnnxTranscriber
    from amtcli.nets import build_model
    from amtcli.zoo import save_release
    from amtcli.zoo.export import write_onnx

    fc = FeatureConfig(level_db=-24.0)
    example = load_audio(ROOT / "examples" / "piano.flac", sample_rate=fc.sample_rate)
    n = int(args.minutes * 60 * fc.sample_rate)
    audio = np.tile(example, n // len(example) + 1)[:n]
    t = time.perf_counter()
    feats = compute_features(audio, config=fc, engine="numpy")
    cqt_s = time.perf_counter() - t
    seconds = n / fc.sample_rate
    print(f"{seconds:.0f} s of audio; CQT (numpy) {cqt_s:.2f} s; load average {os.getloadavg()[0]:.2f}")
    print(f"{'size':>14} {'parameters':>11} {'network s':>10} {'x real time':>12} {'vs first':>9}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (channels, hidden) in enumerate(sizes):
            torch.manual_seed(0)
            model = build_model("unet-bilstm", {"channels": channels, "lstm_hidden": hidden, "dropout": 0.0}, fc).eval()
            params = sum(p.numel() for p in model.parameters())
            folder = save_release(model, Path(tmp) / f"size-{i}", card="benchmark", extra={"name": f"size-{i}"})
            write_onnx(folder)
            net = OnnxTranscriber(folder, threads=args.threads)
            x = feats[None].astype(np.float32)
            net.predict(x[:, : min(x.shape[1], 500)])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                net.predict(x)
                best = min(best, time.perf_counter() - t)
            first = first or best
            label = f"{','.join(map(str, channels))}/{hidden}"
            print(f"{label:>14} {params:>11,} {best:>10.2f} {seconds / best:>11.0f}x {best / first:>8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
