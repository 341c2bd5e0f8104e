"""Score alignment and score-informed transcription on the real MAPS recordings (issue 17).

    .venv/bin/python scripts/make_test_scores.py              # once: the test scores -> work/scores/
    .venv/bin/python benchmarks/score_informed.py             # the per-file table
    .venv/bin/python benchmarks/score_informed.py --sweep     # the threshold grid on the tuning files
    .venv/bin/python benchmarks/score_informed.py --keep-threshold 0.5 --add-threshold 0.05

For each of the 11 MAPS Disklavier recordings (``$AMT_DATA/real/maps``) and its test score (made
by ``scripts/make_test_scores.py``: a smooth +-20 % tempo curve, a 1/16 grid, velocity 64, 3 %
of notes deleted and 3 % wrong notes inserted), this prints:

- blind: note P/R/F1 of the model alone (mir_eval, 50 ms onsets, offsets ignored);
- informed: the same after :func:`amtcli.align.correct_transcription` with the aligned score
  (what ``amt transcribe REC --score S.mid`` writes);
- align: the onset error of the aligned score notes (``amt align``'s output) against the MAPS
  labels: median and 95th percentile of |error| in ms over the score notes that come from a
  labelled note (inserted wrong notes have no label).

Thresholds were chosen on the tuning files (``TUNE``: three recordings, both pianos, see
``--sweep``); the "test" rows are the other eight, which played no part in choosing them.
The posteriors of each recording are cached under ``work/score_informed/<model sha256[:12]>/``
(the model's weights are hashed, so a new model is measured afresh); the first line names the
model and its sha256.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data"))
# chosen to cover both pianos (ENSTDkAm: ambient microphones, ENSTDkCl: close) and no piece of the test rows
TUNE = ("MAPS_MUS-chpn-p14_ENSTDkAm", "MAPS_MUS-grieg_kobold_ENSTDkAm", "MAPS_MUS-scn16_3_ENSTDkCl")


def model_posteriors(wavs: list[Path], *, model: str, cache: Path) -> tuple[dict[str, dict], str, object]:
    """Onset/frame/offset/velocity posteriors of each recording, computed once and cached."""
    from amtcli.zoo import load_release, resolve

    folder = resolve(model)
    sha = hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()
    where = cache / sha[:12]
    where.mkdir(parents=True, exist_ok=True)
    net = release = None
    out = {}
    for wav in wavs:
        path = where / f"{wav.stem}.npz"
        if not path.is_file():
            if net is None:
                net, release = load_release(folder, device="cpu")
            from amtcli.inference.transcribe import transcribe_full

            t0 = time.perf_counter()
            r = transcribe_full(wav, model=(net, release), device="cpu")
            tmp = path.with_name(f".{path.name}.tmp.npz")
            np.savez_compressed(
                tmp, **{k: v.astype(np.float16) for k, v in r.posteriors.items()}, frame_rate=r.frame_rate
            )
            os.replace(tmp, path)
            print(f"  transcribed {wav.stem} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        with np.load(path) as z:
            out[wav.stem] = {k: z[k].astype(np.float32) for k in ("onset", "frame", "offset", "velocity")}
            out[wav.stem]["frame_rate"] = float(z["frame_rate"])
    from amtcli.zoo import read_release_config

    return out, sha, read_release_config(folder)


def ensure_scores(stems_labels: list[tuple[str, Path]], folder: Path) -> None:
    """Make the test scores that are missing (seed 0), as scripts/make_test_scores.py would."""
    missing = [(s, p) for s, p in stems_labels if not (folder / f"{s}.json").is_file()]
    if not missing:
        return
    import subprocess

    cmd = [sys.executable, str(ROOT / "scripts" / "make_test_scores.py"), "--out", str(folder), "--labels"]
    subprocess.run(cmd + [str(p) for _, p in missing], check=True, stdout=subprocess.DEVNULL)


def evaluate_file(stem, post, ref, score, truth, *, release, align_cfg, correct_cfg, alignment=None):
    from amtcli.align import align_notes, correct_transcription
    from amtcli.evaluation.metrics import note_counts
    from amtcli.inference.decoding import decode_frames

    fr = post["frame_rate"]
    fmin = release.feature_config.fmin_midi
    decode = release.decode_config
    blind = decode_frames(
        post["onset"],
        post["frame"],
        offset=post["offset"],
        velocity=post["velocity"],
        frame_rate=fr,
        config=decode,
        fmin_midi=fmin,
    )
    al = alignment or align_notes(score, post, frame_rate=fr, fmin_midi=fmin, config=align_cfg)
    fixed = correct_transcription(
        blind, al, post, frame_rate=fr, fmin_midi=fmin, min_note_s=decode.min_note_s, config=correct_cfg
    )
    src = np.asarray(truth["source"])
    if len(src) != len(score):
        raise SystemExit(f"{stem}: the score and its truth file disagree; make the scores again (--overwrite)")
    ok = src >= 0
    err = np.abs(al.notes.onset_s[ok] - ref.onset_s[src[ok]])
    return {
        "blind": note_counts(ref, blind, with_velocity=False)["note"],
        "informed": note_counts(ref, fixed.notes, with_velocity=False)["note"],
        "align_err": err,
        "correction": fixed,
        "alignment": al,
    }


def identify_probe(wavs, posts, scores, *, release, align_cfg) -> int:
    """Each recording against every test score: rank the scores by the mean cost along the DTW path
    (the whole recording against the whole score), and report the rank of the right piece."""
    from amtcli.align import align_notes

    fmin = release.feature_config.fmin_midi
    pieces = {s: s.split("MAPS_MUS-")[1].rsplit("_", 1)[0] for s in scores}
    ranks = []
    for w in wavs:
        t0 = time.perf_counter()
        costs = []
        for s, score in scores.items():
            al = align_notes(
                score, posts[w.stem], frame_rate=posts[w.stem]["frame_rate"], fmin_midi=fmin, config=align_cfg
            )
            costs.append((al.cost, s))
        costs.sort()
        rank = 1 + next(i for i, (_, s) in enumerate(costs) if pieces[s] == pieces[w.stem])
        ranks.append(rank)
        print(
            f"{w.stem[9:]:34s} rank {rank}  best {costs[0][1][9:]} ({costs[0][0]:.3f})  "
            f"{time.perf_counter() - t0:.1f} s for {len(costs)} scores"
        )
    ranks = np.array(ranks)
    print(
        f"R@1 {np.mean(ranks == 1):.3f}  R@5 {np.mean(ranks <= 5):.3f}  MRR {np.mean(1 / ranks):.3f}  among {len(scores)} scores"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic")
    ap.add_argument("--scores", type=Path, default=ROOT / "work" / "scores")
    ap.add_argument("--cache", type=Path, default=ROOT / "work" / "score_informed")
    ap.add_argument("--keep-threshold", type=float)
    ap.add_argument("--add-threshold", type=float)
    ap.add_argument("--sweep", action="store_true", help="the keep/add threshold grid on the tuning files")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--identify",
        action="store_true",
        help="a probe of a transcription-based matcher: rank every test score by the mean DTW cost of aligning it",
    )
    args = ap.parse_args()

    from amtcli.align import AlignConfig, CorrectConfig
    from amtcli.datasets.base import read_maps_txt
    from amtcli.notes import midi_to_notes

    wavs = sorted((DATA / "real" / "maps").rglob("MAPS_MUS-*.wav"))
    if not wavs:
        print(f"no MAPS recordings under {DATA / 'real' / 'maps'} (set AMT_DATA)", file=sys.stderr)
        return 1
    ensure_scores([(w.stem, w.with_suffix(".txt")) for w in wavs], args.scores)
    posts, sha, release = model_posteriors(wavs, model=args.model, cache=args.cache)
    refs = {w.stem: read_maps_txt(w.with_suffix(".txt")).sorted() for w in wavs}
    scores = {w.stem: midi_to_notes(args.scores / f"{w.stem}.mid") for w in wavs}
    truths = {w.stem: json.loads((args.scores / f"{w.stem}.json").read_text()) for w in wavs}
    align_cfg = AlignConfig()
    changes = {
        k: v
        for k, v in (("keep_threshold", args.keep_threshold), ("add_threshold", args.add_threshold))
        if v is not None
    }
    correct_cfg = dataclasses.replace(CorrectConfig(), **changes)
    print(f"model {args.model} sha256 {sha}; scores {args.scores} (seed {truths[wavs[0].stem]['seed']})")

    if args.identify:
        return identify_probe(wavs, posts, scores, release=release, align_cfg=align_cfg)

    if args.sweep:
        tune = [w.stem for w in wavs if w.stem in TUNE]
        print(f"sweep on the tuning files: {', '.join(tune)} (note F1 pooled)")
        aligned = {}
        for s in tune:
            r = evaluate_file(
                s,
                posts[s],
                refs[s],
                scores[s],
                truths[s],
                release=release,
                align_cfg=align_cfg,
                correct_cfg=correct_cfg,
            )
            aligned[s] = r["alignment"]
        grid = {
            "keep_threshold": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
            "add_threshold": (0.01, 0.02, 0.05),
            "add_frame_threshold": (0.05, 0.1, 0.2),
        }
        results = []
        for values in itertools.product(*grid.values()):
            cfg = dataclasses.replace(correct_cfg, **dict(zip(grid, values)))
            total = None
            for s in tune:
                c = evaluate_file(
                    s,
                    posts[s],
                    refs[s],
                    scores[s],
                    truths[s],
                    release=release,
                    align_cfg=align_cfg,
                    correct_cfg=cfg,
                    alignment=aligned[s],
                )["informed"]
                total = c if total is None else total + c
            results.append((total.f1, values))
        results.sort(reverse=True)
        print("  ".join(grid) + "  note F1")
        for f1, values in results[:10]:
            print("  ".join(f"{v:g}".rjust(len(k)) for k, v in zip(grid, values)) + f"  {f1:.4f}")
        return 0

    print(
        f"align: {align_cfg}\ncorrect: {correct_cfg}\n"
        f"{'file':34s} {'set':4s} {'notes':>5s} {'blind P/R/F1':>17s} {'informed P/R/F1':>17s} {'gain':>6s} "
        f"{'align med/p95 ms':>16s} {'kept/+/-':>14s}"
    )
    pooled = {"tune": [], "test": []}
    rows = []
    for w in wavs:
        s = w.stem
        r = evaluate_file(
            s, posts[s], refs[s], scores[s], truths[s], release=release, align_cfg=align_cfg, correct_cfg=correct_cfg
        )
        part = "tune" if s in TUNE else "test"
        pooled[part].append(r)
        b, i, e, c = r["blind"], r["informed"], r["align_err"] * 1000, r["correction"]
        rows.append(
            {
                "file": s,
                "set": part,
                "blind_f1": b.f1,
                "informed_f1": i.f1,
                "align_median_ms": float(np.median(e)),
                "align_p95_ms": float(np.percentile(e, 95)),
            }
        )
        print(
            f"{s[9:]:34s} {part:4s} {b.n_ref:5d} {b.precision:5.3f}/{b.recall:5.3f}/{b.f1:5.3f} "
            f"{i.precision:5.3f}/{i.recall:5.3f}/{i.f1:5.3f} {i.f1 - b.f1:+6.3f} {np.median(e):7.1f}/{np.percentile(e, 95):6.1f}  "
            f"{c.kept + c.kept_unscored:5d}/+{c.added}/-{c.dropped}"
        )
    summary = {}
    for name, parts in (("test", pooled["test"]), ("tune", pooled["tune"]), ("all", pooled["test"] + pooled["tune"])):
        if not parts:
            continue
        b = sum((p["blind"] for p in parts[1:]), parts[0]["blind"])
        i = sum((p["informed"] for p in parts[1:]), parts[0]["informed"])
        e = np.concatenate([p["align_err"] for p in parts]) * 1000
        summary[name] = {
            "files": len(parts),
            "blind_f1": b.f1,
            "informed_f1": i.f1,
            "align_median_ms": float(np.median(e)),
            "align_p95_ms": float(np.percentile(e, 95)),
        }
        print(
            f"{'pooled ' + name + f' ({len(parts)} files)':34s} {'':4s} {b.n_ref:5d} {b.precision:5.3f}/{b.recall:5.3f}/{b.f1:5.3f} "
            f"{i.precision:5.3f}/{i.recall:5.3f}/{i.f1:5.3f} {i.f1 - b.f1:+6.3f} {np.median(e):7.1f}/{np.percentile(e, 95):6.1f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"model": args.model, "sha256": sha, "files": rows, "pooled": summary}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
