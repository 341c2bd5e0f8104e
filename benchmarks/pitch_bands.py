"""Note recall and precision by pitch band on the real validation recordings (where a model misses).

    .venv/bin/python benchmarks/pitch_bands.py                         # the bundled model, MAPS + real guitar
    .venv/bin/python benchmarks/pitch_bands.py -m synthetic -m ./work/candidates/X --sets maps

For each model and set (``$AMT_DATA/real/maps``: 11 Disklavier recordings; ``real/guitarset_real``),
every recording is transcribed and matched to its labels as ``amt evaluate``'s note score does
(mir_eval, 50 ms onsets, offsets ignored). Recall is counted by the pitch of the labelled note,
precision by the pitch of the transcribed one, pooled over the set, in the bands below; the last
row is the whole set (its F1 is ``amt evaluate``'s micro note F1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data"))
SUITES = {"maps": ("maps", "real/maps"), "guitar": ("guitarset", "real/guitarset_real")}
BANDS = ((21, 36), (36, 48), (48, 60), (60, 72), (72, 84), (84, 109))


def band_table(refs, ests, matches) -> list[tuple[str, int, float | None, int, float | None]]:
    """Rows ``(band, n_ref, recall, n_est, precision)`` per band of :data:`BANDS`, then ``all``."""
    ref_p = np.concatenate([r.pitch for r in refs]) if refs else np.zeros(0, np.int64)
    est_p = np.concatenate([e.pitch for e in ests]) if ests else np.zeros(0, np.int64)
    ref_hit = np.zeros(len(ref_p), bool)
    est_hit = np.zeros(len(est_p), bool)
    r0 = e0 = 0
    for r, e, (ri, ei) in zip(refs, ests, matches):
        ref_hit[r0 + ri] = True
        est_hit[e0 + ei] = True
        r0, e0 = r0 + len(r), e0 + len(e)
    rows = []
    for lo, hi in (*BANDS, (0, 128)):
        rs, es = (ref_p >= lo) & (ref_p < hi), (est_p >= lo) & (est_p < hi)
        name = "all" if (lo, hi) == (0, 128) else f"{lo}-{hi - 1}"
        recall = float(ref_hit[rs].mean()) if rs.any() else None
        precision = float(est_hit[es].mean()) if es.any() else None
        rows.append((name, int(rs.sum()), recall, int(es.sum()), precision))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", help="zoo name or release folder (repeatable)")
    ap.add_argument("--sets", default="maps,guitar", help=f"which of {', '.join(SUITES)}")
    args = ap.parse_args()

    from amtcli.datasets import load_dataset
    from amtcli.evaluation.metrics import onset_matches
    from amtcli.inference.transcribe import transcribe_full

    fmt = lambda x: "  -  " if x is None else f"{x:.3f}"  # noqa: E731
    for set_name in args.sets.split(","):
        dataset, sub = SUITES[set_name]
        if not (DATA / sub).is_dir():
            print(f"{set_name}: {DATA / sub} is not here (set AMT_DATA); skipped", file=sys.stderr)
            continue
        items = load_dataset(dataset, root=DATA / sub, split="all")
        refs = [it.load_notes().pitched() for it in items]
        for model in args.model or ["synthetic"]:
            ests = [transcribe_full(str(it.audio), model=model, device="cpu").notes.pitched() for it in items]
            matches = [onset_matches(r, e) for r, e in zip(refs, ests)]
            print(f"\n{set_name} ({len(items)} recordings), model {model}")
            print(f"{'MIDI':>8s} {'labelled':>9s} {'recall':>7s} {'written':>8s} {'precision':>9s}")
            for name, n_ref, recall, n_est, precision in band_table(refs, ests, matches):
                print(f"{name:>8s} {n_ref:9d} {fmt(recall):>7s} {n_est:8d} {fmt(precision):>9s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
