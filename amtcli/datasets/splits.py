"""Deterministic splits by piece for datasets that come without an official one.

The pieces are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut 80/10/10 (the
split of the synthetic-instruments paper): ``round(0.1 n)`` pieces each to validation and test,
the rest to train. Splitting by piece keeps every take or rendering of a piece in one split.
The same set of piece ids and seed always give the same split, on any machine.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import BadInput
from .base import SPLIT_CHOICES

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def split_pieces(
    pieces: Iterable[str], *, seed: int = 0, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict[str, str]:
    """Piece id -> ``train`` / ``validation`` / ``test``.

    ``fractions`` are (train, validation, test) and must sum to 1; validation and test get
    ``round(fraction * n)`` pieces each (so fewer than 5 pieces all land in train).
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise BadInput(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    unique = sorted(set(pieces))
    n = len(unique)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    n_test = min(n_test, n)
    n_val = min(n_val, n - n_test)
    out = {}
    for rank, index in enumerate(order):
        if rank < n_test:
            out[unique[index]] = "test"
        elif rank < n_test + n_val:
            out[unique[index]] = "validation"
        else:
            out[unique[index]] = "train"
    return out


def check_split(split: str) -> str:
    if split not in SPLIT_CHOICES:
        raise BadInput(f"unknown split {split!r} (choose from {', '.join(SPLIT_CHOICES)})")
    return split


def select_split(items: list, split: str) -> list:
    """Items of one split (``all``: every item)."""
    check_split(split)
    return list(items) if split == "all" else [it for it in items if it.split == split]
