"""Print the domain-confusion ablation table from the JSON reports of `scripts/train_transformer.sh`.

    .venv/bin/python scripts/transformer_table.py work/transformer-compact

Reads WORK/eval-{target,synth,asap,maestro,real}.json (those that exist; written by `amt evaluate
--json`) and prints one Markdown row per evaluation set with micro note F1, frame F1 and
note-with-offset F1 of every system in the reports, plus the number of files and reference notes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = [
    ("target", "target domain: test pieces, held-out soundfont + reverb + noise"),
    ("synth", "synthetic test split (one-shot mixing)"),
    ("asap", "ASAP test pieces, MuseScore piano + reverb + noise"),
    ("maestro", "MAESTRO clip (real)"),
    ("real", "madmom piano sample (real)"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", type=Path, help="the recipe's work folder (WORK)")
    args = ap.parse_args()
    header_done = False
    for key, what in SETS:
        path = args.work / f"eval-{key}.json"
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        runs = [r for r in report["runs"] if r["condition"] == "clean"]
        if not header_done:
            names = [r["system"] for r in runs]
            print("| evaluation set | files | notes | " + " | ".join(f"{n}: note / frame / note+off F1" for n in names) + " |")
            print("|---|---|---|" + "---|" * len(names))
            header_done = True
        micro = runs[0]["aggregate"]["micro"]
        cells = []
        for r in runs:
            m = r["aggregate"]["micro"]
            cells.append(f"{m['note']['f1']:.3f} / {m['frame']['f1']:.3f} / {m['note_offset']['f1']:.3f}")
        print(f"| {what} | {report['dataset']['n_items']} | {micro['note']['n_ref']} | " + " | ".join(cells) + " |")
    if not header_done:
        raise SystemExit(f"error: no eval-*.json in {args.work} (run the recipe's eval stage first)")


if __name__ == "__main__":
    main()
