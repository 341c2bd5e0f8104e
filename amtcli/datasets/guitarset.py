"""GuitarSet (Xi et al. 2018): 360 excerpts of acoustic guitar, JAMS annotations per string.

Layout::

    annotation/<player>_<style><n>-<tempo>-<key>_<comp|solo>.jams
    audio_mono-mic/<stem>_mic.wav            (default audio)
    audio_mono-pickup_mix/<stem>_mix.wav
    audio_hex-pickup_original/<stem>_hex.wav
    audio_hex-pickup_debleeded/<stem>_hex_cln.wav

There is no official split. A piece is one player's excerpt: the file stem without the
``_comp`` / ``_solo`` suffix (``00_BN1-129-Eb``), so the accompaniment and solo takes a player
recorded of one lead sheet always land in the same split. Pieces are split 80/10/10 with
:func:`split_pieces`, computed over every annotation file (whether or not its audio is present),
so a partial copy of the dataset splits the same way as the full one.
Labels have no velocities (JAMS ``note_midi`` holds time, duration and pitch).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import BadInput, DatasetNotFound
from .base import DatasetInfo, Item, ItemList
from .splits import split_pieces

INFO = DatasetInfo(
    name="guitarset",
    folder_names=("guitarset", "GuitarSet"),
    layout="annotation/*.jams and audio_mono-mic/*_mic.wav",
    source="https://zenodo.org/record/3371780",
)

# variant -> (folder, file suffix)
AUDIO_VARIANTS = {
    "mono-mic": ("audio_mono-mic", "_mic"),
    "mono-pickup_mix": ("audio_mono-pickup_mix", "_mix"),
    "hex-pickup_original": ("audio_hex-pickup_original", "_hex"),
    "hex-pickup_debleeded": ("audio_hex-pickup_debleeded", "_hex_cln"),
}
ALIASES = {
    "mic": "mono-mic",
    "mix": "mono-pickup_mix",
    "hex": "hex-pickup_original",
    "hex_cln": "hex-pickup_debleeded",
    "debleeded": "hex-pickup_debleeded",
    "original": "hex-pickup_original",
}
DEFAULT_VARIANT = "mono-mic"

_TAKE = re.compile(r"_(comp|solo)$")


def piece_of(stem: str) -> str:
    """``00_BN1-129-Eb_comp`` -> ``00_BN1-129-Eb`` (player + excerpt)."""
    return _TAKE.sub("", stem)


def resolve_variant(variant: str | None) -> str:
    variant = variant or DEFAULT_VARIANT
    variant = ALIASES.get(variant, variant)
    if variant not in AUDIO_VARIANTS:
        known = ", ".join(list(AUDIO_VARIANTS) + list(ALIASES))
        raise BadInput(f"unknown GuitarSet audio variant {variant!r} (choose from {known})")
    return variant


def read_guitarset(root: Path, *, split_seed: int = 0, audio_variant: str | None = None) -> ItemList:
    variant = resolve_variant(audio_variant)
    folder, suffix = AUDIO_VARIANTS[variant]
    jams = sorted((root / "annotation").glob("*.jams"))
    if not jams:
        raise DatasetNotFound(
            f"guitarset: no annotation/*.jams under {root}. Expected layout: {INFO.layout}. Get it from {INFO.source}."
        )
    splits = split_pieces([piece_of(p.stem) for p in jams], seed=split_seed)
    items, skipped = [], []
    for path in jams:
        audio = root / folder / f"{path.stem}{suffix}.wav"
        if not audio.is_file():
            skipped.append((str(path), f"no audio {folder}/{audio.name}"))
            continue
        piece = piece_of(path.stem)
        items.append(
            Item(
                id=path.stem,
                dataset="guitarset",
                piece=piece,
                split=splits[piece],
                audio=audio,
                label=path,
                label_kind="jams",
                has_velocity=False,
            )
        )
    if not items:
        raise DatasetNotFound(
            f"guitarset: {len(jams)} annotation file(s) under {root} but no audio in {root / folder} "
            f"(variant {variant}). Get it from {INFO.source}."
        )
    return ItemList(items, root=root, skipped=skipped)
