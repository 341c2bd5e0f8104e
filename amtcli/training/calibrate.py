"""Choose decoding thresholds on held-out (validation) examples.

A loss such as the pitch-balanced BCE shifts the network's probabilities, so the best onset and
frame thresholds are found by a small grid search that maximises note F1 (onset) plus
note-with-offset F1 on the validation split, never on training or test data.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..config import DecodeConfig
from ..inference.decoding import decode_posteriors
from ..inference.transcribe import posteriors_from_features

ONSET_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FRAME_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def note_scores(refs, ests) -> dict[str, float]:
    """Note P/R/F1 (onset only) and note-with-offset F1, micro-averaged over examples."""
    from ..evaluation.metrics import note_counts

    on = off = None
    for ref, est in zip(refs, ests):
        c = note_counts(ref, est, with_velocity=False)
        on = c["note"] if on is None else on + c["note"]
        off = c["note_offset"] if off is None else off + c["note_offset"]
    if on is None:
        return {"note_precision": 0.0, "note_recall": 0.0, "note_f1": 0.0, "note_offset_f1": 0.0}
    return {"note_precision": on.precision, "note_recall": on.recall, "note_f1": on.f1, "note_offset_f1": off.f1}


def prior_offsets(weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """The logit offsets ``{head: (88,)}`` that undo pitch-balance ``weights`` (``(w_neg, w_pos)`` per head)."""
    from .losses import BCE_HEADS

    return {h: (-np.log(weights[h][1] / weights[h][0])).astype(np.float32) for h in BCE_HEADS}


def remove_prior(model, offsets) -> None:
    """Remove the pitch-balanced prior from ``model`` in place (``offsets``: :func:`prior_offsets`,
    as numpy arrays or tensors, e.g. a checkpoint's ``prior_offsets``)."""
    import torch

    model.shift_logits({h: torch.as_tensor(np.asarray(v, dtype=np.float32)) for h, v in offsets.items()})


def debiased_copy(model, offsets: dict[str, np.ndarray]):
    """A copy of ``model`` with the pitch-balanced prior removed (``offsets`` from :func:`prior_offsets`)."""
    import copy

    twin = copy.deepcopy(model)
    remove_prior(twin, offsets)
    return twin


def debias_pitch_balanced(model, train_examples) -> dict[str, np.ndarray]:
    """Undo the prior shift of the pitch-balanced loss in a trained model, in place.

    Weighting a key's positive frames by ``w_pos`` and its negatives by ``w_neg`` moves the optimal
    logit by ``log(w_pos / w_neg)``; subtracting that per key and head (from the same training-set
    counts the loss used) makes the outputs probabilities again, so one threshold suits every key.
    Returns the offsets applied ``{head: (88,)}``.
    """
    from .losses import count_positives, pitch_balance_weights

    offsets = prior_offsets(pitch_balance_weights(count_positives(train_examples, feature_config=model.feature_config)))
    remove_prior(model, offsets)
    return offsets


def calibrate_decoding(
    model, examples, *, device: str = "cpu", base: DecodeConfig = DecodeConfig(), also: Sequence = ()
) -> tuple[DecodeConfig, dict]:
    """Grid-search onset and frame thresholds on ``examples``; returns (best config, report).

    ``also``: more example sets (the same excerpts under noise, for a noise-trained model); each
    setting is then scored by its mean over ``examples`` and every set of ``also``."""
    fc = model.feature_config
    sets = [examples, *also]
    posts = [[posteriors_from_features(model, np.asarray(ex.features), device=device) for ex in s] for s in sets]
    refs = [[ex.notes for ex in s] for s in sets]
    best, best_key, table = base, (-1.0, -1.0), []
    for on_t, fr_t in itertools.product(ONSET_GRID, FRAME_GRID):
        cfg = replace(base, onset_threshold=on_t, frame_threshold=fr_t)
        scores = []
        for set_posts, set_refs in zip(posts, refs):
            ests = [decode_posteriors(p, feature_config=fc, config=cfg) for p in set_posts]
            scores.append(note_scores(set_refs, ests))
        f_on = float(np.mean([sc["note_f1"] for sc in scores]))
        f_off = float(np.mean([sc["note_offset_f1"] for sc in scores]))
        row = {"onset_threshold": on_t, "frame_threshold": fr_t, "note_f1": f_on, "note_offset_f1": f_off}
        if also:
            row["note_f1_by_set"] = [sc["note_f1"] for sc in scores]
        table.append(row)
        key = (f_on + f_off, f_on)
        if key > best_key:
            best, best_key = cfg, key
    return best, {
        "grid": table,
        "chosen": {"onset_threshold": best.onset_threshold, "frame_threshold": best.frame_threshold},
    }
