"""Training loop of the token Transformer, with optional adversarial domain confusion.

Each step draws a labelled batch of synthetic segments (teacher forcing, token cross-entropy) and,
when unlabeled audio is given, a batch of real segments of the same size for the domain loss::

    memory_s = encoder(synthetic)        memory_r = encoder(real)
    token_loss  = CE(decoder(memory_s, start + targets[:-1]), targets)    (pad ignored)
    frame_loss  = BCE(frame_head(memory_s), onset and frame rolls)       (auxiliary, encoder only)
    domain_loss = BCE(discriminator(grad_reverse([memory_s, memory_r], lambda)), [0..., 1...])
    loss = token_loss + frame_loss_weight * frame_loss + domain_loss

Gradient reversal rather than alternating updates: one forward/backward pass trains both players
(the discriminator descends the domain loss, the encoder ascends it scaled by ``lambda``), which is
half the CPU cost of alternating discriminator and encoder passes, and it is the formulation of
DANN that arXiv 2312.10402 builds on. ``lambda`` ramps linearly from 0 to ``--domain-weight``
over ``--domain-warmup`` steps, so the encoder first learns to transcribe and the discriminator
first learns to discriminate; the discriminator itself always trains at full weight.
Discriminator accuracy near 0.5 means the domains are confused.

The run folder has the layout of :mod:`amtcli.training.loop` (``config.json``, ``metrics.jsonl``,
``checkpoints/{last,best,step-*}.pt``), so ``amt models export`` turns it into a release folder.
Checkpoints also hold the discriminator; releases do not.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DecodeConfig, FeatureConfig, from_dict, to_dict
from ..datasets.manifest import manifest_path, read_manifest, row_path, same_front_end, stored_feature_config
from ..errors import BadInput, DatasetNotFound
from ..notes import notes_to_rolls
from ..tokens import PAD, START, Codec, segment_targets
from .data import Example, load_examples
from .loop import RunSpec, lr_at
from .solver import Schedule, Solver, Task, same_config

Callback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class DomainConfig:
    """Domain confusion. ``weight``: the largest gradient-reversal factor lambda; ``warmup_steps``:
    steps over which lambda rises linearly from 0 to ``weight``."""

    weight: float = 0.3
    warmup_steps: int = 2000


@dataclass
class Seq2SeqSpec(RunSpec):
    """A :class:`RunSpec` plus the unlabeled audio folders and the domain-confusion settings."""

    unlabeled: list[str] = field(default_factory=list)
    domain_config: DomainConfig = field(default_factory=DomainConfig)

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d["unlabeled"] = self.unlabeled
        d["domain_config"] = to_dict(self.domain_config)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Seq2SeqSpec:
        base = RunSpec.from_json(d)
        return cls(
            base.architecture,
            base.model_config,
            base.feature_config,
            base.train_config,
            base.decode_config,
            base.data,
            base.init_from,
            unlabeled=list(d.get("unlabeled") or []),
            domain_config=from_dict(DomainConfig, d.get("domain_config")),
        )


def domain_lambda(step: int, cfg: DomainConfig) -> float:
    """The gradient-reversal factor at ``step``: linear warm-up from 0 to ``cfg.weight``."""
    if cfg.warmup_steps <= 0:
        return cfg.weight
    return cfg.weight * min(1.0, step / cfg.warmup_steps)


# ------------------------------------------------------------------------------------------- data


def load_unlabeled(
    folders: list[str | os.PathLike],
    *,
    feature_config: FeatureConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Features ``(n_frames, n_bins)`` of unlabeled audio.

    A folder written by ``amt synth`` (it has ``manifest.jsonl``) contributes the audio of its
    *train* split only, so its validation and test pieces stay unseen; any other folder contributes
    every audio file under it.
    """
    from ..audio.features import compute_features
    from ..audio.io import find_audio_files, load_audio

    jobs: list[tuple[Path, Path | None]] = []  # (audio, cached features)
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise DatasetNotFound(f"--unlabeled {folder}: no such folder")
        if manifest_path(folder).is_file():
            stored_fits = same_front_end(stored_feature_config(folder), feature_config)
            for row in read_manifest(folder):
                if row["split"] == "train":
                    jobs.append(
                        (row_path(folder, row, "audio"), row_path(folder, row, "features") if stored_fits else None)
                    )
        else:
            jobs += [(f, None) for f in find_audio_files([folder])]
    if not jobs:
        raise DatasetNotFound(f"--unlabeled {', '.join(map(str, folders))}: no audio files found")
    out = []
    for i, (audio, cached) in enumerate(jobs):
        feats = None
        if cached is not None and cached.is_file():
            feats = np.load(cached, mmap_mode="r")
            if feats.ndim != 2 or feats.shape[1] != feature_config.n_bins:
                feats = None
        if feats is None:
            feats = compute_features(load_audio(audio, sample_rate=feature_config.sample_rate), config=feature_config)
        if len(feats):
            out.append(feats)
        if on_progress:
            on_progress(i + 1, len(jobs))
    return out


def _crop(features: np.ndarray, start: int, frames: int, floor: np.float32) -> np.ndarray:
    out = np.full((frames, features.shape[1]), floor, dtype=np.float32)
    seg = np.asarray(features[start : start + frames])
    out[: len(seg)] = seg
    return out


def _pick(lengths: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(len(lengths), size=n, p=lengths / lengths.sum())


def sample_token_batch(
    examples: list[Example],
    *,
    batch_size: int,
    segment_frames: int,
    codec: Codec,
    feature_config: FeatureConfig,
    max_tokens: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random segments: features ``(B, segment_frames, n_bins)``, targets ``(B, L)`` padded with
    ``pad`` (``L`` = the longest target, at most ``max_tokens``) and onset/frame rolls
    ``(B, segment_frames, 2, n_keys)`` for the auxiliary loss. Items are drawn in proportion to
    their length; crops start on a frame."""
    fr = feature_config.frame_rate
    floor = np.float32(np.log(feature_config.log_offset))
    lengths = np.array([max(1, e.n_frames) for e in examples], dtype=np.float64)
    x = np.empty((batch_size, segment_frames, feature_config.n_bins), dtype=np.float32)
    rolls = np.zeros((batch_size, segment_frames, 2, feature_config.n_keys), dtype=np.float32)
    targets = []
    for b, idx in enumerate(_pick(lengths, batch_size, rng)):
        ex = examples[idx]
        start = int(rng.integers(0, max(1, ex.n_frames - segment_frames + 1)))
        x[b] = _crop(ex.features, start, segment_frames, floor)
        t0, seg_s = start / fr, segment_frames / fr
        targets.append(segment_targets(ex.notes, codec, start_s=t0, segment_s=seg_s, max_tokens=max_tokens))
        n = ex.notes
        sub = n[(n.offset_s > t0) & (n.onset_s < t0 + seg_s)].shifted(seconds=-t0)
        r = notes_to_rolls(
            sub,
            n_frames=segment_frames,
            frame_rate=fr,
            fmin_midi=feature_config.fmin_midi,
            n_keys=feature_config.n_keys,
        )
        rolls[b, :, 0], rolls[b, :, 1] = r["onset"], r["frame"]
    y = np.full((batch_size, max(len(t) for t in targets)), PAD, dtype=np.int64)
    for b, t in enumerate(targets):
        y[b, : len(t)] = t
    return x, y, rolls


def sample_unlabeled_batch(
    features: list[np.ndarray],
    *,
    batch_size: int,
    segment_frames: int,
    feature_config: FeatureConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Random segments ``(B, segment_frames, n_bins)`` of unlabeled features."""
    floor = np.float32(np.log(feature_config.log_offset))
    lengths = np.array([len(f) for f in features], dtype=np.float64)
    x = np.empty((batch_size, segment_frames, feature_config.n_bins), dtype=np.float32)
    for b, idx in enumerate(_pick(lengths, batch_size, rng)):
        start = int(rng.integers(0, max(1, len(features[idx]) - segment_frames + 1)))
        x[b] = _crop(features[idx], start, segment_frames, floor)
    return x


def decoder_inputs(targets: torch.Tensor) -> torch.Tensor:
    """Teacher forcing: ``start`` followed by the targets shifted right by one."""
    return torch.cat([torch.full_like(targets[:, :1], START), targets[:, :-1]], dim=1)


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy over non-pad targets; returns ``(loss, token accuracy)``."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)
    mask = targets != PAD
    acc = float(((logits.argmax(-1) == targets) & mask).sum()) / max(1, int(mask.sum()))
    return loss, acc


def domain_loss(
    discriminator, memory_s: torch.Tensor, memory_r: torch.Tensor, *, scale: float
) -> tuple[torch.Tensor, float]:
    """BCE of the per-frame discriminator on synthetic (0) and real (1) encoder features, through a
    gradient-reversal layer of factor ``scale``; returns ``(loss, discriminator accuracy)``."""
    from ..nets.transformer import grad_reverse

    feats = grad_reverse(torch.cat([memory_s, memory_r], dim=0), scale)
    logits = discriminator(feats).float()
    labels = torch.cat([torch.zeros(memory_s.shape[:2]), torch.ones(memory_r.shape[:2])]).to(logits.device)
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    acc = float(((logits > 0).float() == labels).float().mean())
    return loss, acc


def validate_tokens(model, examples: list[Example], *, device: str, decode: DecodeConfig) -> dict[str, float]:
    """Note P/R/F1 (onset 50 ms) and note-with-offset F1 of whole validation examples, decoded greedily
    segment by segment and stitched; plus the invalid tokens per example."""
    from ..inference.transcribe import notes_from_token_model
    from .calibrate import note_scores

    refs, ests, invalid = [], [], 0
    model.eval()
    for ex in examples:
        notes, bad = notes_from_token_model(model, np.asarray(ex.features), device=device, min_note_s=decode.min_note_s)
        refs.append(ex.notes)
        ests.append(notes)
        invalid += bad
    model.train()
    scores = note_scores(refs, ests)
    scores["invalid_tokens_per_item"] = invalid / max(1, len(examples))
    return scores


# ------------------------------------------------------------------------------------------- task


class Seq2SeqTask(Task):
    """The token Transformer's part of a run: labelled segments (teacher forcing), unlabeled segments
    for the domain loss, whole-item validation. The loop calls the model's ``encode``/``decode``, not a
    ``forward`` that DistributedDataParallel could hook, so under DDP the gradients of model and
    discriminator are averaged over the ranks after each backward pass."""

    ddp_wrap = False
    rate_keys = ("tokens",)

    def __init__(self, spec: Seq2SeqSpec):
        self.spec = spec
        self.architecture = spec.architecture

    def schedule(self) -> Schedule:
        return Schedule.of(self.spec.train_config)

    def to_json(self) -> dict[str, Any]:
        return self.spec.to_json()

    def resume_from(self, saved: dict[str, Any], *, where: Path) -> None:
        spec = self.spec
        self.check_same_model(saved, where=where, model_config=spec.model_config, feature_config=spec.feature_config)
        try:
            old = Seq2SeqSpec.from_json(saved)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{where}: the checkpoint's run config is damaged ({type(exc).__name__}: {exc})") from None
        asked = (spec.unlabeled, spec.domain_config)
        if not same_config((old.unlabeled, old.domain_config), asked) and (
            spec.unlabeled or spec.domain_config != DomainConfig()
        ):
            raise BadInput(
                f"{where.parent.parent}: --resume with different --unlabeled / --domain-* settings than the run was started with"
            )
        self.spec = Seq2SeqSpec(
            old.architecture,
            old.model_config,
            old.feature_config,
            spec.train_config,
            old.decode_config,
            old.data,
            old.init_from,
            unlabeled=old.unlabeled,
            domain_config=old.domain_config,
        )

    def build(self, solver: Solver) -> dict[str, torch.nn.Module]:
        from ..nets import build_model
        from ..nets.transformer import DomainDiscriminator

        spec = self.spec
        model = build_model(spec.architecture, spec.model_config, spec.feature_config).to(solver.device)
        if getattr(model, "output_kind", None) != "tokens":
            raise BadInput(f"architecture {spec.architecture!r} does not write tokens (use amt train's own loop)")
        self.mc = mc = model.config
        disc = DomainDiscriminator(mc.d_model, mc.disc_hidden).to(solver.device)
        self.device = solver.device
        self.codec = model.codec
        return {"model": model, "discriminator": disc}

    def optimizer(self) -> torch.optim.Optimizer:
        c = self.spec.train_config
        return torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def load_data(self, solver: Solver) -> dict[str, Any]:
        spec, cfg, fc = self.spec, self.spec.train_config, self.spec.feature_config

        def on_progress(done: int, total: int) -> None:
            solver.emit("load", {"done": done, "total": total})

        self.train = load_examples(spec.data, split="train", feature_config=fc, on_progress=on_progress)
        if not self.train:
            raise BadInput(f"no training items in {', '.join(spec.data)} (split 'train')")
        self.val = (
            load_examples(spec.data, split="validation", feature_config=fc, limit=cfg.val_items)
            if solver.ctx.is_main
            else []
        )
        self.real: list[np.ndarray] = []
        if spec.unlabeled:
            solver.emit("status", {"message": "loading unlabeled audio"})
            self.real = load_unlabeled(spec.unlabeled, feature_config=fc, on_progress=on_progress)
        return {"train_items": len(self.train), "val_items": len(self.val), "unlabeled_items": len(self.real)}

    def has_validation(self) -> bool:
        return bool(self.val)

    def lr(self, step: int) -> float:
        return lr_at(step, self.spec.train_config)

    def batch(self, rng: np.random.Generator, step: int):
        cfg, fc, mc = self.spec.train_config, self.spec.feature_config, self.mc
        x, y, rolls = sample_token_batch(
            self.train,
            batch_size=cfg.batch_size,
            segment_frames=mc.segment_frames,
            codec=self.codec,
            feature_config=fc,
            max_tokens=mc.max_tokens,
            rng=rng,
        )
        xr = (
            sample_unlabeled_batch(
                self.real, batch_size=cfg.batch_size, segment_frames=mc.segment_frames, feature_config=fc, rng=rng
            )
            if self.real
            else None
        )
        return x, y, rolls, xr

    def batch_bytes(self, batch) -> bytes:
        return batch[0].tobytes()

    def loss(self, batch, step: int):
        x, y, rolls, xr = batch
        model, disc, mc, device = self.modules["model"], self.modules["discriminator"], self.mc, self.device
        targets = torch.from_numpy(y).to(device)
        lam = domain_lambda(step, self.spec.domain_config)
        with self.autocast():
            memory_s = model.encode(torch.from_numpy(x).to(device))
            logits = model.decode(memory_s, decoder_inputs(targets))
            loss_tok, tok_acc = token_loss(logits, targets)
            loss = loss_tok
            record: dict[str, Any] = {"token_loss": float(loss_tok.detach()), "token_acc": tok_acc}
            if mc.frame_loss_weight > 0:
                # summed over keys (a mean over 88 mostly silent keys would make it vanish beside the token loss)
                loss_frame = (
                    F.binary_cross_entropy_with_logits(
                        model.frame_logits(memory_s), torch.from_numpy(rolls).to(device), reduction="none"
                    )
                    .sum(-1)
                    .mean()
                )
                loss = loss + mc.frame_loss_weight * loss_frame
                record["frame_loss"] = float(loss_frame.detach())
            if xr is not None:
                memory_r = model.encode(torch.from_numpy(xr).to(device))
                loss_dom, disc_acc = domain_loss(disc, memory_s, memory_r, scale=lam)
                loss = loss + loss_dom
                record.update(domain_loss=float(loss_dom.detach()), disc_acc=disc_acc, domain_lambda=lam)
        record["tokens"] = int((targets != PAD).sum())
        return loss, record

    def validate(self) -> dict[str, float]:
        scores = validate_tokens(self.modules["model"], self.val, device=self.device, decode=self.spec.decode_config)
        self.modules["discriminator"].train()
        return scores


def train_seq2seq(
    spec: Seq2SeqSpec,
    *,
    out_dir: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    on_event: Callback | None = None,
) -> Path:
    """Train (or resume) a token-Transformer run in ``out_dir``. Returns the path of the best checkpoint.

    Inside a process group (torchrun, :mod:`amtcli.training.launch`) every rank draws its own labelled
    and unlabeled batches (seed + rank) and the gradients of model and discriminator are averaged over
    the ranks after each backward pass; rank 0 alone validates, calls ``on_event`` and writes files.
    """
    return Solver(Seq2SeqTask(spec), out_dir=out_dir, resume=resume, device=device, on_event=on_event).run()
