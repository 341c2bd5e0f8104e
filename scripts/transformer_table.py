"""Print the domain-confusion ablation table from the JSON reports of `scripts/train_transformer.sh`.

    .venv/bin/python scripts/transformer_table.py work/transformer-compact

Reads WORK/eval-{target,target-val,synth,asap,maestro,real}.json (those that exist; written by `amt evaluate
--json`) and prints one Markdown row per evaluation set with micro note F1, frame F1 and
note-with-offset F1 of every system in the reports, plus the number of files and reference notes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = [
    ("target", "target domain: test pieces, held-out soundfont + reverb + noise"),
    ("target-val", "target domain: validation pieces (to choose the arm that ships)"),
    ("synth", "synthetic test split (one-shot mixing)"),
    ("asap", "ASAP test pieces, MuseScore piano + reverb + noise"),
    ("maestro", "MAESTRO clip (real)"),
    ("real", "madmom piano sample (real)"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path, help="the recipe's work folder (WORK)")
    args = ap.parse_args()
    rows, names = [], []
    for key, what in SETS:
        path = args.work / f"eval-{key}.json"
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        runs = {r["system"]: r["aggregate"]["micro"] for r in report["runs"] if r["condition"] == "clean"}
        names += [n for n in runs if n not in names]
        rows.append((what, report["dataset"]["n_items"], next(iter(runs.values()))["note"]["n_ref"], runs))
    if not rows:
        raise SystemExit(f"error: no eval-*.json in {args.work} (run the recipe's eval stage first)")
    print("| evaluation set | files | notes | " + " | ".join(f"{n}: note / frame / note+off F1" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for what, n_items, n_ref, runs in rows:
        cells = []
        for name in names:
            m = runs.get(name)
            cells.append(f"{m['note']['f1']:.3f} / {m['frame']['f1']:.3f} / {m['note_offset']['f1']:.3f}" if m else "—")
        print(f"| {what} | {n_items} | {n_ref} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
