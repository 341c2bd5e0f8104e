"""Encoder-decoder Transformer that writes MIDI-like event tokens, plus the domain discriminator.

Shape of the computation for a batch of ``B`` segments of ``T = segment_frames`` frames::

    log-CQT (B, T, n_bins)                       silence floor moved to 0, scaled by 1/4
      -> conv front end over (frequency, time)   per width c in `conv_channels`: 3x3 conv -> GroupNorm
                                                 -> GELU -> max-pool 2 along frequency only
      -> linear to d_model per frame              (B, T, d_model) + sinusoidal positions
      -> Transformer encoder (pre-norm)           "memory" (B, T, d_model)
    tokens (B, L) -> embedding + positions
      -> Transformer decoder (pre-norm, causal self-attention, cross-attention to the memory)
      -> logits over the codec's vocabulary       (B, L, vocab_size)

Optionally (``frame_loss_weight > 0``) a linear head on the memory predicts onset and frame rolls
``(B, T, 2, 88)`` during training, an auxiliary loss that makes the encoder's features pitch-aware
from the start. On harmonic tones it made no difference after 2000 steps
(``benchmarks/transformer_sanity.py``: note F1 0.20 with, 0.23 without, one seed each), so it is
off by default. Inference never uses it.

Tokens follow :class:`amtcli.tokens.Codec` (built from this config). Greedy decoding
(:meth:`TokenTransformer.generate`) caches each decoder layer's self-attention keys/values and the
cross-attention keys/values of the memory, so every new token costs one position's worth of work.

Domain confusion (arXiv 2312.10402, after DANN): :class:`DomainDiscriminator` reads the memory frame
by frame and predicts synthetic (0) vs real (1); :func:`grad_reverse` sits between the encoder and
the discriminator so that one backward pass trains the discriminator to tell the domains apart and
the encoder to make them indistinguishable. The discriminator is a training-time module only and is
not part of the released weights.
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
class TransformerConfig:
    conv_channels: tuple = (16, 32)  # front-end widths; each halves the frequency axis
    d_model: int = 128
    n_heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    ff_dim: int = 384
    dropout: float = 0.1
    segment_frames: int = 125  # 125 frames at 31.25 frames/s = 4 s per segment
    max_tokens: int = 256  # target length in training, longest decode at inference (eos included)
    # the token codec (amtcli.tokens.Codec)
    steps_per_second: float = 31.25
    max_shift_steps: int = 125
    n_velocity_bins: int = 16
    # training only: the domain discriminator's width, and the weight of an optional auxiliary
    # frame-wise onset/frame loss on the encoder features (0: no frame head)
    disc_hidden: int = 64
    frame_loss_weight: float = 0.0


def sinusoids(length: int, dim: int, *, device=None) -> torch.Tensor:
    """Sinusoidal position codes ``(length, dim)``."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(pos * inv)
    out[:, 1::2] = torch.cos(pos * inv[: dim // 2])
    return out


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-scale`` in the backward pass."""
    return _GradReverse.apply(x, float(scale))


class DomainDiscriminator(nn.Module):
    """Per-frame MLP: encoder features ``(B, T, d_model)`` -> logits ``(B, T)`` (real = 1, synthetic = 0)."""

    def __init__(self, d_model: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        return self.net(memory).squeeze(-1)


class _DecoderLayer(nn.Module):
    """Pre-norm decoder layer with explicit attention so keys/values can be cached."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_qkv = nn.Linear(d, 3 * d)
        self.self_out = nn.Linear(d, d)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(d, 2 * d)
        self.cross_out = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, h, L, d/h)
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    @staticmethod
    def _merge(x: torch.Tensor) -> torch.Tensor:
        b, h, n, dh = x.shape
        return x.transpose(1, 2).reshape(b, n, h * dh)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.cross_kv(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x, mem_kv, cache: dict | None = None):
        """``x`` (B, L, d). With ``cache`` (incremental decoding) the new positions attend to the cached
        ones too and their keys/values are appended to it."""
        p = self.p if self.training else 0.0
        q, k, v = self.self_qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = self._split(q), self._split(k), self._split(v)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        n_new, n_all = q.shape[2], k.shape[2]
        if n_new == 1:
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # the newest position sees everything
        elif n_new == n_all:
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:  # several new positions after a cached prefix
            mask = torch.ones(n_new, n_all, dtype=torch.bool, device=x.device).tril(n_all - n_new)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        x = x + self.drop(self.self_out(self._merge(a)))
        q = self._split(self.cross_q(self.norm2(x)))
        a = F.scaled_dot_product_attention(q, mem_kv[0], mem_kv[1], dropout_p=p)
        x = x + self.drop(self.cross_out(self._merge(a)))
        return x + self.drop(self.ff(self.norm3(x)))


class TokenTransformer(nn.Module):
    """``forward(features (B, T, n_bins), tokens_in (B, L)) -> logits (B, L, vocab_size)``."""

    arch = "transformer"
    output_kind = "tokens"

    def __init__(self, config: TransformerConfig, feature_config: FeatureConfig):
        super().__init__()
        from ..tokens import codec_from_config

        self.config = config
        self.feature_config = feature_config
        c = config
        if c.d_model % c.n_heads or (c.d_model // c.n_heads) % 2:
            raise ConfigMismatch(f"d_model {c.d_model} must split into {c.n_heads} heads of even width")
        self.codec = codec_from_config(c)
        self.floor = math.log(feature_config.log_offset)
        convs, c_in, height = [], 1, feature_config.n_bins
        for width in c.conv_channels:
            convs += [
                nn.Conv2d(c_in, width, kernel_size=3, padding=1),
                nn.GroupNorm(1, width),
                nn.GELU(),
                nn.MaxPool2d((2, 1)),
            ]
            c_in, height = width, height // 2
        if height < 1:
            raise ConfigMismatch(
                f"{len(c.conv_channels)} front-end poolings leave no frequency bins of {feature_config.n_bins}"
            )
        self.front = nn.Sequential(*convs)
        self.project = nn.Linear(c_in * height, c.d_model)
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.n_heads, c.ff_dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, c.encoder_layers, norm=nn.LayerNorm(c.d_model), enable_nested_tensor=False
        )
        self.embed = nn.Embedding(self.codec.vocab_size, c.d_model)
        self.layers = nn.ModuleList(
            _DecoderLayer(c.d_model, c.n_heads, c.ff_dim, c.dropout) for _ in range(c.decoder_layers)
        )
        self.out_norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, self.codec.vocab_size)
        self.in_drop = nn.Dropout(c.dropout)
        self.frame_head = nn.Linear(c.d_model, 2 * feature_config.n_keys) if c.frame_loss_weight > 0 else None

    # ------------------------------------------------------------------ encoder
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, n_bins)`` -> memory ``(B, T, d_model)``."""
        if features.shape[-1] != self.feature_config.n_bins:
            raise ConfigMismatch(
                f"features have {features.shape[-1]} bins but the model expects {self.feature_config.n_bins}"
            )
        b, t, _ = features.shape
        x = ((features - self.floor) * 0.25).transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        x = self.front(x)  # (B, C, F', T)
        x = x.permute(0, 3, 1, 2).reshape(b, t, -1)
        x = self.project(x) + sinusoids(t, self.config.d_model, device=x.device).to(x.dtype)
        return self.encoder(self.in_drop(x))

    def frame_logits(self, memory: torch.Tensor) -> torch.Tensor:
        """Auxiliary onset/frame logits ``(B, T, 2, n_keys)`` from the memory (training only)."""
        if self.frame_head is None:
            raise ConfigMismatch("this model has no frame head (frame_loss_weight = 0)")
        b, t, _ = memory.shape
        return self.frame_head(memory).float().view(b, t, 2, -1)

    # ------------------------------------------------------------------ decoder
    def _embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        n = tokens.shape[1]
        pos = sinusoids(start + n, self.config.d_model, device=tokens.device)[start:]
        return self.embed(tokens) + pos  # both O(1) per dimension (nn.Embedding draws from N(0, 1))

    def memory_kv(self, memory: torch.Tensor) -> list:
        return [layer.memory_kv(memory) for layer in self.layers]

    def decode(self, memory: torch.Tensor, tokens_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: decoder inputs ``(B, L)`` (``start`` first) -> logits ``(B, L, vocab_size)``."""
        x = self.in_drop(self._embed(tokens_in))
        for layer, kv in zip(self.layers, self.memory_kv(memory)):
            x = layer(x, kv)
        return self.head(self.out_norm(x)).float()

    def forward(self, features: torch.Tensor, tokens_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(features), tokens_in)

    # ------------------------------------------------------------------ greedy decoding
    @torch.no_grad()
    def generate(self, features: torch.Tensor, *, max_tokens: int | None = None, use_cache: bool = True) -> list:
        """Greedy decoding of each segment of ``features`` ``(B, T, n_bins)``.

        Returns one int64 numpy array per segment: the generated tokens up to and including ``eos``
        (or ``max_tokens`` of them without one). ``pad`` and ``start`` are never generated.
        ``use_cache=False`` recomputes the whole prefix at every step (the reference for tests).
        """
        import numpy as np

        from ..tokens import EOS, PAD, START

        max_tokens = max_tokens or self.config.max_tokens
        memory = self.encode(features)
        b = memory.shape[0]
        kvs = self.memory_kv(memory)
        caches = [{} for _ in self.layers]
        seq = torch.full((b, 1), START, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        banned = torch.tensor([PAD, START], device=memory.device)
        for i in range(max_tokens):
            if use_cache:
                x = self._embed(seq[:, -1:], start=i)
                for layer, kv, cache in zip(self.layers, kvs, caches):
                    x = layer(x, kv, cache)
            else:
                x = self._embed(seq)
                for layer, kv in zip(self.layers, kvs):
                    x = layer(x, kv)
                x = x[:, -1:]
            logits = self.head(self.out_norm(x))[:, -1].float()
            logits[:, banned] = float("-inf")
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        out = []
        for row in seq[:, 1:].cpu().numpy():
            stop = np.nonzero(row == EOS)[0]
            out.append(row[: stop[0] + 1] if len(stop) else row)
        return out
