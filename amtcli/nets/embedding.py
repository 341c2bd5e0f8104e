"""Joint audio-score embedding (after Dorfer et al.): two CNNs map a log-CQT snippet and a piano-roll
snippet of the same time span into one ``embed_dim``-dimensional space where matching pairs are close.

Shape of the computation for a batch of ``B`` snippets of ``T = snippet_frames`` frames::

    audio: log-CQT (B, T, n_bins)  -> (B, 1, n_bins, T)   silence floor moved to 0
    score: piano roll (B, T, 88)   -> (B, 1, 88, T)
    each encoder, per width c in `channels` (24, 48, 96, 96):
        [3x3 conv -> batch norm -> ELU] x 2 -> 2x2 max-pool
    -> 1x1 conv to embed_dim (32), linear -> global average pooling -> (B, embed_dim) -> L2 norm

Similarity is the cosine (a dot product of unit vectors). Training minimises the pairwise ranking
hinge loss over every non-matching pair of a batch (:func:`ranking_loss`), so a batch must hold
exactly one audio snippet per score snippet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FeatureConfig
from ..errors import ConfigMismatch


@dataclass(frozen=True)
class EmbeddingConfig:
    channels: tuple = (24, 48, 96, 96)  # widths of the conv blocks (each: two 3x3 convs, then a 2x2 max-pool)
    embed_dim: int = 32
    snippet_frames: int = 64  # 64 frames at 31.25 frames/s = 2.05 s per snippet
    margin: float = 0.7  # the hinge margin of the ranking loss (cosine units)
    symmetric: bool = True  # the loss also ranks audio snippets for each score snippet


def _block(c_in: int, c_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((c_in, c_out), (c_out, c_out)):
        layers += [nn.Conv2d(a, b, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ELU(inplace=True)]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SnippetEncoder(nn.Module):
    """``(B, 1, height, T)`` -> unit vectors ``(B, embed_dim)``."""

    def __init__(self, channels: tuple, embed_dim: int):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks.append(_block(c_in, c))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Conv2d(c_in, embed_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(self.blocks(x))
        return F.normalize(x.mean(dim=(2, 3)), dim=1)


class AudioScoreEmbedding(nn.Module):
    """``forward(audio (B, T, n_bins), score (B, T, n_keys)) -> (audio_emb, score_emb)``, each ``(B, embed_dim)``."""

    arch = "embedding"

    def __init__(self, config: EmbeddingConfig, feature_config: FeatureConfig):
        super().__init__()
        self.config = config
        self.feature_config = feature_config
        depth = len(config.channels)
        smallest = min(feature_config.n_keys, config.snippet_frames)
        if depth < 1 or smallest < 2**depth:
            raise ConfigMismatch(
                f"{depth} pooling blocks need snippets of at least {2**depth} frames and keys "
                f"(got {config.snippet_frames} frames, {feature_config.n_keys} keys)"
            )
        self.audio_encoder = SnippetEncoder(tuple(config.channels), config.embed_dim)
        self.score_encoder = SnippetEncoder(tuple(config.channels), config.embed_dim)
        self._floor = math.log(feature_config.log_offset)  # log-CQT of silence

    @property
    def snippet_frames(self) -> int:
        return self.config.snippet_frames

    def embed_audio(self, features: torch.Tensor) -> torch.Tensor:
        """Log-CQT snippets ``(B, T, n_bins)`` -> unit vectors ``(B, embed_dim)``."""
        if features.dim() != 3 or features.shape[2] != self.feature_config.n_bins:
            raise ConfigMismatch(
                f"audio snippets must be (batch, frames, {self.feature_config.n_bins}), got {tuple(features.shape)}"
            )
        x = (features.float() - self._floor).transpose(1, 2)[:, None]
        return self.audio_encoder(x)

    def embed_score(self, roll: torch.Tensor) -> torch.Tensor:
        """Piano-roll snippets ``(B, T, n_keys)`` (0/1) -> unit vectors ``(B, embed_dim)``."""
        if roll.dim() != 3 or roll.shape[2] != self.feature_config.n_keys:
            raise ConfigMismatch(
                f"score snippets must be (batch, frames, {self.feature_config.n_keys}), got {tuple(roll.shape)}"
            )
        return self.score_encoder(roll.float().transpose(1, 2)[:, None])

    def forward(self, audio: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_audio(audio), self.embed_score(score)

    def loss(self, audio_emb: torch.Tensor, score_emb: torch.Tensor) -> torch.Tensor:
        return ranking_loss(
            cosine_similarity(audio_emb, score_emb), margin=self.config.margin, symmetric=self.config.symmetric
        )


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n, D)``, ``(m, D)`` -> ``(n, m)`` cosine similarities (rows: ``a``, columns: ``b``)."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def ranking_loss(similarity: torch.Tensor, *, margin: float, symmetric: bool = True) -> torch.Tensor:
    """Pairwise ranking hinge loss over every non-matching pair of a batch.

    ``similarity`` is ``(B, B)`` with ``similarity[i, j] = s(audio_i, score_j)``; pair ``(i, i)`` matches.
    Audio anchors: ``mean_i sum_{j != i} max(0, margin - s[i, i] + s[i, j])``. With ``symmetric``, the
    mean of that and the same with score anchors (``s[j, j]`` against ``s[i, j]`` for ``i != j``).
    Zero exactly when every matching pair beats every non-matching one by at least ``margin``.
    """
    n = similarity.shape[0]
    if similarity.dim() != 2 or similarity.shape[1] != n:
        raise ValueError(f"similarity must be square, got {tuple(similarity.shape)}")
    pos = similarity.diagonal()
    off = ~torch.eye(n, dtype=torch.bool, device=similarity.device)
    audio_anchored = (F.relu(margin - pos[:, None] + similarity) * off).sum(dim=1).mean()
    if not symmetric:
        return audio_anchored
    score_anchored = (F.relu(margin - pos[None, :] + similarity) * off).sum(dim=0).mean()
    return 0.5 * (audio_anchored + score_anchored)


def embed_snippets(model: AudioScoreEmbedding, audio, score=None, *, batch_size: int = 128):
    """Embed audio ``(n, T, n_bins)`` and score ``(n, T, n_keys)`` snippets (numpy arrays) -> float32
    ``(n, D)`` each (``None`` for a side not given). Puts ``model`` in eval mode."""
    import numpy as np

    model.eval()

    def run(x, fn):
        if x is None:
            return None
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                out.append(fn(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], np.float32))).numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.embed_dim), np.float32)

    return run(audio, model.embed_audio), run(score, model.embed_score)
