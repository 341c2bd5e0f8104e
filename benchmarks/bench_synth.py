"""Synthesis throughput on this machine: seconds of audio per wall-clock second, one worker.

    .venv/bin/python benchmarks/bench_synth.py [--files 6] [--excerpt-s 20] [--soundfont PATH]

Uses MIDI files from ../shared/data/midi/asap (or $AMT_DATA/midi/asap) when present, else makes
some. Prints, per renderer: the renderer alone (FluidSynth / one-shot mixing, notes in, samples
out) and the whole item pipeline into a dataset folder (MIDI parsing, rendering, default
augmentation, FLAC + label writing), each after a warm-up so one-time imports are not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from amtcli.notes import NoteArray, midi_to_notes, notes_to_midi  # noqa: E402
from amtcli.synth.dataset import SynthConfig, build_dataset  # noqa: E402
from amtcli.synth.oneshot import build_bank, draw_timbres, load_bank, render_oneshot  # noqa: E402
from amtcli.synth.soundfont import default_soundfont, render_batch  # noqa: E402


def find_midi(n: int, tmp: Path) -> list[Path]:
    data = Path(os.environ.get("AMT_DATA", ROOT.parent / "shared" / "data")) / "midi" / "asap"
    if data.is_dir():
        files = sorted(data.rglob("*.mid"))
        step = max(1, len(files) // n)
        return files[::step][:n]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # 2-minute random piano pieces, ~8 notes per second
        on = np.sort(rng.uniform(0, 120, 960))
        notes = NoteArray(
            on, on + rng.uniform(0.1, 1.0, 960), rng.integers(36, 96, 960), rng.integers(30, 110, 960), np.zeros(960)
        )
        out.append(notes_to_midi(notes, tmp / f"gen{i}.mid"))
    return out


CPU = {"last": 0.0}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system  # FluidSynth runs as a child


def timed(fn):
    """(result, wall seconds); the CPU seconds (this process + FluidSynth) go to CPU["last"]."""
    c = _cpu()
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    CPU["last"] = _cpu() - c
    return out, wall


def rate(audio_s: float, wall: float) -> str:
    """x real time by the wall clock, and per CPU second (what one free core would give)."""
    return f"{audio_s / wall:7.1f} x real time (wall), {audio_s / max(CPU['last'], 1e-9):7.1f} x per CPU-second"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--excerpt-s", type=float, default=20.0)
    ap.add_argument("--soundfont", default=None)
    args = ap.parse_args()
    sf = args.soundfont or str(default_soundfont())
    tmp = Path(tempfile.mkdtemp(prefix="amt-bench-"))
    try:
        files = find_midi(args.files, tmp)
        print(
            f"{len(files)} MIDI files ({files[0].parent.parent.name if files else ''}...), soundfont {Path(sf).name}, "
            f"excerpts of {args.excerpt_s:g} s, 16 kHz, one worker, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        notes = [midi_to_notes(f, sustain=True) for f in files]
        rng = np.random.default_rng(0)
        items = []
        for n in notes:
            start = float(rng.uniform(0, max(0.0, n.end_s - args.excerpt_s)))
            items.append((n.clipped(start, start + args.excerpt_s), args.excerpt_s))
        audio_s = sum(d for _, d in items)

        # --- FluidSynth alone (items batched into one run, as the dataset writer does)
        render_batch(items[:1], soundfont=sf)  # warm-up
        _, t = timed(lambda: render_batch(items, soundfont=sf))
        print(f"soundfont render only        : {rate(audio_s, t)} ({audio_s:.0f} s of audio in {t:.2f} s)")
        _, t = timed(lambda: [render_batch([it], soundfont=sf) for it in items])
        print(f"soundfont, one run per item  : {rate(audio_s, t)}")
        whole = [(n, n.end_s + 1.0) for n in notes[:2]]
        whole_s = sum(d for _, d in whole)
        _, t = timed(lambda: render_batch(whole, soundfont=sf))
        print(f"soundfont, whole pieces      : {rate(whole_s, t)} ({whole_s:.0f} s)")

        # --- the dataset pipeline (parse MIDI, render, augment, write FLAC + label)
        src = tmp / "src"
        src.mkdir()
        for f in files:
            shutil.copy(f, src / f.name)
        warm = tmp / "warm"
        build_dataset([files[0]], warm, config=SynthConfig(soundfonts=(sf,), excerpt_s=2.0))
        for k in (1, 4):
            cfg = SynthConfig(soundfonts=(sf,), excerpt_s=args.excerpt_s, renders_per_piece=k)
            s, t = timed(lambda k=k, cfg=cfg: build_dataset([src], tmp / f"ds{k}", config=cfg))
            print(
                f"soundfont -> FLAC dataset, {k} render(s)/piece: {rate(s.seconds_written, t)} "
                f"({s.items_written} items, {s.seconds_written:.0f} s in {t:.2f} s)"
            )

        # --- one-shot mixing
        bank_dir = tmp / "bank"
        _, t = timed(lambda: build_bank(bank_dir, soundfonts=(sf,), programs=(0, 24, 48, 73), velocities=(45, 85, 120)))
        print(f"one-shot bank of 4 programs built in {t:.1f} s")
        bank = load_bank(bank_dir)
        for name in bank.names:
            bank.samples(name)  # decode the bank once (a worker keeps it)
        draws = [draw_timbres(bank, (0.0, 0.5), np.random.default_rng(i)) for i in range(len(items))]
        render_oneshot(items[0][0], bank=bank, duration_s=items[0][1], **draws[0])  # warm-up
        _, t = timed(lambda: [render_oneshot(n, bank=bank, duration_s=d, **dr) for (n, d), dr in zip(items, draws)])
        print(f"one-shot mixing only         : {rate(audio_s, t)} ({audio_s:.0f} s in {t:.2f} s)")
        for k in (1, 4):
            cfg = SynthConfig(renderer="oneshot", oneshots=str(bank_dir), excerpt_s=args.excerpt_s, renders_per_piece=k)
            s, t = timed(lambda k=k, cfg=cfg: build_dataset([src], tmp / f"os{k}", config=cfg))
            print(
                f"one-shot -> FLAC dataset, {k} render(s)/piece: {rate(s.seconds_written, t)} "
                f"({s.items_written} items, {s.seconds_written:.0f} s in {t:.2f} s)"
            )
        n_notes = sum(len(n) for n, _ in items)
        _, t = timed(lambda: [midi_to_notes(f, sustain=True) for f in files])
        print(f"(MIDI parsing alone: {t / len(files) * 1000:.0f} ms per file; {n_notes} notes in the excerpts)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
