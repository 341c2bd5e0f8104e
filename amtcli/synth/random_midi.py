"""Random note material for training: MIDI files with no musical grammar.

Composed music teaches a model which notes tend to come together (chords of a key, octaves, voice
leading); random polyphony breaks that bias, so the model has to hear each note. Each piece mixes
three textures in segments of a few seconds:

- ``chords``: note clusters of 1-8 keys drawn independently over a random register, at random times;
- ``runs``: fast monophonic or two-voice lines with random steps (scales, arpeggios, leaps);
- ``sparse``: isolated long notes of any pitch and velocity, the easy case at the edges of the range.

Onsets, durations and velocities are drawn per note; sustain pedal (CC64) is held over some segments.
The files are ordinary MIDI for ``amt synth`` (program 0; ``--programs`` picks the instrument).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInput, OutputExists

TEXTURES = ("chords", "runs", "sparse")
LOW, HIGH = 21, 108  # the 88 piano keys


def _register(rng: np.random.Generator) -> tuple[int, int]:
    """A random pitch range of one to four octaves inside the keyboard."""
    width = int(rng.integers(12, 49))
    lo = int(rng.integers(LOW, HIGH - width + 1))
    return lo, lo + width


def _segment(
    texture: str, start: float, length: float, rng: np.random.Generator
) -> list[tuple[float, float, int, int]]:
    """Notes ``(onset_s, offset_s, pitch, velocity)`` of one segment."""
    lo, hi = _register(rng)
    vel_centre = int(rng.integers(30, 111))
    notes = []

    def velocity() -> int:
        return int(np.clip(rng.normal(vel_centre, 15), 1, 127))

    t = start
    end = start + length
    if texture == "chords":
        rate = float(rng.uniform(0.7, 4.0))  # chords per second
        while True:
            t += float(rng.exponential(1.0 / rate))
            if t >= end:
                break
            k = int(rng.integers(1, 9))
            pitches = rng.choice(np.arange(lo, hi + 1), size=min(k, hi - lo + 1), replace=False)
            dur = float(np.exp(rng.uniform(np.log(0.08), np.log(2.5))))
            spread = float(rng.uniform(0.0, 0.03))  # not every key of a chord lands at once
            for p in pitches:
                on = t + float(rng.uniform(0, spread))
                notes.append((on, on + dur * float(rng.uniform(0.7, 1.0)), int(p), velocity()))
    elif texture == "runs":
        step_s = float(rng.uniform(0.06, 0.25))
        voices = int(rng.integers(1, 3))
        steps = rng.choice([1, 2, 3, 4, 5, 7, 12], size=2)
        for _ in range(voices):
            p = int(rng.integers(lo, hi + 1))
            t = start + float(rng.uniform(0, step_s))
            while t < end:
                dur = step_s * float(rng.uniform(0.5, 1.5))
                notes.append((t, t + dur, p, velocity()))
                p += int(rng.choice(steps)) * int(rng.choice([-1, 1]))
                if p < lo or p > hi:
                    p = int(np.clip(p, lo, hi))
                t += step_s * float(rng.uniform(0.8, 1.2))
    elif texture == "sparse":
        while True:
            t += float(rng.uniform(0.3, 1.5))
            if t >= end:
                break
            p = int(rng.integers(LOW, HIGH + 1))  # anywhere on the keyboard, not only the segment's register
            dur = float(np.exp(rng.uniform(np.log(0.1), np.log(3.0))))
            notes.append((t, t + dur, p, int(rng.integers(1, 128))))
    else:  # pragma: no cover - guarded by TEXTURES
        raise ValueError(texture)
    return notes


def random_piece(duration_s: float, rng: np.random.Generator):
    """A ``pretty_midi.PrettyMIDI`` of random material, ``duration_s`` long (notes may ring past it)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=0, name="random")
    t = 0.0
    while t < duration_s:
        length = float(rng.uniform(2.0, 8.0))
        texture = str(rng.choice(TEXTURES, p=[0.5, 0.3, 0.2]))
        for on, off, pitch, vel in _segment(texture, t, min(length, duration_s - t), rng):
            inst.notes.append(pretty_midi.Note(velocity=vel, pitch=pitch, start=round(on, 4), end=round(off, 4)))
        if rng.random() < 0.3:  # pedal held over this segment
            inst.control_changes.append(pretty_midi.ControlChange(64, 127, round(t + 0.01, 4)))
            inst.control_changes.append(pretty_midi.ControlChange(64, 0, round(t + length - 0.05, 4)))
        t += length
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments.append(inst)
    return pm


def write_random_pieces(out_dir: Path, count: int, *, duration_s: float = 60.0, seed: int = 0) -> list[Path]:
    """Write ``count`` random pieces as ``random-<seed>-<i>.mid`` into ``out_dir``; returns their paths.

    The same seed gives the same files. Existing files of the same name are left alone (a rerun
    continues); anything else in the folder is not touched.
    """
    if count < 1:
        raise BadInput("--count must be at least 1")
    if duration_s <= 0:
        raise BadInput("the duration of a random piece must be positive")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out_dir / f"random-{seed}-{i:05d}.mid"
        if not path.exists():
            pm = random_piece(duration_s, np.random.default_rng([seed, i]))
            tmp = path.with_name(f".{path.name}.tmp")
            pm.write(str(tmp))
            tmp.replace(path)
        paths.append(path)
    return paths


__all__ = ["TEXTURES", "random_piece", "write_random_pieces"]
