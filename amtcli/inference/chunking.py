"""Long inputs in overlapping chunks: enframe, run, deframe keeping each chunk's centre.

Every output frame comes from the chunk in which it is furthest from an edge, so the result does
not depend on where the chunk boundaries fall (up to the model's own context).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np


def chunk_spans(n_frames: int, *, chunk_frames: int, margin_frames: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(in_start, in_end, keep_start, keep_end)`` frame indices.

    Each chunk reads ``[in_start, in_end)`` (at most ``chunk_frames + 2 * margin_frames`` frames) and
    contributes ``[keep_start, keep_end)``; the kept spans tile ``[0, n_frames)`` exactly.
    """
    if chunk_frames <= 0 or margin_frames < 0:
        raise ValueError("chunk_frames must be positive and margin_frames non-negative")
    for keep_start in range(0, max(n_frames, 1), chunk_frames):
        keep_end = min(n_frames, keep_start + chunk_frames)
        yield max(0, keep_start - margin_frames), min(n_frames, keep_end + margin_frames), keep_start, keep_end


def run_chunked(
    features: np.ndarray,
    fn: Callable[[np.ndarray], dict[str, np.ndarray]],
    *,
    chunk_frames: int,
    margin_frames: int,
    batch_size: int = 4,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Apply ``fn`` to overlapping chunks of ``features`` ``(n_frames, n_bins)`` and stitch the outputs.

    ``fn`` takes a batch ``(B, L, n_bins)`` and returns arrays ``(B, L, ...)``. Chunks in a batch are
    padded to the same length by repeating the last frame; the padding is never kept.
    Returns arrays of shape ``(n_frames, ...)``.
    """
    n_frames = len(features)
    spans = list(chunk_spans(n_frames, chunk_frames=chunk_frames, margin_frames=margin_frames))
    out: dict[str, np.ndarray] = {}
    done = 0
    for b0 in range(0, len(spans), batch_size):
        group = spans[b0 : b0 + batch_size]
        length = max(e - s for s, e, _, _ in group)
        batch = np.empty((len(group), length, features.shape[1]), dtype=np.float32)
        for i, (s, e, _, _) in enumerate(group):
            batch[i, : e - s] = features[s:e]
            batch[i, e - s :] = features[e - 1] if e > s else 0.0
        result = fn(batch)
        for name, value in result.items():
            if name not in out:
                out[name] = np.empty((n_frames,) + value.shape[2:], dtype=value.dtype)
            for i, (s, _, ks, ke) in enumerate(group):
                out[name][ks:ke] = value[i, ks - s : ke - s]
        done += len(group)
        if on_progress:
            on_progress(done, len(spans))
    return out
