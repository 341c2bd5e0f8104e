"""Tiny datasets in the official layouts, written in code (short sines or silence, MIDI / JAMS / txt).

Imported by the dataset, evaluation and CLI-evaluate tests.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from amtcli.notes import NoteArray, notes_to_midi

SR = 16000


def write_wav(path: Path, duration_s: float = 1.0, *, freq_hz: float | None = 440.0, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(duration_s * SR)) / SR
    x = np.zeros_like(t) if freq_hz is None else 0.3 * np.sin(2 * np.pi * freq_hz * t)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(str(path), x.astype(np.float32), SR)
    return path


def notes_for(key: str, *, n: int = 4, start: float = 0.1) -> NoteArray:
    """A few deterministic notes that differ from key to key."""
    rng = np.random.default_rng(sum(map(ord, key)))
    rows = []
    t = start
    for _ in range(n):
        d = float(rng.uniform(0.1, 0.2))
        rows.append((round(t, 3), round(t + d, 3), int(rng.integers(40, 90)), int(rng.integers(30, 120))))
        t += 0.22
    return NoteArray.from_lists(rows)


# ---------------------------------------------------------------------------------------- MAPS


def write_maps(root: Path, layout: dict[str, list[str]], *, txt: bool = True, mid: bool = True, nest: str = "") -> Path:
    """``layout``: instrument -> piece names; files under ``root/<nest>/<instrument>/MUS/``."""
    for instrument, pieces in layout.items():
        folder = root / nest / instrument / "MUS" if nest else root / instrument / "MUS"
        for piece in pieces:
            stem = f"MAPS_MUS-{piece}_{instrument}"
            write_wav(folder / f"{stem}.wav", 1.2)
            notes = notes_for(piece)
            if txt:
                lines = ["OnsetTime\tOffsetTime\tMidiPitch"]
                lines += [f"{a:.6f}\t{b:.6f}\t{p}" for a, b, p in zip(notes.onset_s, notes.offset_s, notes.pitch)]
                (folder / f"{stem}.txt").write_text("\r\n".join(lines) + "\r\n")
            if mid:
                notes_to_midi(notes, folder / f"{stem}.mid", program=0)
    return root


# ----------------------------------------------------------------------------------- GuitarSet


def guitarset_notes(stem: str) -> list[list[tuple[float, float, float]]]:
    """Per string: (time, duration, fractional MIDI value) observations; strings 0 and 5 empty."""
    rng = np.random.default_rng(sum(map(ord, stem)))
    strings = []
    for s in range(6):
        obs = []
        if s not in (0, 5):
            for k in range(2):
                obs.append((0.1 + 0.3 * k + 0.01 * s, 0.2, 40 + 5 * s + k + float(rng.uniform(-0.3, 0.3))))
        strings.append(obs)
    return strings


def write_jams(path: Path, strings, *, dict_format: bool = False) -> Path:
    anns = []
    for s, obs in enumerate(strings):
        if dict_format:
            data = {
                "time": [o[0] for o in obs],
                "duration": [o[1] for o in obs],
                "value": [o[2] for o in obs],
                "confidence": [None] * len(obs),
            }
        else:
            data = [{"time": o[0], "duration": o[1], "value": o[2], "confidence": None} for o in obs]
        anns.append(
            {
                "namespace": "pitch_contour",
                "annotation_metadata": {"data_source": str(s)},
                "data": {"time": [], "duration": [], "value": [], "confidence": []},
            }
        )
        anns.append({"namespace": "note_midi", "annotation_metadata": {"data_source": str(s)}, "data": data})
    anns.append(
        {
            "namespace": "chord",
            "annotation_metadata": {"data_source": ""},
            "data": [{"time": 0.0, "duration": 1.0, "value": "G:maj", "confidence": 1.0}],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"annotations": anns, "file_metadata": {"title": path.stem, "duration": 1.0}, "sandbox": {}})
    )
    return path


def guitarset_stems(n_players: int = 2, n_excerpts: int = 5) -> list[str]:
    styles = [
        "BN1-129-Eb",
        "Funk2-108-Eb",
        "Jazz3-137-Eb",
        "Rock1-90-C#",
        "SS2-107-Ab",
        "BN2-131-B",
        "Funk1-97-C",
        "Jazz1-130-D",
        "Rock3-148-C",
        "SS3-98-C",
    ]
    return [
        f"{p:02d}_{styles[e]}_{take}" for p in range(n_players) for e in range(n_excerpts) for take in ("comp", "solo")
    ]


def write_guitarset(
    root: Path, stems: list[str], *, variants=("mono-mic",), missing_audio=(), dict_format=False
) -> Path:
    folders = {
        "mono-mic": ("audio_mono-mic", "_mic", 1),
        "mono-pickup_mix": ("audio_mono-pickup_mix", "_mix", 1),
        "hex-pickup_original": ("audio_hex-pickup_original", "_hex", 6),
        "hex-pickup_debleeded": ("audio_hex-pickup_debleeded", "_hex_cln", 6),
    }
    for stem in stems:
        write_jams(root / "annotation" / f"{stem}.jams", guitarset_notes(stem), dict_format=dict_format)
        if stem in missing_audio:
            continue
        for v in variants:
            folder, suffix, ch = folders[v]
            write_wav(root / folder / f"{stem}{suffix}.wav", 0.8, channels=ch)
    return root


# ------------------------------------------------------------------------------------- MAESTRO


def write_pedal_midi(path: Path, notes: NoteArray, pedal: list[tuple[float, float]]) -> Path:
    import pretty_midi

    from amtcli.notes import notes_to_pretty_midi

    pm = notes_to_pretty_midi(notes, program=0)
    for a, b in pedal:
        pm.instruments[0].control_changes += [
            pretty_midi.ControlChange(64, 127, a),
            pretty_midi.ControlChange(64, 0, b),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path


MAESTRO_RECORDS = [
    (
        "2004/MIDI-Unprocessed_SMF_02_R1_2004_01-05_ORIG_MID--AUDIO_02_R1_2004_05_Track05_wav",
        "train",
        "Bach",
        "Prelude",
    ),
    (
        "2004/MIDI-Unprocessed_SMF_05_R1_2004_01_ORIG_MID--AUDIO_05_R1_2004_03_Track03_wav",
        "validation",
        "Liszt",
        "Etude",
    ),
    ("2006/MIDI-Unprocessed_17_R1_2006_01-06_ORIG_MID--AUDIO_17_R1_2006_04_Track04_wav", "test", "Chopin", "Ballade"),
    ("2006/MIDI-Unprocessed_09_R1_2006_01-04_ORIG_MID--AUDIO_09_R1_2006_01_Track01_wav", "test", "Chopin", "Nocturne"),
]


def write_maestro(root: Path, *, fmt: str = "v2json", records=MAESTRO_RECORDS) -> Path:
    """MAESTRO layout with metadata as v2 json (list of records), v3 csv or v3 json (dict of columns).

    Each MIDI has one note (0.1-0.3 s) released while the pedal is down (0.2-0.7 s).
    """
    rows = []
    for base, split, composer, title in records:
        notes = NoteArray.from_lists([(0.1, 0.3, 60, 70), (0.9, 1.1, 64, 90)])
        write_pedal_midi(root / f"{base}.midi", notes, [(0.2, 0.7)])
        write_wav(root / f"{base}.wav", 1.3, channels=2)
        rows.append(
            {
                "canonical_composer": composer,
                "canonical_title": title,
                "split": split,
                "year": int(base[:4]),
                "midi_filename": f"{base}.midi",
                "audio_filename": f"{base}.wav",
                "duration": 1.3,
            }
        )
    if fmt == "v2json":
        (root / "maestro-v2.0.0.json").write_text(json.dumps(rows))
    elif fmt == "v3csv":
        with open(root / "maestro-v3.0.0.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif fmt == "v3json":
        cols = {k: {str(i): r[k] for i, r in enumerate(rows)} for k in rows[0]}
        (root / "maestro-v3.0.0.json").write_text(json.dumps(cols))
    else:
        raise ValueError(fmt)
    return root


# ------------------------------------------------------------------------ synthetic and pairs


def write_synthetic(root: Path, n: int = 5, *, splits=("train", "train", "validation", "test", "test")) -> Path:
    lines = []
    for i in range(n):
        item = f"item{i:03d}"
        write_wav(root / "audio" / f"{item}.wav", 1.2)
        notes_to_midi(notes_for(item), root / "labels" / f"{item}.mid", program=0)
        lines.append(
            {
                "id": item,
                "audio": f"audio/{item}.wav",
                "label": f"labels/{item}.mid",
                "split": splits[i % len(splits)],
                "duration_s": 1.2,
                "piece": f"piece{i // 2}",
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def write_pairs(root: Path, stems: list[str], *, midi_suffix: str = ".mid", audio_duration_s: float = 1.2) -> Path:
    """``stems`` may contain sub-folders (``a/take1``)."""
    for stem in stems:
        write_wav(root / f"{stem}.wav", audio_duration_s, freq_hz=220.0 + sum(map(ord, stem)) % 200)  # distinct audio
        notes_to_midi(notes_for(stem), root / f"{stem}{midi_suffix}", program=0)
    return root
