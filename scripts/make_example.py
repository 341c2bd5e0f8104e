"""Write the bundled example: the first eight bars of J. S. Bach's Prelude in C major (BWV 846,
public domain), typed in here note by note, played on MuseScore General's sampled grand piano
(MIT licensed soundfont) in a small synthetic room.

    .venv/bin/python scripts/make_example.py      # writes examples/piano.mid and examples/piano.flac

The model never trains on MuseScore General, so the example is audio it has not heard.
"""

from pathlib import Path

import numpy as np

from amtcli.audio.io import save_audio
from amtcli.notes import NoteArray, notes_to_midi
from amtcli.synth.augment import apply_ir, synthetic_ir
from amtcli.synth.soundfont import render_notes

CHORDS = [  # the five notes of each bar's broken chord
    (48, 52, 55, 60, 64),
    (48, 50, 57, 62, 65),
    (47, 50, 55, 62, 65),
    (48, 52, 55, 60, 64),
    (48, 52, 57, 64, 69),
    (48, 50, 54, 57, 62),
    (47, 50, 55, 62, 67),
    (47, 48, 52, 55, 60),
]
SIXTEENTH_S = 60 / 66 / 4  # quarter = 66
SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")


def prelude_notes() -> NoteArray:
    rng = np.random.default_rng(846)
    rows = []
    for bar, (a, b, c, d, e) in enumerate(CHORDS):
        for half in range(2):
            t0 = (bar * 16 + half * 8) * SIXTEENTH_S
            half_end = t0 + 8 * SIXTEENTH_S
            rows.append((t0, half_end, a, 62))  # held bass
            rows.append((t0 + SIXTEENTH_S, half_end, b, 58))  # held tenor
            for i, p in enumerate((c, d, e, c, d, e)):
                on = t0 + (2 + i) * SIXTEENTH_S
                rows.append((on, on + 0.9 * SIXTEENTH_S, p, 66 + (6 if i % 3 == 0 else 0)))
    # a little human timing and dynamics
    rows = [
        (on + rng.normal(0, 0.006), off, p, int(np.clip(v + rng.integers(-6, 7), 1, 127))) for on, off, p, v in rows
    ]
    rows = [(max(0.0, on) + 0.3, off + 0.3, p, v) for on, off, p, v in rows]
    return NoteArray.from_lists(rows)


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "examples"
    notes = prelude_notes()
    notes_to_midi(notes, out / "piano.mid", program=0)
    audio = render_notes(notes, soundfont=SOUNDFONT, duration_s=notes.end_s + 1.5)
    ir = synthetic_ir(rt60_s=0.5, drr_db=8.0, sample_rate=16000, rng=np.random.default_rng(0))
    audio = apply_ir(audio, ir)
    audio = 0.5 * audio / np.max(np.abs(audio))
    save_audio(out / "piano.flac", audio, sample_rate=16000)
    print(f"{out / 'piano.flac'}: {len(audio) / 16000:.1f} s, {len(notes)} notes")


if __name__ == "__main__":
    main()
