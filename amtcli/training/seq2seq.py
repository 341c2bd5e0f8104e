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

import json
import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DecodeConfig, FeatureConfig, from_dict, to_dict
from ..errors import BadInput, DatasetNotFound
from ..inference.tokens import PAD, START, Codec, segment_targets
from ..notes import notes_to_rolls
from . import distributed as ddp
from .checkpoints import open_run, prune_checkpoints, save_checkpoint, step_path
from .data import Example, load_examples, read_manifest
from ..devices import resolve_precision
from .loop import RunSpec, _rng_state, lr_at, restore_rank_rng

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
            base.architecture, base.model_config, base.feature_config, base.train_config, base.decode_config, base.data, base.init_from,
            unlabeled=list(d.get("unlabeled") or []), domain_config=from_dict(DomainConfig, d.get("domain_config")),
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
        if (folder / "manifest.jsonl").is_file():
            for row in read_manifest(folder):
                if row.get("split") == "train":
                    jobs.append((folder / row["audio"], folder / row["features"] if row.get("features") else None))
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
        r = notes_to_rolls(sub, n_frames=segment_frames, frame_rate=fr, fmin_midi=feature_config.fmin_midi, n_keys=feature_config.n_keys)
        rolls[b, :, 0], rolls[b, :, 1] = r["onset"], r["frame"]
    y = np.full((batch_size, max(len(t) for t in targets)), PAD, dtype=np.int64)
    for b, t in enumerate(targets):
        y[b, : len(t)] = t
    return x, y, rolls


def sample_unlabeled_batch(features: list[np.ndarray], *, batch_size: int, segment_frames: int, feature_config: FeatureConfig, rng: np.random.Generator) -> np.ndarray:
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


def domain_loss(discriminator, memory_s: torch.Tensor, memory_r: torch.Tensor, *, scale: float) -> tuple[torch.Tensor, float]:
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


# ------------------------------------------------------------------------------------------- loop


def train_seq2seq(
    spec: Seq2SeqSpec,
    *,
    out_dir: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    on_event: Callback | None = None,
) -> Path:
    """Train (or resume) a token-Transformer run in ``out_dir``. Returns the path of the best checkpoint.

    Inside a process group (torchrun, ``distributed.launch``) every rank draws its own labelled and
    unlabeled batches (seed + rank) and the gradients of model and discriminator are averaged over
    the ranks after each backward pass (:func:`distributed.average_gradients`: the loop calls the
    model's ``encode``/``decode``, not a ``forward`` that DistributedDataParallel could hook); rank 0
    alone validates, calls ``on_event`` and writes files.
    """
    from ..nets import build_model
    from ..nets.transformer import DomainDiscriminator

    ctx = ddp.context()
    emit = (on_event if ctx.is_main else None) or (lambda kind, data: None)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    cfg = spec.train_config
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    def prepare() -> tuple[Seq2SeqSpec, dict[str, Any] | None]:
        state = open_run(out, resume=resume)
        if state is not None:
            saved = Seq2SeqSpec.from_json(json.loads(state["config"]))
            if (saved.architecture, saved.model_config, saved.feature_config) != (spec.architecture, spec.model_config, spec.feature_config):
                raise BadInput(f"{out}: --resume with a different model or features than the run was started with")
            if (saved.unlabeled, saved.domain_config) != (spec.unlabeled, spec.domain_config) and (spec.unlabeled or spec.domain_config != DomainConfig()):
                raise BadInput(f"{out}: --resume with different --unlabeled / --domain-* settings than the run was started with")
            return Seq2SeqSpec(saved.architecture, saved.model_config, saved.feature_config, cfg, saved.decode_config, saved.data, saved.init_from, unlabeled=saved.unlabeled, domain_config=saved.domain_config), state
        return spec, None

    spec, state = ddp.on_main(prepare)  # rank 0 reads the run; every rank gets the same state

    rng = np.random.default_rng(cfg.seed + ctx.rank)  # each rank draws its own batches
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    fc = spec.feature_config
    model = build_model(spec.architecture, spec.model_config, fc).to(device)
    if getattr(model, "output_kind", None) != "tokens":
        raise BadInput(f"architecture {spec.architecture!r} does not write tokens (use amt train's own loop)")
    mc = model.config
    disc = DomainDiscriminator(mc.d_model, mc.disc_hidden).to(device)
    if ctx.distributed:
        torch.manual_seed(cfg.seed + ctx.rank)  # dropout differs per rank; the weights start equal
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(disc.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best_f1 = 0, -1.0
    if state is not None:
        model.load_state_dict(state["model"], strict=True)
        disc.load_state_dict(state["discriminator"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        step, best_f1 = int(state["step"]), float(state["best_f1"])
        rng = restore_rank_rng(rng, state, ctx=ctx, seed=cfg.seed, step=step)
        del state

    emit("status", {"message": "loading training data"})
    train = load_examples(spec.data, split="train", feature_config=fc, on_progress=lambda i, n: emit("load", {"done": i, "total": n}))
    if not train:
        raise BadInput(f"no training items in {', '.join(spec.data)} (split 'train')")
    val = load_examples(spec.data, split="validation", feature_config=fc, limit=cfg.val_items) if ctx.is_main else []
    has_val = bool(ddp.broadcast(bool(val)))
    real: list[np.ndarray] = []
    if spec.unlabeled:
        emit("status", {"message": "loading unlabeled audio"})
        real = load_unlabeled(spec.unlabeled, feature_config=fc, on_progress=lambda i, n: emit("load", {"done": i, "total": n}))
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")

    codec = model.codec
    seg = mc.segment_frames
    prec = resolve_precision(cfg.precision, device)
    autocast_dtype = prec.dtype
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    params = list(model.parameters()) + list(disc.parameters())
    emit("start", {"step": step, "steps": cfg.steps, "train_items": len(train), "val_items": len(val), "unlabeled_items": len(real), "precision": str(prec), "processes": ctx.world_size})

    def checkpoint(tag_best: bool) -> None:
        rng_states = ddp.all_gather(_rng_state(rng))  # every rank's generators, for an exact resume
        if not ctx.is_main:
            return
        payload = {
            "model": model.state_dict(),
            "discriminator": disc.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "best_f1": best_f1,
            "rng": rng_states[0],
            "config": json.dumps(spec.to_json()),
        }
        if ctx.distributed:
            payload["rng_ranks"] = rng_states
        save_checkpoint(payload, ckpt_dir / "last.pt")
        save_checkpoint(payload, step_path(ckpt_dir, step))
        prune_checkpoints(ckpt_dir, keep=cfg.keep_checkpoints)
        if tag_best:
            save_checkpoint(payload, ckpt_dir / "best.pt")

    metrics_path = out / "metrics.jsonl"
    model.train()
    disc.train()
    t_last, steps_since, tokens_since = time.perf_counter(), 0, 0
    data_crc = 0  # what this rank trained on (ranks must differ); kept under DDP only
    while step < cfg.steps:
        x, y, rolls = sample_token_batch(train, batch_size=cfg.batch_size, segment_frames=seg, codec=codec, feature_config=fc, max_tokens=mc.max_tokens, rng=rng)
        xr = sample_unlabeled_batch(real, batch_size=cfg.batch_size, segment_frames=seg, feature_config=fc, rng=rng) if real else None
        if ctx.distributed:
            data_crc = zlib.crc32(x.tobytes(), data_crc)
        targets = torch.from_numpy(y).to(device)
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lam = domain_lambda(step, spec.domain_config)
        with torch.autocast(device_type=dev_type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            memory_s = model.encode(torch.from_numpy(x).to(device))
            logits = model.decode(memory_s, decoder_inputs(targets))
            loss_tok, tok_acc = token_loss(logits, targets)
            loss = loss_tok
            record: dict[str, Any] = {}
            if mc.frame_loss_weight > 0:
                # summed over keys (a mean over 88 mostly silent keys would make it vanish beside the token loss)
                loss_frame = F.binary_cross_entropy_with_logits(model.frame_logits(memory_s), torch.from_numpy(rolls).to(device), reduction="none").sum(-1).mean()
                loss = loss + mc.frame_loss_weight * loss_frame
                record["frame_loss"] = float(loss_frame.detach())
            if xr is not None:
                memory_r = model.encode(torch.from_numpy(xr).to(device))
                loss_dom, disc_acc = domain_loss(disc, memory_s, memory_r, scale=lam)
                loss = loss + loss_dom
                record.update(domain_loss=float(loss_dom.detach()), disc_acc=disc_acc, domain_lambda=lam)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        # mean over ranks of the gradients and the loss (a non-finite loss on any rank stops every rank)
        (mean_loss,) = ddp.average_gradients(params, float(loss.detach()))
        if not np.isfinite(mean_loss):
            raise BadInput(f"the loss became {mean_loss} at step {step}: lower --lr or check the data")
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad))  # before the step
        scaler.step(optimizer)
        scaler.update()
        step += 1
        steps_since += 1
        tokens_since += int((targets != PAD).sum()) * ctx.world_size
        now = time.perf_counter()
        record = {"step": step, "loss": mean_loss, "token_loss": float(loss_tok.detach()), "token_acc": tok_acc, **record, "lr": lr, "grad_norm": grad_norm}
        if step % 10 == 0 or step == cfg.steps:
            record["steps_per_s"] = steps_since / max(1e-9, now - t_last)
            record["tokens_per_s"] = tokens_since / max(1e-9, now - t_last)
            t_last, steps_since, tokens_since = now, 0, 0
            if ctx.is_main:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
        emit("step", record)
        is_val = has_val and (step % cfg.val_every == 0 or step == cfg.steps)
        if is_val:
            rec = None
            if ctx.is_main:
                scores = validate_tokens(model, val, device=device, decode=spec.decode_config)
                rec = {"step": step, "val": scores, "best_f1": max(best_f1, scores["note_f1"]), "improved": scores["note_f1"] > best_f1}
            rec = ddp.broadcast(rec)  # the others wait here while rank 0 validates
            improved = rec.pop("improved")
            best_f1 = rec["best_f1"]
            if ctx.is_main:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
            emit("val", rec)
            checkpoint(tag_best=improved)
        elif step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint(tag_best=not has_val and step == cfg.steps)
    if not ddp.on_main(lambda: (ckpt_dir / "best.pt").exists()):
        checkpoint(tag_best=True)
    if ctx.distributed:  # every replica must hold the same weights
        weights = {**model.state_dict(), **{f"discriminator.{k}": v for k, v in disc.state_dict().items()}}
        replicas = ddp.all_gather({"rank": ctx.rank, "weights_sha256": ddp.state_checksum(weights), "data_crc32": data_crc})
        if ctx.is_main:
            with metrics_path.open("a") as f:
                f.write(json.dumps({"step": step, "replicas": replicas}) + "\n")
        if len({r["weights_sha256"] for r in replicas}) != 1:
            raise RuntimeError(f"the {ctx.world_size} training processes ended with different weights")
    emit("done", {"step": step, "best_f1": best_f1})
    return ckpt_dir / "best.pt"
