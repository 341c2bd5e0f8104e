#!/usr/bin/env python
"""Recipe of the bundled ``embedding`` model: synthetic data -> training -> held-out evaluation -> release.

    nice -n 10 .venv/bin/python scripts/train_embedding.py --steps 500

1. ``amt synth`` renders three datasets from Nottingham + POP909 (``$AMT_DATA/midi`` or ../shared/data/midi)
   with two soundfonts: train (150 pieces x 2 renders of 20 s), validation (20 pieces x 20 s) and
   test (every test-split piece, one 60 s render). Splits are per source file (a hash of its bytes),
   so no test piece is ever trained on. Re-running resumes; finished datasets are reused.
2. ``train_embedding`` (what ``amt train --model embedding`` runs) trains for ``--steps``.
3. The model is written as a release folder, then measured with ``amt evaluate --task retrieval``
   on the test dataset; the model card records that command and its table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AMT = str(Path(sys.executable).with_name("amt"))
SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/MuseScore_General.sf3"]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", shlex.join(cmd), flush=True)
    return subprocess.run(cmd, check=True, cwd=REPO, **kw)


def synth(midi: Path, out: Path, *extra: str) -> None:
    sources = [str(midi / "nottingham"), str(midi / "pop909")]
    sf = [a for s in SOUNDFONTS for a in ("--soundfont", s)]
    run([AMT, "synth", *sources, "-o", str(out), *sf, "--features", "--workers", "1", *extra])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "work" / "embedding", help="where the datasets go")
    ap.add_argument(
        "--midi", type=Path, default=Path(os.environ.get("AMT_DATA", REPO.parent / "shared" / "data")) / "midi"
    )
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "embedding")
    ap.add_argument("--release", type=Path, default=REPO / "models" / "embedding")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument(
        "--export-only",
        action="store_true",
        help="skip data and training: release, evaluate and describe the run's last checkpoint",
    )
    ap.add_argument(
        "--card-only",
        action="store_true",
        help="only rewrite the model card from the run's last evaluation (retrieval-test.json/.txt)",
    )
    args = ap.parse_args()

    train_dir, valid_dir, test_dir = args.data / "train", args.data / "validation", args.data / "test"
    import torch

    from amtcli.training.embedding import describe_run, train_embedding
    from amtcli.zoo.export import export_run

    if not (args.export_only or args.card_only):
        synth(
            args.midi,
            train_dir,
            "--only-split",
            "train",
            "--max-files",
            "150",
            "--renders-per-piece",
            "2",
            "--excerpt-s",
            "20",
        )
        synth(args.midi, valid_dir, "--only-split", "validation", "--max-files", "20", "--excerpt-s", "20")
        synth(args.midi, test_dir, "--only-split", "test", "--excerpt-s", "60")

        torch.set_num_threads(args.threads)
        t0 = time.time()

        def progress(step: int, total: int, m: dict) -> None:
            if step % 25 == 0 or step == total:
                extra = f" valid R@1 {m['valid_R@1']:.3f}" if "valid_R@1" in m else ""
                print(
                    f"step {step}/{total} loss {m.get('loss', float('nan')):.3f}{extra} ({time.time() - t0:.0f} s)",
                    flush=True,
                )

        train_embedding(
            [train_dir, valid_dir],
            out_dir=args.run,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            resume=args.resume,
            overwrite=not args.resume,
            progress=progress,
        )
    run_cfg = describe_run(args.run)  # the last checkpoint's config, step and training time
    step, planned = run_cfg["step"], run_cfg["train_config"]["steps"]
    out_json, out_table = args.run / "retrieval-test.json", args.run / "retrieval-test.txt"
    cmd = [
        "amt",
        "evaluate",
        "--task",
        "retrieval",
        "-d",
        "synthetic",
        "--root",
        os.path.relpath(test_dir, REPO),
        "--split",
        "test",
        "-m",
        os.path.relpath(args.release, REPO),
        "--json",
        os.path.relpath(out_json, REPO),
        "--overwrite",
    ]
    if not args.card_only:
        export_run(args.run, args.release, checkpoint="last", overwrite=True)
        out = run([AMT, *cmd[1:]], capture_output=True, text=True, env={**os.environ, "COLUMNS": "150"}).stdout
        out_table.write_text("".join(line + "\n" for line in out.splitlines() if not line.startswith("wrote ")))
    table = out_table.read_text()
    print(table)
    doc = json.loads(out_json.read_text())
    n_test = sum(1 for _ in open(test_dir / "manifest.jsonl"))
    stopped = (
        f" Training was stopped at step {step} of the {planned} planned (the CPU budget of a machine shared "
        f"with another training run), with the learning rate still near its peak; `--resume` continues it."
        if step < planned
        else ""
    )
    card = CARD.format(
        steps=step,
        stopped=stopped,
        batch=run_cfg["train_config"]["batch_size"],
        wall_min=run_cfg["wall_time_s"] / 60,
        n_train=run_cfg["n_train_items"],
        n_pieces=run_cfg["n_train_pieces"],
        n_valid=run_cfg["n_valid_items"],
        n_test=n_test,
        n=doc["n"],
        n_test_pieces=doc["n_pieces"],
        command=shlex.join(cmd),
        table=table.strip(),
        recipe=f"nice -n 10 .venv/bin/python scripts/train_embedding.py --steps {planned} --batch-size {run_cfg['train_config']['batch_size']}",
        **{k.replace("@", ""): v for k, v in doc["rows"][os.path.relpath(args.release, REPO)].items()},
        **{"u" + k.replace("@", ""): v for k, v in doc["rows"]["untrained (same shape)"].items()},
        **{"c" + k.replace("@", ""): v for k, v in doc["rows"]["chance"].items()},
    )
    demo = args.run / "identify-demo.md"  # an `amt identify` check written by hand: command, table, verdict
    if demo.is_file():
        card += "\n## Identification check\n\n" + demo.read_text()
    (args.release / "README.md").write_text(card)
    print(f"wrote {args.release}")


CARD = """# embedding — joint audio-score embedding (Dorfer et al. style)

Two CNN encoders map a 2.05 s log-CQT snippet (64 frames at 16 kHz / hop 512, 176 bins) and the
piano roll of the same span (64 frames x 88 keys) into one 32-d space; cosine similarity; trained
with the pairwise ranking hinge loss (margin 0.7) over all non-matching pairs of a batch.
Architecture `embedding` (amtcli/nets/embedding.py). Used by `amt identify` and
`amt evaluate --task retrieval`.

## Training

- Data: `amt synth` renders (FluidSynth, GM piano; soundfonts FluidR3_GM (MIT) and MuseScore_General
  (MIT; Debian's Lite build), one drawn per item; default augmentation: reverb, EQ, low-pass, gain,
  noise, transposition) of the train split of the Nottingham folk tunes (GPL-3.0,
  jukedeck/nottingham-dataset) and POP909 piano arrangements (MIT, music-x-lab/POP909-Dataset):
  {n_train} items of 20 s from {n_pieces} pieces, plus {n_valid} validation items for monitoring.
  The weights inherit the terms of this data (GPL-3.0 for the Nottingham part). Batch augmentation: transposition of CQT and roll together
  (+-5 semitones), gain +-10 dB.
- {steps} steps of {batch} pairs (Adam, lr 1e-3 with cosine decay, bf16 autocast), {wall_min:.1f} min
  of training on one shared CPU core.{stopped} Recipe: `{recipe}`.

Trained briefly, on synthetic piano audio only: the figures below say how far it is from chance.
Real rooms, other instruments and very sparse music are outside what it has seen.

## Evaluation (held-out test pieces, never trained on)

Audio-to-score retrieval over {n} snippets from {n_test_pieces} test pieces ({n_test} rendered test
items, `amt synth --only-split test --excerpt-s 60`, rendered and augmented like the training data).
Measured with

    {command}

```
{table}
```

R@1 / MRR / median rank: this model {R1:.4f} / {MRR:.4f} / {MR:.1f}; untrained {uR1:.4f} / {uMRR:.4f} /
{uMR:.1f}; chance {cR1:.4f} / {cMRR:.4f} / {cMR:.1f}. Higher is better for R@k, MRR and TM (TP/(FP+FN) of
the nearest neighbour's piano roll), lower for the median rank. "untrained" is the same network at its
initial weights; "chance" is the expectation under a random ranking (k/n, H_n/n, (n+1)/2).
"""


if __name__ == "__main__":
    main()
