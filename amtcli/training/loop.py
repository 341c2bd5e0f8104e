"""The transcriber training loop: random crops, Adam with warm-up + cosine decay, gradient clipping
before the step, bf16 autocast on CPU / AMP on CUDA, validation note F1, atomic resumable checkpoints.

Phases: the clean phase (``train_config.steps`` steps, or fewer when early stopping with
``patience`` validations without improvement ends it), then ``noise.rounds`` rounds of
``noise.steps`` steps on noisy input, each at a searched level (:mod:`amtcli.training.noise`).
``best.pt`` is the best validation of the last phase that ran (a noise-trained model is the point
of noise rounds). Under DistributedDataParallel (:mod:`amtcli.training.distributed`) each rank
samples its own batches (seed + rank); rank 0 alone validates and writes files.

Run folder layout::

    runs/NAME/config.json          resolved configuration (architecture, model, features, decode, train, noise)
    runs/NAME/metrics.jsonl        one JSON object per logged step / validation / noise search
    runs/NAME/checkpoints/last.pt  newest state (resume from here); step-*.pt the last few; best.pt best val F1
    runs/NAME/features/            feature cache (when asked for)
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import DecodeConfig, FeatureConfig, TrainConfig, from_dict, to_dict
from ..devices import resolve_precision
from ..errors import BadInput
from . import distributed as ddp
from .checkpoints import (
    load_checkpoint,
    open_run,
    prune_checkpoints,
    save_checkpoint,
    step_path,
)
from .data import Example, cache_features, load_examples, sample_batch
from .losses import count_positives, pitch_balance_weights, transcription_loss
from .noise import LossProbe, NoiseConfig, Noiser, round_lr, search_noise_level

Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class RunSpec:
    """Everything that defines a run; written to ``config.json`` and into every checkpoint."""

    architecture: str
    model_config: dict[str, Any]
    feature_config: FeatureConfig
    train_config: TrainConfig
    decode_config: DecodeConfig = field(default_factory=DecodeConfig)
    data: list[str] = field(default_factory=list)
    init_from: str | None = None
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    freeze: tuple = ()  # parameter groups kept fixed (amtcli.training.finetune.FREEZE_GROUPS)
    patience: int = 0  # end the clean phase after this many validations without improvement (0: never)

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "model_config": self.model_config,
            "feature_config": to_dict(self.feature_config),
            "decode_config": to_dict(self.decode_config),
            "train_config": to_dict(self.train_config),
            "data": self.data,
            "init_from": self.init_from,
            "noise": to_dict(self.noise),
            "freeze": list(self.freeze),
            "patience": self.patience,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(
            architecture=d["architecture"],
            model_config=d["model_config"],
            feature_config=from_dict(FeatureConfig, d["feature_config"]),
            train_config=from_dict(TrainConfig, d["train_config"]),
            decode_config=from_dict(DecodeConfig, d.get("decode_config")),
            data=list(d.get("data") or []),
            init_from=d.get("init_from"),
            noise=from_dict(NoiseConfig, d.get("noise")),
            freeze=tuple(d.get("freeze") or ()),
            patience=int(d.get("patience") or 0),
        )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr_min`` at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def validate(model, examples: list[Example], *, device: str, decode: DecodeConfig) -> dict[str, float]:
    """Note P/R/F1 (onset 50 ms) and frame F1, micro-averaged over the validation examples."""
    from ..inference.decoding import decode_frames
    from ..inference.transcribe import posteriors_from_features
    from .calibrate import note_scores

    fc = model.feature_config
    refs, ests = [], []
    modes = {m: m.training for m in model.modules()}  # restored after (frozen parts stay in eval mode)
    model.eval()
    for ex in examples:
        post = posteriors_from_features(model, np.asarray(ex.features), device=device)
        est = decode_frames(post["onset"], post["frame"], offset=post["offset"], velocity=post["velocity"], frame_rate=fc.frame_rate, config=decode, fmin_midi=fc.fmin_midi)
        refs.append(ex.notes)
        ests.append(est)
    for m, mode in modes.items():
        m.training = mode
    return note_scores(refs, ests)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {"numpy": json.dumps(rng.bit_generator.state), "torch": torch.get_rng_state(), "python": json.dumps(random.getstate())}


def _set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def restore_rank_rng(rng: np.random.Generator, state: dict[str, Any], *, ctx: ddp.DistContext, seed: int, step: int) -> np.random.Generator:
    """This rank's random generators from a checkpoint (``rng_ranks`` holds every rank's under DDP).
    Resumed with more processes than the run had, the new ranks continue from fresh generators:
    the run goes on, but not bit-exactly."""
    ranks = state.get("rng_ranks")
    if ctx.distributed and ranks is not None and len(ranks) == ctx.world_size:
        _set_rng_state(rng, ranks[ctx.rank])
    elif ctx.rank == 0:
        _set_rng_state(rng, state["rng"])
    else:
        rng = np.random.default_rng([seed + ctx.rank, step])
    return rng


def train_transcriber(
    spec: RunSpec,
    *,
    out_dir: str | os.PathLike,
    resume: bool = False,
    device: str = "cpu",
    on_event: Callback | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
    cache: bool = False,
    validate_first: bool = False,
) -> Path:
    """Train (or resume) a run in ``out_dir``. Returns the path of the best checkpoint.

    ``initial_state``: weights to start from (fine-tuning); ignored when resuming.
    ``cache``: keep features computed from audio in ``out_dir/features`` (reused on resume).
    ``validate_first``: also validate (and checkpoint) at step 0 of a new run, so the curve shows
    where training starts and early stopping can keep the starting weights.
    Inside a process group (torchrun, ``distributed.launch``) this runs DistributedDataParallel;
    only rank 0 calls ``on_event`` and writes files.
    """
    from ..nets import build_model
    from .finetune import freeze_modules

    ctx = ddp.context()
    emit = (on_event if ctx.is_main else None) or (lambda kind, data: None)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    cfg = spec.train_config
    noise_cfg = spec.noise.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    def prepare() -> tuple[RunSpec, dict[str, Any] | None]:
        state = open_run(out, resume=resume)
        if state is not None:
            saved = RunSpec.from_json(json.loads(state["config"]))
            # the schedule may be extended (--steps, more noise rounds), everything else must match the run
            same_model = json.dumps(saved.model_config, sort_keys=True) == json.dumps(spec.model_config, sort_keys=True)  # tuples vs JSON lists
            if (saved.architecture, saved.feature_config) != (spec.architecture, spec.feature_config) or not same_model:
                raise BadInput(f"{out}: --resume with a different model or features than the run was started with")
            if tuple(saved.freeze) != tuple(spec.freeze):
                raise BadInput(f"{out}: --resume with other frozen parts ({list(spec.freeze)}) than the run ({list(saved.freeze)})")
            noise = noise_cfg if noise_cfg.rounds > 0 else saved.noise
            return RunSpec(saved.architecture, saved.model_config, saved.feature_config, cfg, saved.decode_config, saved.data, saved.init_from, noise, saved.freeze, spec.patience), state
        return spec, None

    spec, state = ddp.on_main(prepare)  # rank 0 reads the run; every rank gets the same state
    noise_cfg = spec.noise
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")

    rng = np.random.default_rng(cfg.seed + ctx.rank)  # each rank draws its own batches
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    fc = spec.feature_config
    model = build_model(spec.architecture, spec.model_config, fc).to(device)
    if ctx.distributed:
        torch.manual_seed(cfg.seed + ctx.rank)  # dropout differs per rank; the weights start equal
    if initial_state is not None and state is None:
        model.load_state_dict(initial_state, strict=True)
    frozen = freeze_modules(model, spec.freeze, architecture=spec.architecture)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best_f1 = 0, -1.0
    phase: dict[str, Any] = {"round": 0, "round_start": None, "levels": [], "stopped_at": None, "bad_vals": 0}
    if state is not None:
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        step, best_f1 = int(state["step"]), float(state["best_f1"])
        phase.update(json.loads(state["phase"]) if "phase" in state else {})
        rng = restore_rank_rng(rng, state, ctx=ctx, seed=cfg.seed, step=step)
        del state
    net = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)

    def train_mode() -> None:
        model.train()
        for m in frozen:
            m.eval()  # frozen BatchNorm keeps its statistics

    emit("status", {"message": "loading training data"})
    cache_dir = out / "features" if cache else None
    if cache_dir is not None and ctx.distributed:  # the ranks fill the cache together
        for split in ("train", "validation"):
            cache_features(spec.data, split=split, feature_config=fc, cache_dir=cache_dir, limit=None if split == "train" else cfg.val_items, shard=(ctx.rank, ctx.world_size))
        ddp.barrier()
    train = load_examples(spec.data, split="train", feature_config=fc, on_progress=lambda i, n: emit("load", {"done": i, "total": n}), cache_dir=cache_dir)
    if not train:
        raise BadInput(f"no training items in {', '.join(spec.data)} (split 'train')")
    val = load_examples(spec.data, split="validation", feature_config=fc, limit=cfg.val_items, cache_dir=cache_dir) if ctx.is_main else []
    has_val = bool(ddp.broadcast(bool(val)))
    key_weights = None
    if cfg.pitch_balanced:
        w = pitch_balance_weights(count_positives(train, feature_config=fc))
        key_weights = {k: torch.from_numpy(v).to(device) for k, v in w.items()}
    crop_frames = max(8, int(round(cfg.crop_s * fc.frame_rate)))
    prec = resolve_precision(cfg.precision, device)
    autocast_dtype = prec.dtype
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    noiser = Noiser(fc, kind=noise_cfg.kind, domain=noise_cfg.domain, seed=cfg.seed) if noise_cfg.rounds > 0 else None
    noise_peak_lr = noise_cfg.lr if noise_cfg.lr is not None else cfg.lr / 10
    if phase["round"] > 0:  # steps planned in all: the bar's total
        planned = phase["round_start"] + (noise_cfg.rounds - phase["round"] + 1) * noise_cfg.steps
    else:
        planned = (step if phase["stopped_at"] is not None else max(step, cfg.steps)) + noise_cfg.rounds * noise_cfg.steps
    emit("start", {"step": step, "steps": planned, "train_items": len(train), "val_items": len(val), "precision": str(prec), "processes": ctx.world_size, "frozen": list(spec.freeze)})

    def checkpoint(tag_best: bool) -> None:
        rng_states = ddp.all_gather(_rng_state(rng))  # every rank's generators, for an exact resume
        if not ctx.is_main:
            return
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "best_f1": best_f1,
            "rng": rng_states[0],
            "phase": json.dumps(phase),
            "config": json.dumps(spec.to_json()),
        }
        if ctx.distributed:
            payload["rng_ranks"] = rng_states
        save_checkpoint(payload, ckpt_dir / "last.pt")
        save_checkpoint(payload, step_path(ckpt_dir, step))
        prune_checkpoints(ckpt_dir, keep=cfg.keep_checkpoints)
        if tag_best:
            save_checkpoint(payload, ckpt_dir / "best.pt")

    def log(record: dict[str, Any]) -> None:
        if ctx.is_main:
            with metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def loss_fn(logits, target):
        return transcription_loss(logits, target, key_weights=key_weights)[0]

    def search_level(round_no: int) -> dict[str, Any]:
        search_rng = np.random.default_rng([cfg.seed, 7919])  # the same batches in every round
        batches = [sample_batch(train, batch_size=cfg.batch_size, crop_frames=crop_frames, feature_config=fc, rng=search_rng, return_crops=True) for _ in range(noise_cfg.search_batches)]
        probe = LossProbe(model, batches, noiser=noiser, loss_fn=loss_fn, examples=train, device=device, seed=cfg.seed + round_no)
        start = phase["levels"][-1]["snr_db"] if phase["levels"] else noise_cfg.start_snr_db
        result = search_noise_level(probe, start_snr_db=start, target=tuple(noise_cfg.target), factor=noise_cfg.factor, max_iters=noise_cfg.max_iters)
        return {**result.to_json(), "round": round_no, "clean_loss": probe.clean, "kind": noise_cfg.kind, "domain": noise_cfg.domain}

    def validation(rnd: int) -> None:
        nonlocal best_f1
        rec = None
        if ctx.is_main:
            scores = validate(model, val, device=device, decode=spec.decode_config)
            improved = scores["note_f1"] > best_f1
            rec = {"step": step, "val": scores, "best_f1": max(best_f1, scores["note_f1"]), "improved": improved}
            if rnd > 0:
                rec["noise_round"] = rnd
        rec = ddp.broadcast(rec)  # the others wait here while rank 0 validates
        improved = rec.pop("improved")
        best_f1 = rec["best_f1"]
        log(rec)
        emit("val", rec)
        if rnd == 0 and spec.patience:
            phase["bad_vals"] = 0 if improved else phase["bad_vals"] + 1
            if phase["bad_vals"] >= spec.patience and step < cfg.steps:
                phase["stopped_at"] = step
                log({"step": step, "early_stop": {"patience": spec.patience, "best_f1": best_f1}})
                emit("early_stop", {"step": step, "patience": spec.patience, "best_f1": best_f1})
        checkpoint(tag_best=improved)

    metrics_path = out / "metrics.jsonl"
    if validate_first and has_val and step == 0:
        validation(0)  # where training starts from (the zero-shot score when fine-tuning)
    data_crc = 0  # what this rank trained on (ranks must differ)
    train_mode()
    t_last, steps_since = time.perf_counter(), 0
    while True:
        rnd = phase["round"]
        if rnd == 0 and (step >= cfg.steps or phase["stopped_at"] is not None):
            if noise_cfg.rounds == 0:
                break
            phase.update(round=1, round_start=step)
            best_f1 = -1.0  # best.pt: the best of the noise-trained model
            emit("noise_round", {"round": 1, "rounds": noise_cfg.rounds, "step": step})
            continue
        if rnd > 0 and step - phase["round_start"] >= noise_cfg.steps:
            if rnd >= noise_cfg.rounds:
                break
            phase.update(round=rnd + 1, round_start=step)
            emit("noise_round", {"round": rnd + 1, "rounds": noise_cfg.rounds, "step": step})
            continue
        if rnd > 0 and len(phase["levels"]) < rnd:
            emit("status", {"message": f"searching the noise level of round {rnd}"})
            found = ddp.on_main(lambda: search_level(rnd))
            phase["levels"].append({"round": rnd, "snr_db": found["snr_db"], "level": found["level"]})
            log({"step": step, "noise_search": found})
            emit("noise_search", found)
            train_mode()

        snr_db = phase["levels"][rnd - 1]["snr_db"] if rnd > 0 else None
        waveform = noiser is not None and rnd > 0 and noiser.domain == "waveform"
        batch = sample_batch(train, batch_size=cfg.batch_size, crop_frames=crop_frames, feature_config=fc, rng=rng, return_crops=waveform)
        x, y = batch[0], batch[1]
        if ctx.distributed:
            data_crc = zlib.crc32(x.tobytes(), data_crc)
        xb = torch.from_numpy(x).to(device)
        if snr_db is not None:
            xb = noiser(xb, snr_db=snr_db, rng=rng, crops=batch[2] if waveform else None, examples=train)
        yb = {k: torch.from_numpy(v).to(device) for k, v in y.items()}
        lr = lr_at(step, cfg) if rnd == 0 else round_lr(step - phase["round_start"], steps=noise_cfg.steps, peak=noise_peak_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits = net(xb)
        loss, parts = transcription_loss(logits, yb, key_weights=key_weights)
        if not ctx.distributed and not torch.isfinite(loss):
            raise BadInput(f"the loss became {float(loss)} at step {step}: lower --lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, cfg.clip_grad))  # before the step
        if ctx.distributed and not scaler.is_enabled() and not math.isfinite(grad_norm):
            # gradients are averaged over ranks, so every rank stops here together
            raise BadInput(f"the gradients became {grad_norm} at step {step}: lower --lr or check the data")
        scaler.step(optimizer)
        scaler.update()
        step += 1
        steps_since += 1
        now = time.perf_counter()
        record = {"step": step, "loss": float(loss.detach()), **{f"loss_{k}": v for k, v in parts.items()}, "lr": lr, "grad_norm": grad_norm}
        if snr_db is not None:
            record["noise_snr_db"] = snr_db
        phase_end = (rnd == 0 and step == cfg.steps) or (rnd > 0 and step - phase["round_start"] == noise_cfg.steps)
        if step % 10 == 0 or phase_end:
            record["steps_per_s"] = steps_since / max(1e-9, now - t_last)
            t_last, steps_since = now, 0
            if ctx.distributed:
                record["loss"] = ddp.mean(record["loss"])  # over ranks
            log(record)
        emit("step", record)
        is_val = has_val and (step % cfg.val_every == 0 or phase_end)
        if is_val:
            validation(rnd)
        elif step % cfg.checkpoint_every == 0 or phase_end:
            checkpoint(tag_best=not has_val and phase_end)
    if not ddp.on_main(lambda: (ckpt_dir / "best.pt").exists()):
        checkpoint(tag_best=True)
    if ctx.distributed:  # every replica must hold the same model: check, and say what each rank saw
        ddp.sync_buffers(model)
        replicas = ddp.all_gather({"rank": ctx.rank, "weights_sha256": ddp.state_checksum(model.state_dict()), "data_crc32": data_crc})
        log({"step": step, "replicas": replicas})
        if len({r["weights_sha256"] for r in replicas}) != 1:
            raise RuntimeError(f"the {ctx.world_size} training processes ended with different weights")
        if not ctx.is_main:
            return ckpt_dir / "best.pt"
    if cfg.calibrate and val:
        from .calibrate import calibrate_decoding, debias_pitch_balanced

        emit("status", {"message": "choosing decoding thresholds on the validation split"})
        best_state = load_checkpoint(ckpt_dir / "best.pt")
        model.load_state_dict(best_state["model"], strict=True)
        if cfg.pitch_balanced and not best_state.get("debiased"):
            # best.pt becomes release-ready: outputs are probabilities again (see debias_pitch_balanced)
            debias_pitch_balanced(model, train)
            best_state.update(model=model.state_dict(), debiased=True)
            save_checkpoint(best_state, ckpt_dir / "best.pt")
        model.eval()
        decode, report = calibrate_decoding(model, val, device=device, base=spec.decode_config)
        spec = RunSpec(spec.architecture, spec.model_config, spec.feature_config, spec.train_config, decode, spec.data, spec.init_from, spec.noise, spec.freeze, spec.patience)
        (out / "config.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        (out / "calibration.json").write_text(json.dumps(report, indent=1) + "\n")
        emit("calibrated", report["chosen"])
    emit("done", {"step": step, "best_f1": best_f1})
    return ckpt_dir / "best.pt"
