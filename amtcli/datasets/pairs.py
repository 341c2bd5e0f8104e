"""Any folder of audio files with same-stem MIDI files (``take1.wav`` + ``take1.mid``), searched recursively.

The MIDI file is looked for beside the audio first, then anywhere under the root if exactly one
file has that stem. Each pair is its own piece; the 80/10/10 split is by relative path.
References are read with sustain-pedal extension (a no-op for files without pedal events).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..audio.io import find_audio_files
from ..errors import DatasetNotFound
from .base import DatasetInfo, Item, ItemList
from .splits import split_pieces

INFO = DatasetInfo(
    name="pairs",
    folder_names=("pairs",),
    layout="a folder of audio files, each with a same-stem .mid or .midi file",
    source="your own recordings and their MIDI (e.g. a Disklavier or MIDI-keyboard capture)",
)
MIDI_SUFFIXES = (".mid", ".midi")


def read_pairs(root: Path, *, split_seed: int = 0, **_) -> ItemList:
    midis = defaultdict(list)
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES:
            midis[p.stem].append(p)
    found, skipped = [], []
    for audio in find_audio_files([root]):
        beside = [audio.with_suffix(s) for s in (*MIDI_SUFFIXES, ".MID", ".MIDI") if audio.with_suffix(s).is_file()]
        candidates = beside or midis.get(audio.stem, [])
        if len(candidates) == 0:
            skipped.append((str(audio), "no same-stem MIDI file"))
            continue
        if not beside and len(candidates) > 1:
            skipped.append(
                (str(audio), f"{len(candidates)} MIDI files named {audio.stem}.* elsewhere; put one beside it")
            )
            continue
        found.append((audio, candidates[0], audio.relative_to(root).with_suffix("").as_posix()))
    if not found:
        raise DatasetNotFound(f"pairs: no audio file with a same-stem MIDI file under {root}. Expected: {INFO.layout}.")
    splits = split_pieces([rel for *_, rel in found], seed=split_seed)
    items = [
        Item(
            id=rel,
            dataset="pairs",
            piece=rel,
            split=splits[rel],
            audio=audio,
            label=midi,
            label_kind="midi",
            sustain=True,
        )
        for audio, midi, rel in found
    ]
    return ItemList(items, root=root, skipped=skipped)
