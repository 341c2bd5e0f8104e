"""Sustain-pedal inference from note releases, scored against the CC64 of held-out ASAP performances.

    .venv/bin/python benchmarks/pedal_eval.py                    # test split: true notes and transcribed audio
    .venv/bin/python benchmarks/pedal_eval.py --split validation --tune --no-audio   # choose PedalConfig

Material: ASAP performances (Disklavier MIDI with the pianist's CC64) of the pieces that ``amt synth
--split-by folder`` puts in the given split (never trained on for ``test``). Each performance's
first ``--seconds`` are turned into *sounding* notes (offsets extended by the pedal, as ``amt synth``
labels them and as the model learns to transcribe them); the reference pedal is CC64 >= 64.

Rows: the inference run on those true sounding notes (what the method can do with perfect notes),
and, unless ``--no-audio``, on the bundled model's transcription of the notes rendered with
FluidSynth (MuseScore General's piano, a soundfont the model never trained on). Pedal presses
(onsets) and releases (offsets) are matched with mir_eval.onset.f_measure within ``--window``.
``--tune`` searches PedalConfig on the true notes and prints the best setting by mean F1.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pick_performances(root: Path, split: str, n: int, per_piece: int):
    from amtcli.synth.dataset import iter_midi_files, split_of

    by_piece: dict[str, list[Path]] = {}
    for path, key in iter_midi_files([root]):
        if path.name == "midi_score.mid":
            continue
        if split_of(path, key, fractions=(0.9, 0.05, 0.05), split_by="folder") != split:
            continue
        by_piece.setdefault(key.rsplit("/", 1)[0], []).append(path)
    out = []
    for piece in sorted(by_piece):
        out += sorted(by_piece[piece])[:per_piece]
    return out[:n]


def load_item(path: Path, seconds: float):
    """(sounding notes, reference pedal) of the first ``seconds`` of a performance (from its first note)."""
    from amtcli.notes import load_pretty_midi, pretty_midi_to_notes
    from amtcli.pedal import read_pedal

    pm = load_pretty_midi(path)
    notes = pretty_midi_to_notes(pm, sustain=True)
    pedal = read_pedal(pm)
    start = max(0.0, float(notes.onset_s.min()) - 0.5)
    notes = notes.clipped(start, start + seconds)
    pedal = pedal - start
    pedal = pedal[(pedal[:, 1] > 0) & (pedal[:, 0] < seconds)]
    pedal = np.clip(pedal, 0, seconds)
    # presses cut by the excerpt edges are not events of the excerpt
    pedal = pedal[(pedal[:, 0] > 0) & (pedal[:, 1] < seconds)]
    return notes, pedal


def evaluate(items, config, window):
    from amtcli.pedal import infer_pedal, pedal_scores

    rows = []
    for notes, ref in items:
        est, _ = infer_pedal(notes, config=config)
        rows.append(pedal_scores(ref, est, window_s=window))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("AMT_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=16, help="performances")
    ap.add_argument("--per-piece", type=int, default=3, help="performances per piece at most")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window", type=float, default=0.1, help="matching window (s)")
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--soundfont", default="/usr/share/sounds/sf3/MuseScore_General.sf3")
    ap.add_argument("--model", default="synthetic")
    args = ap.parse_args()

    from amtcli.pedal import PedalConfig

    paths = pick_performances(Path(args.data) / "midi" / "asap", args.split, args.n, args.per_piece)
    items = [load_item(p, args.seconds) for p in paths]
    n_ref = sum(len(r) for _, r in items)
    print(
        f"{len(items)} {args.split} performances x {args.seconds:.0f} s, {n_ref} reference presses; window +-{args.window * 1000:.0f} ms"
    )
    if args.tune:
        grid = itertools.product((0.03, 0.05, 0.08), (2, 3, 4), (0.05, 0.1, 0.2, 0.3), (0.0, 0.1, 0.2, 0.3))
        results = []
        for tol, k, rep, lag in grid:
            cfg = PedalConfig(tolerance_s=tol, min_notes=k, repress_s=rep, press_lag_s=lag)
            s = evaluate(items, cfg, args.window)
            results.append(((s["onset_f1"] + s["offset_f1"]) / 2, cfg, s))
        results.sort(key=lambda r: -r[0])
        for mean, cfg, s in results[:5]:
            print(f"mean F1 {mean:.3f}  onset {s['onset_f1']:.3f} offset {s['offset_f1']:.3f}  {cfg}")
        return
    header = f"{'notes the pedal is inferred from':40s} {'onset P':>7s} {'onset R':>7s} {'onset F1':>8s} {'offset P':>8s} {'offset R':>8s} {'offset F1':>9s} {'est/ref':>7s}"

    def row(name, s):
        print(
            f"{name:40s} {s['onset_precision']:7.3f} {s['onset_recall']:7.3f} {s['onset_f1']:8.3f} "
            f"{s['offset_precision']:8.3f} {s['offset_recall']:8.3f} {s['offset_f1']:9.3f} {s['n_est'] / max(s['n_ref'], 1):7.2f}"
        )

    print(header)
    row("true sounding notes", evaluate(items, PedalConfig(), args.window))
    if args.no_audio:
        return
    import torch

    torch.set_num_threads(1)
    from amtcli.inference.transcribe import transcribe_full
    from amtcli.synth.soundfont import render_batch
    from amtcli.zoo import load_model

    t0 = time.perf_counter()
    audios = render_batch([(n, args.seconds + 1.0) for n, _ in items], soundfont=args.soundfont)
    print(f"(rendered in {time.perf_counter() - t0:.0f} s)", flush=True)
    net, release = load_model(args.model, device="cpu")
    transcribed = []
    for (_notes, ref), audio in zip(items, audios):
        est_notes = transcribe_full(audio, model=(net, release), device="cpu").notes
        transcribed.append((est_notes, ref))
    row(f"transcribed audio ({args.model})", evaluate(transcribed, PedalConfig(), args.window))


if __name__ == "__main__":
    main()
