"""Identification at library scale (issue 17, item 1): which piece of a >= 1,000-file MIDI library
does a recording play, and from where?

    .venv/bin/python scripts/make_test_scores.py          # once: the MAPS test scores -> work/scores/
    D=../shared/data/midi
    .venv/bin/amt synth $D/asap $D/pop909 $D/nottingham -o work/identify/rendered --only-split test \\
        --max-files 30 --augment none --transpose 0 --excerpt-s 30 --seed 0   # once: rendered queries
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/identify_library.py --jobs 2
    .venv/bin/python benchmarks/identify_library.py --embedding 60   # also the embedding, 60 distractors

The library: every MIDI file of ``$AMT_DATA/midi/{asap,pop909,nottingham}`` plus the 11 MAPS test
scores (``scripts/make_test_scores.py``: a +-20 % tempo curve, a 1/16 grid, velocity 64, 3 % of
notes deleted and 3 % wrong ones inserted), about 3,000 files. It is indexed with
:func:`amtcli.inference.note_index.index_notes` (cached under ``--cache``; the line says how many
files were read now, wall and CPU seconds, pieces per minute and the load average).

Queries, each ranked with :func:`amtcli.inference.identify_notes.rank_by_notes` (the transcription
of the default model; posteriors cached under ``work/score_informed/<model sha256[:12]>/`` as
``benchmarks/score_informed.py`` does):

- ``real``: the 11 MAPS Disklavier recordings, whole (the offset's truth: 0);
- ``real-30s``: a 30 s excerpt of each (seeded start; the posteriors of the whole recording cut
  there), the offset's truth the test score's time at the excerpt's start (its tempo curve);
- ``rendered``: the ``amt synth --only-split test`` excerpts of library pieces (the offset's
  truth: the excerpt's start in its source file).

A query is right when the first piece is the right piece: for MAPS, its test score or an ASAP
performance of the same piece (ASAP holds Beethoven's sonata 8-2 and Kreisleriana 3); for a render,
its source file. Offsets (DTW on the first piece) are checked where the first piece is the query's
own file. Rows: ``transcription`` ranks by the fingerprint score (what ``amt identify`` does);
``dtw-rerank`` re-orders its first ``--shortlist`` pieces by DTW cost (the rest keep their order). With ``--embedding N`` the joint
embedding (``amt identify --method embedding``) runs on the real queries against a smaller library
(the test scores and N seeded distractors from the same folders): at ~2 s a file it cannot index
3,000 files here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data"))
SAME_PIECE = {"pathetique_2": "/Beethoven/Piano_Sonatas/8-2/", "scn16_3": "/Schumann/Kreisleriana/3/"}
SETS = ("asap", "pop909", "nottingham")


def piece_of(stem: str) -> str:
    """``MAPS_MUS-scn15_11_ENSTDkAm`` -> ``scn15_11``."""
    return stem.split("MAPS_MUS-")[1].rsplit("_", 1)[0]


def library_files(scores: Path, sets) -> list[Path]:
    files = [p.resolve() for s in sets for p in sorted((DATA / "midi" / s).rglob("*.mid"))]
    return sorted(set(files) | {p.resolve() for p in scores.glob("MAPS_MUS-*.mid")})


def ranks_of(order: list[str], right) -> int:
    """1-based rank of the first right file in ``order`` (len + 1 when none is)."""
    return 1 + next((i for i, f in enumerate(order) if right(f)), len(order))


def summary(ranks) -> str:
    r = np.asarray(ranks, float)
    return (
        f"R@1 {np.mean(r == 1):.3f}  R@5 {np.mean(r <= 5):.3f}  MRR {np.mean(1 / r):.3f}  median rank {np.median(r):g}"
    )


def run_queries(name, queries, lib, *, frame_rate, shortlist, pool, rows):
    """queries: (label, notes, posteriors, right(file) -> bool, own file or None, true offset or None)."""
    from amtcli.fingerprint import note_codes
    from amtcli.inference.identify_notes import rank_by_notes

    pre, dtw, offset_err, times = [], [], [], []
    print(f"\n{name}: {len(queries)} queries")
    for label, notes, post, right, own, true_offset in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        scores = lib.index.search(note_codes(notes, config=lib.config)[0], length_norm=lib.config.length_norm)
        order = [lib.files[i] for i in np.lexsort((np.arange(len(scores)), -scores))]
        seconds = {}
        found = rank_by_notes(
            notes, post, lib, frame_rate=frame_rate, top=shortlist, shortlist=shortlist, pool=pool, seconds=seconds
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        reranked = [m.file for m in sorted(found, key=lambda m: (m.cost, m.prefilter_rank))]
        reranked += [f for f in order if f not in set(reranked)]
        r_pre, r_dtw = ranks_of(order, right), ranks_of(reranked, right)
        pre.append(r_pre)
        dtw.append(r_dtw)
        times.append(wall)
        off = ""
        if own is not None and true_offset is not None and found[0].file == own:
            err = found[0].offset_s - true_offset
            offset_err.append(abs(err))
            off = f"offset {found[0].offset_s:7.1f} s (truth {true_offset:6.1f}, error {err:+.2f})"
        print(
            f"  {label[:38]:38s} rank {r_pre:4d}  (dtw-rerank {r_dtw:4d})  first {found[0].file[-40:]:40s} "
            f"{off}  {wall:.2f} s ({seconds['prefilter']:.2f} + {seconds['rerank']:.2f}; cpu {cpu:.2f})"
        )
    rows.append((name, "transcription", pre, offset_err, times))
    rows.append((name, "dtw-rerank", dtw, None, None))


def maps_queries(wavs, posts, scores_dir, lib, *, excerpt_s, seed, decode, fmin):
    from amtcli.inference.decoding import decode_frames

    whole, parts = [], []
    rng = np.random.default_rng(seed)
    for w in wavs:
        post = posts[w.stem]
        fr = post["frame_rate"]
        piece = piece_of(w.stem)
        own = next((f for f in lib.files if f.endswith(f"/{w.stem}.mid")), None)

        def right(f, piece=piece):
            return f"/MAPS_MUS-{piece}_" in f or (piece in SAME_PIECE and SAME_PIECE[piece] in f)

        def notes_of(p, fr=fr):
            return decode_frames(
                p["onset"],
                p["frame"],
                offset=p["offset"],
                velocity=p["velocity"],
                frame_rate=fr,
                config=decode,
                fmin_midi=fmin,
            )

        whole.append((w.stem[9:], notes_of(post), post, right, own, 0.0))
        n = len(post["onset"])
        length = int(excerpt_s * fr)
        start = int(rng.integers(0, max(1, n - length)))
        cut = {k: v[start : start + length] for k, v in post.items() if k != "frame_rate"}
        curve = json.loads((scores_dir / f"{w.stem}.json").read_text())["tempo_curve"]
        truth = float(np.interp(start / fr, curve["performance_s"], curve["score_s"]))
        parts.append((f"{w.stem[9:]}@{start / fr:.0f}s", notes_of(cut), cut, right, own, truth))
    return whole, parts


def rendered_queries(folder: Path, lib, *, model, cache: Path):
    """(label, notes, posteriors, right, own, offset) per rendered item of ``folder``'s manifest."""
    from amtcli.zoo import load_release, resolve

    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        print(f"\n(no rendered queries: {manifest} is missing; see the docstring)")
        return []
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    sha = hashlib.sha256((Path(resolve(model)) / "model.safetensors").read_bytes()).hexdigest()
    where = cache / sha[:12] / "rendered"
    where.mkdir(parents=True, exist_ok=True)
    net = None
    out = []
    fr = 0.0
    index = {f: i for i, f in enumerate(lib.files)}
    for it in items:
        src = Path(it["source"]).resolve().relative_to(lib.root).as_posix()  # as the index names it
        if src not in index:
            continue
        path = where / f"{it['id']}.npz"
        if not path.is_file():
            if net is None:
                net = load_release(resolve(model), device="cpu")
            from amtcli.inference.transcribe import transcribe_full

            r = transcribe_full(folder / it["audio"], model=net, device="cpu")
            tmp = path.with_name(f".{path.name}.tmp.npz")
            np.savez_compressed(
                tmp,
                **{k: v.astype(np.float16) for k, v in r.posteriors.items()},
                frame_rate=r.frame_rate,
                onset_s=r.notes.onset_s,
                offset_s=r.notes.offset_s,
                pitch=r.notes.pitch,
            )
            os.replace(tmp, path)
        from amtcli.notes import NoteArray

        with np.load(path) as z:
            post = {k: z[k].astype(np.float32) for k in ("onset", "frame")}
            n = len(z["pitch"])
            notes = NoteArray(z["onset_s"], z["offset_s"], z["pitch"], np.full(n, 64), np.zeros(n, np.int64))
            fr = float(z["frame_rate"])
        out.append((Path(src).name, notes, post, lambda f, src=src: f == src, src, float(it["excerpt"][0])))
    return out, fr


def embedding_probe(wavs, scores_dir, sets, n_distractors, seed, cache_dir, rows):
    """The joint embedding on the whole real recordings, against the test scores plus distractors."""
    import tempfile

    from amtcli.inference.identify import identify_recording, load_embedding_model

    rng = np.random.default_rng(seed)
    pool = [p for s in sets for p in sorted((DATA / "midi" / s).rglob("*.mid"))]
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(n_distractors, len(pool)), replace=False)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lib"
        folder.mkdir()
        for p in list(scores_dir.glob("MAPS_MUS-*.mid")) + chosen:
            rel = p.name if p.parent == scores_dir else p.relative_to(DATA / "midi").as_posix().replace("/", "__")
            (folder / rel).symlink_to(p.resolve())
        net = load_embedding_model("embedding")
        n_files = len(list(folder.iterdir()))
        t0 = time.perf_counter()
        ranks, times = [], []
        print(
            f"\nembedding: {len(wavs)} recordings against {n_files} files (the test scores + {len(chosen)} distractors)"
        )
        for w in wavs:
            piece = piece_of(w.stem)
            t1 = time.perf_counter()
            found = identify_recording(w, folder, model=net, top=n_files, cache_dir=cache_dir)
            times.append(time.perf_counter() - t1)
            order = [m.file for m in found.matches]
            order += [f for f in found.index.files if f not in set(order)]

            def right(f, piece=piece):
                return f"MAPS_MUS-{piece}_" in f or (
                    piece in SAME_PIECE and SAME_PIECE[piece].strip("/").replace("/", "__") in f
                )

            r = ranks_of(order, right)
            ranks.append(r)
            print(f"  {w.stem[9:]:38s} rank {r:4d}  first {order[0][-40:]:40s} {times[-1]:.1f} s")
        print(f"  (embedding total {time.perf_counter() - t0:.0f} s, indexing included in the first query)")
    rows.append((f"real (library of {n_files})", "embedding", ranks, None, times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic")
    ap.add_argument("--scores", type=Path, default=ROOT / "work" / "scores")
    ap.add_argument("--rendered", type=Path, default=ROOT / "work" / "identify" / "rendered")
    ap.add_argument("--cache", type=Path, default=ROOT / "work" / "identify" / "cache")
    ap.add_argument("--posteriors", type=Path, default=ROOT / "work" / "score_informed")
    ap.add_argument("--sets", default=",".join(SETS), help="folders of $AMT_DATA/midi in the library")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--shortlist", type=int, default=3)
    ap.add_argument("--pool", type=int, default=8)
    ap.add_argument("--excerpt-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedding", type=int, default=None, metavar="N", help="also the embedding, N distractors")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from score_informed import ensure_scores, model_posteriors

    from amtcli.inference.note_index import index_notes

    wavs = sorted((DATA / "real" / "maps").rglob("MAPS_MUS-*.wav"))
    if not wavs:
        print(f"no MAPS recordings under {DATA / 'real' / 'maps'} (set AMT_DATA)", file=sys.stderr)
        return 1
    ensure_scores([(w.stem, w.with_suffix(".txt")) for w in wavs], args.scores)
    sets = [s for s in args.sets.split(",") if s]
    files = library_files(args.scores, sets)
    print(f"library: {len(files)} MIDI files ({', '.join(sets)} + {len(wavs)} MAPS test scores)")

    last = [0.0]

    def progress(done, total, name):
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            print(f"  indexed {done}/{total}", file=sys.stderr, flush=True)

    t0, c0 = time.perf_counter(), os.times()
    lib = index_notes(files, cache_dir=args.cache, jobs=args.jobs, progress=progress)
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user)
    cpu += c1.children_system - c0.children_system
    load = os.getloadavg()
    rate = f"{lib.n_indexed / wall * 60:.0f} pieces/min wall" if lib.n_indexed else "all from the cache"
    print(
        f"index: {len(lib.files)} pieces usable, {len(lib.skipped)} skipped; {lib.n_indexed} read now in "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU ({rate}; "
        f"{lib.n_indexed / max(cpu, 1e-9) * 60:.0f} per CPU-minute), {len(lib.index.codes):,} postings; "
        f"load average {load[0]:.1f} on {os.cpu_count()} cores"
    )

    posts, sha, release = model_posteriors(wavs, model=args.model, cache=args.posteriors)
    print(f"model {args.model} sha256 {sha}")
    fmin = release.feature_config.fmin_midi
    fr = posts[wavs[0].stem]["frame_rate"]
    whole, parts = maps_queries(
        wavs, posts, args.scores, lib, excerpt_s=args.excerpt_s, seed=args.seed, decode=release.decode_config, fmin=fmin
    )
    rows: list = []
    kw = dict(frame_rate=fr, shortlist=args.shortlist, pool=args.pool, rows=rows)
    run_queries("real", whole, lib, **kw)
    run_queries(f"real-{args.excerpt_s:g}s", parts, lib, **kw)
    rendered = rendered_queries(args.rendered, lib, model=args.model, cache=args.posteriors)
    if rendered and rendered[0]:
        run_queries("rendered", rendered[0], lib, **{**kw, "frame_rate": rendered[1]})
    if args.embedding is not None:
        embedding_probe(wavs, args.scores, sets, args.embedding, args.seed, args.cache / "embedding", rows)

    print(f"\n{'queries':24s} {'method':14s} {'n':>3s}  metrics{'':58s} offset |err| <= 1 s   query s (median / max)")
    for name, method, ranks, off, times in rows:
        o = f"{np.sum(np.asarray(off) <= 1.0)}/{len(off)} (median {np.median(off):.2f} s)" if off else "-"
        t = f"{np.median(times):.2f} / {np.max(times):.2f}" if times else "-"
        print(f"{name:24s} {method:14s} {len(ranks):3d}  {summary(ranks):65s} {o:22s} {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
