"""Beat, downbeat and meter accuracy on rendered music with known, varying tempo.

    .venv/bin/python benchmarks/beats_eval.py                      # 24 held-out Nottingham tunes
    .venv/bin/python benchmarks/beats_eval.py --split train --n 40 # training-split tunes, to try changes on
    .venv/bin/python benchmarks/beats_eval.py --startup            # what librosa's beat_track costs a new process

Material: Nottingham tunes (quantized MIDI with time signatures; 2/4, 3/4 and 4/4 tunes, the test
split of ``amt synth --split-by file``), each played through a known tempo curve (a base tempo of
70-140 BPM, a slow sinusoidal swing of up to +-12 % over 8-24 beats, and a final ritardando), so the
true beats and downbeats are known exactly. The first 40 s are rendered with FluidSynth
(MuseScore General's piano by default, a soundfont the bundled model never trained on) and
transcribed with the bundled ``synthetic`` model.

Each beat tracker is scored with mir_eval.beat.f_measure (+-70 ms) on beats and on downbeats; the
meter is right when the estimated beats per bar equal the tune's. amt's rows run
``amtcli.rhythm.estimate_grid`` (what ``amt transcribe`` runs: beats, then meter and downbeats from
the transcribed notes; s/tune is its time); librosa's beats get the same meter estimate. The key
estimate is scored against the tunes' key signatures (tunes with one key). Rows: onset envelopes from the
audio (CQT spectral flux), from the model's onset posteriors, from the transcribed notes, librosa's
``beat_track`` on its own onset strength of the audio, and (an upper bound for the note-based
methods) the true notes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def warp_notes(pm, *, rng):
    """Nottingham MIDI (120 BPM) -> (notes in warped seconds, beats_s, downbeats_s, beats_per_bar)."""
    from amtcli.notes import NoteArray, pretty_midi_to_notes

    notes = pretty_midi_to_notes(pm)
    num = pm.time_signature_changes[0].numerator
    q_end = notes.end_s * 2.0 + 4  # quarter notes at 120 BPM
    base = rng.uniform(70, 140)
    depth = rng.uniform(0.0, 0.12)
    span = rng.uniform(8, 24)
    phase = rng.uniform(0, 2 * np.pi)
    q = np.linspace(0, q_end, int(q_end * 64) + 1)
    tempo = base * (1 + depth * np.sin(2 * np.pi * q / span + phase))
    rit = np.clip((q - (q_end - 8)) / 8, 0, 1)  # the last 8 beats slow down by up to 30 %
    tempo *= 1 - 0.3 * rit
    sec = np.concatenate([[0.0], np.cumsum(60.0 / tempo[:-1] * np.diff(q))]) + 0.5  # 0.5 s of silence first

    def to_s(qs):
        return np.interp(qs, q, sec)

    warped = NoteArray(
        to_s(notes.onset_s * 2), to_s(notes.offset_s * 2), notes.pitch, notes.velocity, np.zeros(len(notes))
    )
    beats = to_s(np.arange(0, int(q_end)))
    downbeats = to_s(np.arange(0, int(q_end), num))
    return warped, beats, downbeats, num


def pick_tunes(root: Path, split: str, n: int):
    import warnings

    import pretty_midi

    from amtcli.synth.dataset import split_of

    out = []
    for path in sorted(root.glob("*.mid")):
        if split_of(path, path.name, fractions=(0.9, 0.05, 0.05), split_by="file") != split:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(path))
        ts = pm.time_signature_changes
        if len(ts) != 1 or ts[0].denominator != 4 or ts[0].numerator not in (2, 3, 4):
            continue
        out.append((path, pm))
        if len(out) >= n:
            break
    return out


_STARTUP = """
import time
t = time.perf_counter()
import numpy as np
import librosa
librosa.beat.beat_track(onset_envelope=np.random.default_rng(0).random(1000), sr=16000, hop_length=512)
print(time.perf_counter() - t)
"""


def librosa_startup() -> None:
    """Seconds from a new process to librosa's first beat_track: with an empty numba cache (the first
    run after installing librosa) and with the cache that run left (every run after)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty numba cache", "numba cache filled"):
            out = subprocess.run([sys.executable, "-c", _STARTUP], env=env, capture_output=True, text=True, check=True)
            print(f"librosa.beat.beat_track, new process, {label}: {float(out.stdout.split()[-1]):.1f} s")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); import sys; sys.path.insert(0, %r); "
            "import numpy as np; from amtcli.rhythm import track_beats; "
            "track_beats(np.random.default_rng(0).random(1000), frame_rate=31.25); print(time.perf_counter() - t)"
            % str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"amtcli.rhythm.track_beats, new process: {float(out.stdout.split()[-1]):.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("AMT_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--soundfont", default="/usr/share/sounds/sf3/MuseScore_General.sf3")
    ap.add_argument("--model", default="synthetic")
    ap.add_argument(
        "--startup", action="store_true", help="only time librosa's and amt's beat tracker in new processes"
    )
    args = ap.parse_args()
    if args.startup:
        librosa_startup()
        return

    import mir_eval
    import torch

    torch.set_num_threads(1)
    from amtcli.inference.transcribe import transcribe_full
    from amtcli.rhythm import estimate_grid, estimate_meter, onset_strength_from_features, onset_strength_from_notes
    from amtcli.score import estimate_key, key_sharps
    from amtcli.synth.soundfont import render_batch
    from amtcli.zoo import load_model

    tunes = pick_tunes(Path(args.data) / "midi" / "nottingham", args.split, args.n)
    print(f"{len(tunes)} {args.split} tunes; rendering ...", flush=True)
    items, truths, keys = [], [], []
    for path, pm in tunes:
        rng = np.random.default_rng(int(hashlib.sha1(path.name.encode()).hexdigest()[:8], 16))
        notes, beats, downbeats, num = warp_notes(pm, rng=rng)
        notes = notes.clipped(0.0, args.seconds)
        items.append((notes, args.seconds))
        truths.append((notes, beats[beats < args.seconds - 0.5], downbeats[downbeats < args.seconds - 0.5], num))
        ks = pm.key_signature_changes
        keys.append((ks[0].key_number % 12, "minor" if ks[0].key_number >= 12 else "major") if len(ks) == 1 else None)
    t0 = time.perf_counter()
    audios = render_batch(items, soundfont=args.soundfont)
    print(f"rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    net, release = load_model(args.model, device="cpu")
    fc = net.feature_config
    rows: dict[str, list] = {}
    timing: dict[str, float] = {}

    def score(name, est_beats, notes_for_meter, truth, grid=None):
        ref_notes, ref_beats, ref_down, num = truth
        if grid is not None:  # amt's own path: beats, meter and downbeats from estimate_grid
            est_beats, m, p = grid.beats_s, grid.beats_per_bar, grid.first_downbeat
        else:
            m, p = estimate_meter(notes_for_meter, est_beats) if len(est_beats) >= 8 else (4, 0)
        est_down = est_beats[p::m]
        rows.setdefault(name, []).append(
            (
                mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref_beats), mir_eval.beat.trim_beats(est_beats)),
                mir_eval.beat.f_measure(ref_down, est_down),
                float(m == num),
            )
        )

    import librosa

    key_hits = {"transcribed notes": [], "true notes": []}
    for (notes, _), audio, truth, key in zip(items, audios, truths, keys):
        result = transcribe_full(audio, model=(net, release), device="cpu", keep_features=True)
        if key is not None:
            for name, src in (("transcribed notes", result.notes), ("true notes", notes)):
                est = estimate_key(src)
                key_hits[name].append((key_sharps(*est) == key_sharps(*key), est == key))
        fr = fc.frame_rate
        n_frames = len(result.features)
        envs = {
            "audio CQT flux": onset_strength_from_features(result.features),
            "onset posteriors": result.posteriors["onset"].sum(axis=1),
            "transcribed notes": onset_strength_from_notes(result.notes, n_frames=n_frames, frame_rate=fr),
        }
        for name, env in envs.items():
            t = time.perf_counter()
            grid = estimate_grid(result.notes, onset_strength=env, frame_rate=fr, duration_s=args.seconds)
            timing[name] = timing.get(name, 0) + time.perf_counter() - t
            score(name, None, None, truth, grid=grid)
        # note envelopes at 100 frames/s
        for name, src in (("transcribed notes @100 Hz", result.notes), ("true notes @100 Hz", truth[0])):
            env = onset_strength_from_notes(src, n_frames=int(args.seconds * 100), frame_rate=100.0)
            t = time.perf_counter()
            grid = estimate_grid(src, onset_strength=env, frame_rate=100.0, duration_s=args.seconds)
            timing[name] = timing.get(name, 0) + time.perf_counter() - t
            score(name, None, None, truth, grid=grid)
        t = time.perf_counter()
        _, lb = librosa.beat.beat_track(y=audio, sr=16000, hop_length=256, units="time")
        timing["librosa beat_track (audio)"] = timing.get("librosa beat_track (audio)", 0) + time.perf_counter() - t
        score("librosa beat_track (audio)", lb, result.notes, truth)

    print(f"\n{len(items)} tunes x {args.seconds:.0f} s, {args.split} split, soundfont {Path(args.soundfont).name}")
    print(f"{'onset envelope / tracker':32s} {'beat F':>7s} {'downbeat F':>10s} {'meter acc':>9s} {'s/tune':>7s}")
    for name, vals in rows.items():
        a = np.array(vals)
        print(
            f"{name:32s} {a[:, 0].mean():7.3f} {a[:, 1].mean():10.3f} {a[:, 2].mean():9.3f} {timing.get(name, 0) / len(vals):7.3f}"
        )
    print("(the model's onset posteriors are what amt transcribe uses for frame models; CQT flux for token models)")
    for name, hits in key_hits.items():
        h = np.array(hits, dtype=float).reshape(-1, 2)
        print(
            f"key (amtcli.score.estimate_key) from {name}: signature right {h[:, 0].mean():.3f}, key right {h[:, 1].mean():.3f} ({len(h)} tunes with one key)"
        )


if __name__ == "__main__":
    main()
