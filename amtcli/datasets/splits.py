"""Deterministic splits by piece for datasets that come without an official one.

The pieces are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut 80/10/10 (the
split of the synthetic-instruments paper): ``round(0.1 n)`` pieces each to validation and test,
the rest to train. Splitting by piece keeps every take or rendering of a piece in one split.
The same set of piece ids and seed always give the same split, on any machine.

A :class:`SplitPlan` re-splits a whole dataset by piece, ignoring the reader's own split: a small
real set (MAPS's 11 Disklavier recordings, all in its official test split; five takes of one's
own playing) becomes usable for fine-tuning. ``folds=K`` cuts the pieces into K folds (k-fold
cross-validation: fold ``i`` is the test split, every recording is tested in exactly one fold);
validation pieces are then taken from the other folds (:func:`split_folds`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from ..errors import BadInput
from .base import SPLIT_CHOICES

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_BY = ("dataset", "piece")
VALIDATION_FRACTION = 0.1  # of the pieces outside the test fold, at least one when there are two


@dataclass(frozen=True)
class SplitPlan:
    """How to split a dataset.

    ``by``: ``dataset`` (the reader's own split: official, or 80/10/10 by piece) or ``piece``
    (every recording of the set, re-split by piece). ``folds``: k-fold cross-validation over the
    pieces (implies ``piece``); ``fold``: which fold is the test split (0-based). ``seed`` seeds
    the shuffle of the pieces.
    """

    by: str = "dataset"
    folds: int | None = None
    fold: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.by not in SPLIT_BY:
            raise BadInput(f"--split-by {self.by}: choose from {', '.join(SPLIT_BY)}")
        if self.folds is not None:
            if self.folds < 2:
                raise BadInput(f"--folds {self.folds}: k-fold cross-validation needs at least 2 folds")
            if self.by != "piece":
                object.__setattr__(self, "by", "piece")
        if self.fold is not None:
            if self.folds is None:
                raise BadInput(f"--fold {self.fold} needs --folds K")
            if not 0 <= self.fold < self.folds:
                raise BadInput(f"--fold {self.fold}: folds are numbered 0..{self.folds - 1}")

    @property
    def default(self) -> bool:
        return self.by == "dataset"

    def with_fold(self, fold: int) -> "SplitPlan":
        return replace(self, fold=fold)

    def describe(self) -> str:
        if self.default:
            return "the dataset's own split"
        if self.folds is None:
            return f"80/10/10 by piece (seed {self.seed})"
        which = "" if self.fold is None else f", fold {self.fold} held out"
        return f"{self.folds} folds by piece (seed {self.seed}{which})"

    def to_dict(self) -> dict:
        return {"by": self.by, "folds": self.folds, "fold": self.fold, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict | None) -> "SplitPlan":
        d = d or {}
        return cls(by=d.get("by", "dataset"), folds=d.get("folds"), fold=d.get("fold"), seed=int(d.get("seed") or 0))


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


def fold_pieces(pieces: Iterable[str], *, folds: int, seed: int = 0) -> dict[str, int]:
    """Piece id -> fold number (0..folds-1): the sorted pieces shuffled with ``seed``, then dealt
    round-robin, so fold sizes differ by at most one piece. More folds than pieces is a
    :class:`BadInput` (a fold would be empty)."""
    unique = sorted(set(pieces))
    if folds > len(unique):
        raise BadInput(
            f"--folds {folds}: only {len(unique)} piece(s) to split, so a fold would be empty "
            f"(use --folds {len(unique)} or fewer)"
            if len(unique) >= 2
            else f"--folds {folds}: only {len(unique)} piece, nothing to hold out"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[index]: rank % folds for rank, index in enumerate(order)}


def split_folds(pieces: Iterable[str], *, folds: int, fold: int, seed: int = 0) -> dict[str, str]:
    """Piece id -> ``train`` / ``validation`` / ``test`` for fold ``fold`` of ``folds``.

    Test: the pieces of fold ``fold`` (:func:`fold_pieces`). Validation: ``round(0.1 n)`` of the
    other ``n`` pieces, at least one when ``n >= 2`` (so a fine-tune can stop early and choose its
    thresholds), drawn with the same seed; train: the rest.
    """
    unique = sorted(set(pieces))
    fold_of = fold_pieces(unique, folds=folds, seed=seed)
    rest = [p for p in unique if fold_of[p] != fold]
    n_val = max(1, int(round(VALIDATION_FRACTION * len(rest)))) if len(rest) >= 2 else 0
    order = np.random.default_rng([seed, fold]).permutation(len(rest))
    validation = {rest[i] for i in order[:n_val]}
    return {p: "test" if fold_of[p] == fold else "validation" if p in validation else "train" for p in unique}


def split_small(pieces: Iterable[str], *, seed: int = 0) -> dict[str, str]:
    """80/10/10 by piece (:func:`split_pieces`), with at least one validation and one test piece
    once there are three pieces (five takes: 3 train, 1 validation, 1 test)."""
    unique = sorted(set(pieces))
    out = split_pieces(unique, seed=seed)
    if len(unique) < 3:
        return out
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    for split in ("test", "validation"):
        if split not in out.values():
            out[next(p for p in reversed(order) if out[p] == "train")] = split
    return out


def apply_plan(items: list, plan: SplitPlan) -> list:
    """``items`` with their ``split`` set by ``plan`` (unchanged for ``by="dataset"``).

    Items keep their piece: every take of a piece lands in one split. With ``folds``, ``plan.fold``
    must be set (a fold is never empty and always leaves a piece to train on: see :func:`fold_pieces`).
    """
    if plan.default:
        return list(items)
    pieces = [it.piece for it in items]
    if plan.folds is None:
        table = split_small(pieces, seed=plan.seed)
    else:
        if plan.fold is None:
            raise BadInput(f"--folds {plan.folds}: say which fold to hold out (--fold 0..{plan.folds - 1})")
        table = split_folds(pieces, folds=plan.folds, fold=plan.fold, seed=plan.seed)
    return [replace(it, split=table[it.piece]) for it in items]


def check_split(split: str) -> str:
    if split not in SPLIT_CHOICES:
        raise BadInput(f"unknown split {split!r} (choose from {', '.join(SPLIT_CHOICES)})")
    return split


def select_split(items: list, split: str) -> list:
    """Items of one split (``all``: every item)."""
    check_split(split)
    return list(items) if split == "all" else [it for it in items if it.split == split]
