"""Make test "scores" from reference notes: what a score of a recorded performance looks like.

    .venv/bin/python scripts/make_test_scores.py                       # the 11 real MAPS recordings -> work/scores/
    .venv/bin/python scripts/make_test_scores.py --seed 1 --out DIR
    .venv/bin/python scripts/make_test_scores.py --labels a.txt b.mid --out DIR

A score is not the performance. From each file of reference notes (a MAPS ``.txt``, or a MIDI file)
this writes ``<stem>.mid``, a score of the same piece:

1. score time runs against the performance at a smooth random tempo ratio between 0.8 and 1.2
   (``--tempo-range``): knots every ``--knot-s`` seconds, uniform in the range, joined by a
   monotone cubic (PCHIP, which stays inside the range);
2. onsets and offsets are snapped to a 1/16 grid of score time (a sixteenth of the piece's beat,
   estimated from the reference onsets with :func:`amtcli.rhythm.estimate_tempo`), so in the
   performance the grid follows the local tempo; a note lasts at least one grid step, and two
   notes of one pitch on one grid point become one;
3. every velocity is 64;
4. 3 % of the notes are deleted and 3 % wrong notes are inserted (``--delete``, ``--insert``): a
   wrong note sits at the grid onset of a random kept note, 1 to 12 semitones away from it, on a
   pitch not already sounding there, with that note's duration.

Beside each score, ``<stem>.json`` holds the truth a benchmark needs: for each score note (in the
MIDI file's order: by onset, then pitch) the index of its reference note (-1 for an inserted one),
the reference notes deleted, the tempo curve and the settings. Each file's random stream is seeded
by ``--seed`` and the file's name, so a file's score does not change when other files are added.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data"))
WRONG_STEPS = np.array([1, 2, 3, 4, 5, 7, 12])


def read_reference(path: Path):
    """A MAPS ``.txt`` (onset, offset, pitch) or a MIDI file -> NoteArray."""
    from amtcli.datasets.base import read_maps_txt
    from amtcli.notes import midi_to_notes

    if path.suffix.lower() == ".txt":
        return read_maps_txt(path)
    return midi_to_notes(path)


def tempo_curve(duration_s: float, *, rng: np.random.Generator, tempo_range: float, knot_s: float):
    """Performance seconds -> score seconds: ``(times (n,), score_times (n,))`` on a 10 ms grid,
    with the slope (score seconds per performance second) between ``1 - tempo_range`` and ``1 + tempo_range``."""
    from scipy.interpolate import PchipInterpolator

    n_knots = max(2, int(np.ceil(duration_s / knot_s)) + 2)
    knots_t = np.arange(n_knots) * knot_s
    ratio = rng.uniform(1 - tempo_range, 1 + tempo_range, n_knots)
    t = np.arange(0.0, duration_s + 1.0, 0.01)
    slope = PchipInterpolator(knots_t, ratio)(t)
    tau = np.concatenate([[0.0], np.cumsum(0.5 * (slope[1:] + slope[:-1]) * np.diff(t))])
    return t, tau


def make_score(
    reference,
    *,
    rng: np.random.Generator,
    tempo_range: float = 0.2,
    knot_s: float = 8.0,
    delete: float = 0.03,
    insert: float = 0.03,
    velocity: int = 64,
):
    """Reference notes -> ``(score notes, source index (n,), deleted reference indices, info dict)``.

    ``source[i]`` is the reference index of score note ``i`` (-1: an inserted wrong note); the score
    notes are sorted by onset, then pitch.
    """
    from amtcli.notes import NoteArray
    from amtcli.rhythm import estimate_tempo, onset_strength_from_notes

    ref = reference.sorted()
    n = len(ref)
    if n == 0:
        raise ValueError("no reference notes")
    env = onset_strength_from_notes(ref, n_frames=int(np.ceil(ref.end_s * 100)) + 1, frame_rate=100.0)
    bpm = estimate_tempo(env, frame_rate=100.0)
    step_s = 60.0 / bpm / 4  # a sixteenth of score time
    t, tau = tempo_curve(ref.end_s, rng=rng, tempo_range=tempo_range, knot_s=knot_s)
    on = np.rint(np.interp(ref.onset_s, t, tau) / step_s).astype(np.int64)
    off = np.rint(np.interp(ref.offset_s, t, tau) / step_s).astype(np.int64)
    off = np.maximum(off, on + 1)

    # one note per pitch and grid onset (the longest)
    order = np.lexsort((-off, ref.pitch, on))
    seen: set[tuple[int, int]] = set()
    kept = []
    for i in order:
        key = (int(on[i]), int(ref.pitch[i]))
        if key not in seen:
            seen.add(key)
            kept.append(int(i))
    kept = np.array(sorted(kept), np.int64)
    n_delete = int(round(delete * n))
    deleted = np.sort(rng.choice(kept, size=min(n_delete, len(kept) - 1), replace=False))
    kept = np.setdiff1d(kept, deleted)

    rows = [(on[i], off[i], int(ref.pitch[i]), int(i)) for i in kept]
    sounding = {(int(on[i]), int(ref.pitch[i])) for i in kept}
    n_insert = int(round(insert * n))
    tries = 0
    added = 0
    while added < n_insert and tries < 100 * (n_insert + 1):
        tries += 1
        base = int(rng.choice(kept))
        pitch = int(ref.pitch[base] + rng.choice([-1, 1]) * rng.choice(WRONG_STEPS))
        if not 21 <= pitch <= 108 or (int(on[base]), pitch) in sounding:
            continue
        sounding.add((int(on[base]), pitch))
        rows.append((on[base], off[base], pitch, -1))
        added += 1
    a = np.array(rows, dtype=np.float64)
    order = np.lexsort((a[:, 2], a[:, 0]))
    a = a[order]
    notes = NoteArray(a[:, 0] * step_s, a[:, 1] * step_s, a[:, 2], np.full(len(a), velocity), np.zeros(len(a)))
    info = {
        "bpm": bpm,
        "grid_s": step_s,
        "tempo_range": tempo_range,
        "knot_s": knot_s,
        "n_reference": n,
        "n_merged": n - len(kept) - len(deleted),
        "n_deleted": len(deleted),
        "n_inserted": added,
    }
    return notes, a[:, 3].astype(np.int64), deleted, info, (t, tau)


def file_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", nargs="*", type=Path, help="reference files (default: the MAPS .txt labels)")
    ap.add_argument("--out", type=Path, default=ROOT / "work" / "scores")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tempo-range", type=float, default=0.2)
    ap.add_argument("--knot-s", type=float, default=8.0)
    ap.add_argument("--delete", type=float, default=0.03)
    ap.add_argument("--insert", type=float, default=0.03)
    ap.add_argument("--overwrite", action="store_true", help="replace scores that are already there")
    args = ap.parse_args()

    from amtcli.notes import notes_to_midi

    labels = args.labels or sorted((DATA / "real" / "maps").rglob("MAPS_MUS-*.txt"))
    if not labels:
        print(f"no reference files (looked under {DATA / 'real' / 'maps'}; set AMT_DATA)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path in labels:
        mid, side = args.out / f"{path.stem}.mid", args.out / f"{path.stem}.json"
        if mid.exists() and not args.overwrite:
            print(f"{mid}: already there (--overwrite to replace)")
            continue
        rng = np.random.default_rng(file_seed(args.seed, path.stem))
        notes, source, deleted, info, (t, tau) = make_score(
            read_reference(path),
            rng=rng,
            tempo_range=args.tempo_range,
            knot_s=args.knot_s,
            delete=args.delete,
            insert=args.insert,
        )
        resolution = 960
        notes_to_midi(notes, mid, tempo_map=[(0, 60.0 / info["bpm"] / resolution)], resolution=resolution)
        truth = {
            "reference": str(path),
            "seed": args.seed,
            **info,
            "source": source.tolist(),
            "deleted": deleted.tolist(),
            "tempo_curve": {"performance_s": t[::50].round(3).tolist(), "score_s": tau[::50].round(4).tolist()},
        }
        side.write_text(json.dumps(truth))
        print(
            f"{mid}: {len(notes)} notes ({info['n_deleted']} deleted, {info['n_inserted']} inserted, "
            f"{info['n_merged']} merged), {info['bpm']:.0f} BPM grid {info['grid_s'] * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
