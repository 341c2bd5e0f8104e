"""MAPS (Emiya et al. 2010): the MUS pieces of the nine piano subsets.

Layout (at any depth under the root, as the archives unpack)::

    <instrument>/MUS/MAPS_MUS-<piece>_<instrument>.wav  (.txt  .mid)

Splits: the standard test set is the two Disklavier subsets ENSTDkCl and ENSTDkAm (real piano).
The seven synthesized subsets form train and validation, split by piece (about 8:1, seeded) after
removing the pieces that also occur in the test set (split ``excluded``), as Hawthorne et al.
(Onsets and Frames, 2018) did.

Labels: the ``.mid`` file with sustain-pedal extension when present (it carries velocities), else
the ``.txt`` (``OnsetTime OffsetTime MidiPitch``, no velocities); ``annotation="txt"`` forces text.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInput, DatasetNotFound
from .base import DatasetInfo, Item, ItemList
from .splits import split_pieces

INFO = DatasetInfo(
    name="maps",
    folder_names=("maps", "MAPS"),
    layout="<instrument>/MUS/MAPS_MUS-<piece>_<instrument>.wav with .txt or .mid beside it",
    source="https://adasp.telecom-paris.fr/resources/2010-07-08-maps-database/ (free registration)",
)

TEST_INSTRUMENTS = ("ENSTDkCl", "ENSTDkAm")
INSTRUMENTS = (
    "AkPnBcht",
    "AkPnBsdf",
    "AkPnCGdD",
    "AkPnStgb",
    "ENSTDkAm",
    "ENSTDkCl",
    "SptkBGAm",
    "SptkBGCl",
    "StbgTGd2",
)
PREFIX = "MAPS_MUS-"


def parse_name(stem: str) -> tuple[str, str]:
    """``MAPS_MUS-chpn_op7_1_ENSTDkAm`` -> (``chpn_op7_1``, ``ENSTDkAm``)."""
    if not stem.startswith(PREFIX) or "_" not in stem[len(PREFIX) :]:
        raise BadInput(f"{stem}: not a MAPS MUS file name (MAPS_MUS-<piece>_<instrument>)")
    piece, instrument = stem[len(PREFIX) :].rsplit("_", 1)
    return piece, instrument


def read_maps(root: Path, *, split_seed: int = 0, annotation: str | None = None) -> ItemList:
    if annotation not in (None, "mid", "txt"):
        raise BadInput(f"maps annotation must be 'mid' or 'txt', got {annotation!r}")
    found, skipped = [], []
    for wav in sorted(root.rglob(f"{PREFIX}*.wav")):
        try:
            piece, instrument = parse_name(wav.stem)
        except BadInput as exc:
            skipped.append((str(wav), str(exc)))
            continue
        mid, txt = wav.with_suffix(".mid"), wav.with_suffix(".txt")
        if annotation != "txt" and mid.is_file():
            label, kind, sustain, velocity = mid, "midi", True, True
        elif annotation != "mid" and txt.is_file():
            label, kind, sustain, velocity = txt, "maps_txt", False, False
        else:
            skipped.append((str(wav), f"no {'.mid' if annotation == 'mid' else '.txt'} annotation beside it"))
            continue
        found.append((wav, piece, instrument, label, kind, sustain, velocity))
    if not found:
        raise DatasetNotFound(
            f"maps: no MUS recordings with annotations under {root}. Expected layout: {INFO.layout}. "
            f"Get it from {INFO.source}."
        )
    test_pieces = {piece for _, piece, instrument, *_ in found if instrument in TEST_INSTRUMENTS}
    other_pieces = {piece for _, piece, instrument, *_ in found if instrument not in TEST_INSTRUMENTS} - test_pieces
    # train:validation = 8:1 among the synthesized pianos (the 80/10 of an 80/10/10 split).
    train_val = split_pieces(other_pieces, seed=split_seed, fractions=(8 / 9, 1 / 9, 0.0))
    items = []
    for wav, piece, instrument, label, kind, sustain, velocity in found:
        if instrument in TEST_INSTRUMENTS:
            split = "test"
        else:
            split = train_val.get(piece, "excluded")
        items.append(
            Item(
                id=wav.stem,
                dataset="maps",
                piece=piece,
                split=split,
                audio=wav,
                label=label,
                label_kind=kind,
                sustain=sustain,
                has_velocity=velocity,
            )
        )
    return ItemList(items, root=root, skipped=skipped)
