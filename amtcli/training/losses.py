"""Transcription losses: BCE for onset/frame/offset, masked MSE for velocity, optional pitch balance."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BCE_HEADS = ("onset", "frame", "offset")


def pitch_balance_weights(rolls: dict[str, np.ndarray], *, eps: float = 1.0) -> dict[str, np.ndarray]:
    """Per head and key, weights ``(2, n_keys)`` [negative, positive] such that each key's positive and
    negative frames weigh the same in total over the training set (the AT4rAMT pitch-balanced loss),
    normalised so the mean weight per frame is 1.
    Input: summed counts ``{"<head>_pos": (n_keys,), "n_frames": int}`` as built by :func:`count_positives`.
    """
    n = float(rolls["n_frames"])
    out = {}
    for head in BCE_HEADS:
        pos = rolls[f"{head}_pos"].astype(np.float64) + eps
        neg = np.maximum(n - pos, eps)
        w_pos, w_neg = n / (2 * pos), n / (2 * neg)
        out[head] = np.stack([w_neg, w_pos]).astype(np.float32)
    return out


def count_positives(examples, *, feature_config, max_frames: int | None = None) -> dict[str, np.ndarray]:
    """Positive frame counts per key and head over ``examples`` (used for pitch balancing)."""
    from ..notes import notes_to_rolls

    counts = {f"{h}_pos": np.zeros(feature_config.n_keys, np.float64) for h in BCE_HEADS}
    total = 0
    for ex in examples:
        n_frames = ex.n_frames if max_frames is None else min(ex.n_frames, max_frames)
        r = notes_to_rolls(
            ex.notes,
            n_frames=n_frames,
            frame_rate=feature_config.frame_rate,
            fmin_midi=feature_config.fmin_midi,
            n_keys=feature_config.n_keys,
        )
        for h in BCE_HEADS:
            counts[f"{h}_pos"] += r[h].sum(axis=0)
        total += n_frames
    counts["n_frames"] = np.array(total)
    return counts


def transcription_loss(
    logits: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    *,
    key_weights: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of per-head losses; returns ``(loss, {head: value})``. Shapes ``(B, T, 88)``."""
    parts = {}
    for head in BCE_HEADS:
        y = target[head]
        w = None
        if key_weights is not None:
            wk = key_weights[head]  # (2, 88)
            w = torch.where(y > 0.5, wk[1], wk[0])
        parts[head] = F.binary_cross_entropy_with_logits(logits[head], y, weight=w)
    on = target["onset"]
    denom = on.sum().clamp_min(1.0)
    parts["velocity"] = ((torch.sigmoid(logits["velocity"]) - target["velocity"]) ** 2 * on).sum() / denom
    loss = sum(parts.values())
    return loss, {k: float(v.detach()) for k, v in parts.items()}
