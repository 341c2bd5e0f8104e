"""Audio-to-score retrieval with the joint embedding (the protocol of Dorfer et al.).

Each audio snippet of a database of ``n`` snippet pairs (2000 by default) queries the ``n`` score
snippets; its *rank* is the position of its own score snippet in the ranking by cosine similarity
(1 = best; ties count against the query). Measures:

- ``R@k``: fraction of queries ranked ``<= k`` (higher is better); chance ``k / n``.
- ``MRR``: mean of ``1 / rank`` (higher is better); chance ``H_n / n``.
- ``MR``: median rank (lower is better); chance ``(n + 1) / 2`` (the rank is uniform on ``1..n``).
- ``TM``: the transcription measure ``TP / (FP + FN)`` of the nearest neighbour's piano roll against
  the query's true roll, counted over all cells of all queries (higher is better); chance: the same
  ratio with TP, FP and FN expected under a uniformly random neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

KS = (1, 5, 25)
MEASURES = ("R@1", "R@5", "R@25", "MRR", "MR", "TM")
HIGHER_IS_BETTER = {"R@1": True, "R@5": True, "R@25": True, "MRR": True, "MR": False, "TM": True}


def ranks_from_similarity(similarity: np.ndarray) -> np.ndarray:
    """``(n, n)`` similarities (row ``i`` = query ``i``, its match in column ``i``) -> ranks ``(n,)``, 1 = best.

    A candidate that ties with the true match counts as ranked above it (the pessimistic convention).
    """
    sim = np.asarray(similarity)
    n = sim.shape[0]
    if sim.ndim != 2 or sim.shape[1] != n:
        raise ValueError(f"similarity must be square, got {sim.shape}")
    true = sim[np.arange(n), np.arange(n)]
    at_least = (sim >= true[:, None]).sum(axis=1)  # includes the match itself
    return at_least.astype(np.int64)


def retrieval_metrics(ranks: np.ndarray, *, ks: Sequence[int] = KS) -> dict[str, float]:
    """R@k, MRR and median rank of 1-based ``ranks``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["MRR"] = float(np.mean(1.0 / ranks))
    out["MR"] = float(np.median(ranks))
    return out


def chance_metrics(n: int, *, ks: Sequence[int] = KS) -> dict[str, float]:
    """The expectation of :func:`retrieval_metrics` under a random ranking of ``n`` candidates."""
    out = {f"R@{k}": min(k, n) / n for k in ks}
    out["MRR"] = float(np.sum(1.0 / np.arange(1, n + 1)) / n)  # H_n / n
    out["MR"] = (n + 1) / 2
    return out


def _counts(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    p, t = pred.reshape(len(pred), -1) > 0, true.reshape(len(true), -1) > 0
    tp = float(np.sum(p & t))
    return tp, float(np.sum(p & ~t)), float(np.sum(~p & t))


def _ratio(tp: float, errors: float) -> float:
    return float(tp) / float(errors) if errors > 0 else float("inf")


def transcription_measure(predicted_rolls: np.ndarray, true_rolls: np.ndarray) -> float:
    """``TP / (FP + FN)`` over all cells of binary rolls ``(n, T, n_keys)`` (``inf`` when there is no error)."""
    tp, fp, fn = _counts(predicted_rolls, true_rolls)
    return _ratio(tp, fp + fn)


def chance_transcription_measure(rolls: np.ndarray) -> float:
    """TM when each query's neighbour is drawn uniformly from the ``n`` database rolls ``(n, T, n_keys)``."""
    r = (rolls.reshape(len(rolls), -1) > 0).astype(np.float32)
    n = len(r)
    sizes = r.sum(axis=1)
    overlap_sum = float((r.sum(axis=0) ** 2).sum())  # sum_ij |R_i & R_j|
    tp = overlap_sum / n
    fp_plus_fn = (2 * n * sizes.sum() - 2 * overlap_sum) / n  # sum_ij |R_j| + |R_i| - 2 |R_i & R_j|, over n
    return _ratio(tp, fp_plus_fn)


def score_retrieval(audio_emb: np.ndarray, score_emb: np.ndarray, rolls: np.ndarray, *, ks=KS) -> dict[str, float]:
    """All measures for embedded snippet pairs (row ``i`` of both matches) and their rolls ``(n, T, n_keys)``."""
    sim = audio_emb @ score_emb.T
    out = retrieval_metrics(ranks_from_similarity(sim), ks=ks)
    nearest = np.argmax(sim, axis=1)
    out["TM"] = transcription_measure(rolls[nearest], rolls)
    return out


@dataclass
class RetrievalReport:
    """Measures per row ("model", "untrained", "chance") for a database of ``n`` snippets."""

    n: int
    snippet_frames: int
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    n_pieces: int = 0

    def to_json(self) -> dict:
        return {"n": self.n, "snippet_frames": self.snippet_frames, "n_pieces": self.n_pieces, "rows": self.rows}


def evaluate_retrieval(
    model,
    items,
    *,
    n_snippets: int = 2000,
    seed: int = 0,
    with_untrained: bool = True,
    min_active: float = 0.5,
    progress: Callable[[str], None] | None = None,
) -> RetrievalReport:
    """Audio-to-score retrieval over at most ``n_snippets`` snippet pairs of ``items``
    (:class:`~amtcli.datasets.embedding_pairs.PairItem`, e.g. the test split), beside an untrained
    model of the same shape (seeded with ``seed``) and the random expectation."""
    import torch

    from ..datasets.embedding_pairs import retrieval_snippets
    from ..nets import build_model
    from ..nets.embedding import embed_snippets

    T = model.config.snippet_frames
    audio, score, keys = retrieval_snippets(items, n=n_snippets, snippet_frames=T, seed=seed, min_active=min_active)
    report = RetrievalReport(n=len(keys), snippet_frames=T, n_pieces=len({items[k.item].piece for k in keys}))
    if progress:
        progress("embedding with the model")
    report.rows["model"] = score_retrieval(*embed_snippets(model, audio, score), score)
    if with_untrained:
        if progress:
            progress("embedding with an untrained model")
        torch.manual_seed(seed)
        untrained = build_model("embedding", model.config, model.feature_config).eval()
        report.rows["untrained"] = score_retrieval(*embed_snippets(untrained, audio, score), score)
    chance = chance_metrics(report.n)
    chance["TM"] = chance_transcription_measure(score)
    report.rows["chance"] = chance
    return report
