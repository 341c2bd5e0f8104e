"""Do torch and onnxruntime write the same notes? Each file is transcribed with ``--backend torch``
and ``--backend onnx`` (in this process, fp32), and the note lists are compared.

    .venv/bin/python benchmarks/backend_agreement.py                          # the bundled example
    .venv/bin/python benchmarks/backend_agreement.py ../shared/data/real/maps/ENSTDkCl/MUS/*.wav
    .venv/bin/python benchmarks/backend_agreement.py --model PATH/TO/RELEASE FILE...

For each file: the notes of each backend, how many are identical (pitch, onset and offset to 0.1 ms,
velocity), the largest difference between the two backends' features and probabilities, and, for
notes that differ, how close the probability that decided them was to its threshold (a difference
explained by float rounding sits within about 1e-5 of one).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def note_rows(notes) -> set[tuple[int, int, int, int]]:
    return set(
        zip(
            notes.pitch.tolist(),
            np.round(notes.onset_s * 1e4).astype(int).tolist(),
            np.round(notes.offset_s * 1e4).astype(int).tolist(),
            notes.velocity.tolist(),
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, default=[ROOT / "examples" / "piano.flac"])
    ap.add_argument("--model", default="synthetic")
    args = ap.parse_args()

    from amtcli.inference.transcribe import transcribe_full
    from amtcli.zoo import read_release_config, resolve

    folder = resolve(args.model)
    decode = read_release_config(folder).decode_config
    thresholds = {"onset": decode.onset_threshold, "frame": decode.frame_threshold, "offset": decode.offset_threshold}
    total = {"torch": 0, "onnx": 0, "same": 0}
    for path in args.files:
        results, seconds = {}, {}
        for backend in ("torch", "onnx"):
            t0 = time.perf_counter()
            results[backend] = transcribe_full(
                path, model=str(folder), device="cpu", precision="fp32", backend=backend, keep_features=True
            )
            seconds[backend] = time.perf_counter() - t0
        a, b = (note_rows(results[k].notes) for k in ("torch", "onnx"))
        feats = float(np.abs(results["torch"].features - results["onnx"].features).max())
        probs = max(
            float(np.abs(results["torch"].posteriors[k] - results["onnx"].posteriors[k]).max())
            for k in results["torch"].posteriors
        )
        # how near a threshold the probabilities came where the two backends fall on different sides
        margin = min(
            (
                float(np.abs(results["torch"].posteriors[k] - thr)[flip].min())
                for k, thr in thresholds.items()
                if (flip := (results["torch"].posteriors[k] >= thr) != (results["onnx"].posteriors[k] >= thr)).any()
            ),
            default=None,
        )
        total["torch"] += len(a)
        total["onnx"] += len(b)
        total["same"] += len(a & b)
        flips = "none" if margin is None else f"nearest {margin:.1e} from its threshold"
        print(
            f"{path.name}: {results['torch'].duration_s:.0f} s; torch {len(a)} notes ({seconds['torch']:.1f} s), "
            f"onnx {len(b)} ({seconds['onnx']:.1f} s), identical {len(a & b)}; largest difference: features "
            f"{feats:.1e}, probabilities {probs:.1e}; threshold crossings that differ: {flips}"
        )
    print(f"all: torch {total['torch']} notes, onnx {total['onnx']}, identical {total['same']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
