"""Note F1 of a model on the same recordings played back at several gains (level invariance).

    .venv/bin/python benchmarks/level_invariance.py                       # bundled model, 0/-20/-40 dB
    .venv/bin/python benchmarks/level_invariance.py --level off           # the model without level normalisation
    .venv/bin/python benchmarks/level_invariance.py --level -25 --gains=0,-20
    .venv/bin/python benchmarks/level_invariance.py --measure DIR         # levels of a folder's audio

The validation suite is the real labelled material of ../shared/data (``$AMT_DATA``): the 11 MAPS
Disklavier recordings (``real/maps``, 29 min) and the real GuitarSet recording (``real/guitarset_real``).
Each recording is scaled by the gain and written back to 16-bit samples (as a quiet recording would
be stored) before it is transcribed; note P/R/F1 are mir_eval's (50 ms onsets), pooled over all notes
of a set. ``--level`` overrides the model's input level normalisation (``off`` or a dBFS target).
The last line gives the spread (max - min) of note F1 over the gains for each set: the issue's target
is <= 0.02.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data"))
SUITES = {"maps": ("maps", "real/maps"), "guitar": ("guitarset", "real/guitarset_real")}


def quantize16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(audio * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic")
    ap.add_argument("--gains", default="0,-20,-40", help="gains in dB, comma-separated")
    ap.add_argument("--level", default="model", help="model (the release's setting), off, or a target in dBFS")
    ap.add_argument("--sets", default="maps,guitar", help=f"which of {', '.join(SUITES)}")
    ap.add_argument("--limit", type=int, default=0, help="only the first N recordings of each set")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--measure", type=Path, help="only print the level of every audio file under this folder")
    args = ap.parse_args()
    if args.measure is not None:
        return measure_folder(args.measure)

    from amtcli.audio.io import load_audio
    from amtcli.datasets import load_dataset
    from amtcli.devices import resolve_precision
    from amtcli.evaluation.metrics import aggregate, score_notes
    from amtcli.inference.transcribe import transcribe
    from amtcli.zoo import load_model

    gains = [float(g) for g in args.gains.split(",")]
    net, release = load_model(args.model, device="cpu")
    fc = net.feature_config
    if args.level != "model":
        fc = dataclasses.replace(fc, level_db=None if args.level == "off" else float(args.level))
        net.feature_config = fc
    print(
        f"model {args.model}; input level: {'as recorded' if fc.level_db is None else f'{fc.level_db:g} dBFS'}; "
        f"precision {resolve_precision(args.precision, 'cpu')}"
    )
    table = {}
    for set_name in args.sets.split(","):
        dataset, sub = SUITES[set_name]
        if not (DATA / sub).is_dir():
            print(f"{set_name}: {DATA / sub} is not here; skipped")
            continue
        items = load_dataset(dataset, root=DATA / sub, split="all")
        if args.limit:
            items = items[: args.limit]
        refs = [it.load_notes() for it in items]
        audios = [load_audio(it.audio, sample_rate=fc.sample_rate) for it in items]
        for gain in gains:
            t0 = time.perf_counter()
            per_file = []
            for ref, audio in zip(refs, audios):
                quiet = quantize16(audio * np.float32(10.0 ** (gain / 20.0)))
                est = transcribe(quiet, model=(net, release), device="cpu", precision=args.precision)
                per_file.append(score_notes(ref, est, with_velocity=False))
            note = aggregate(per_file)["micro"]["note"]
            table[(set_name, gain)] = note
            print(
                f"{set_name:7s} gain {gain:+5.0f} dB: note P {note['precision']:.3f} R {note['recall']:.3f} "
                f"F1 {note['f1']:.3f}  ({len(items)} files, {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    for set_name in args.sets.split(","):
        f1s = [table[(set_name, g)]["f1"] for g in gains if (set_name, g) in table]
        if f1s:
            print(f"{set_name}: note F1 spread over {args.gains} dB = {max(f1s) - min(f1s):.3f}")
    return 0


def measure_folder(folder: Path) -> int:
    """The level (dBFS, as the model's normalisation measures it) of every audio file under ``folder``."""
    from amtcli.audio.io import find_audio_files, load_audio
    from amtcli.audio.level import measure_level_db

    levels = []
    for f in find_audio_files([folder]):
        level = measure_level_db(load_audio(f, sample_rate=16000), sample_rate=16000)
        print(f"{f}: {'silence' if level is None else f'{level:.1f} dBFS'}")
        if level is not None:
            levels.append(level)
    if levels:
        print(
            f"{len(levels)} files: level {min(levels):.1f} to {max(levels):.1f} dBFS, median {float(np.median(levels)):.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
