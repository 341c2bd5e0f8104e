"""The transcriber's training (U-Net + BiLSTM, frame-level heads): random crops, AdamW with
warm-up + cosine decay, note-F1 validation, noise rounds and early stopping. The run itself (resume,
seeds, precision, checkpoints, metrics, DDP) is the common skeleton, :mod:`amtcli.training.solver`;
this module contributes the batch, the loss, the validation and the phases.

Phases: the clean phase (``train_config.steps`` steps, or fewer when early stopping with
``patience`` validations without improvement ends it), then ``noise.rounds`` rounds of
``noise.steps`` steps on noisy input, each at a searched level (:mod:`amtcli.training.noise`).
``best.pt`` is the best validation of the last phase that ran (a noise-trained model is the point
of noise rounds; there the score is the mean of clean and noisy note F1, see :mod:`.noise`).
Under DistributedDataParallel each rank samples its own batches (seed + rank).

The run folder is described in :mod:`amtcli.training.checkpoints`; a transcriber's run may also
hold ``features/`` (the feature cache, when asked for) and ``calibration.json`` (the decoding
thresholds chosen on the validation split).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DecodeConfig, FeatureConfig, TrainConfig, from_dict, to_dict
from ..datasets.splits import SplitPlan
from ..errors import BadInput
from . import distributed as ddp
from .checkpoints import load_checkpoint, save_checkpoint, write_config
from .data import Example, cache_features, load_examples, sample_batch
from .losses import count_positives, pitch_balance_weights, transcription_loss
from .noise import LossProbe, NoiseConfig, Noiser, round_lr, search_noise_level
from .solver import Schedule, Solver, Task

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
    freeze: tuple = ()  # parameter groups kept fixed (amtcli.nets.FREEZE_GROUPS)
    patience: int = 0  # end the clean phase after this many validations without improvement (0: never)
    split: dict[str, Any] | None = None  # a SplitPlan (as a dict) for NAME:ROOT data sources; None: their own split

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
            "split": self.split,
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
            split=d.get("split"),
        )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr_min`` at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def validate(model, examples: list[Example], *, device: str, decode: DecodeConfig) -> dict[str, float]:
    """Note P/R/F1 (onset 50 ms) and frame F1, micro-averaged over the validation examples."""
    from ..inference.decoding import decode_posteriors
    from ..inference.transcribe import posteriors_from_features
    from .calibrate import note_scores

    fc = model.feature_config
    refs, ests = [], []
    modes = {m: m.training for m in model.modules()}  # restored after (frozen parts stay in eval mode)
    model.eval()
    for ex in examples:
        post = posteriors_from_features(model, np.asarray(ex.features), device=device)
        est = decode_posteriors(post, feature_config=fc, config=decode)
        refs.append(ex.notes)
        ests.append(est)
    for m, mode in modes.items():
        m.training = mode
    return note_scores(refs, ests)


def freeze_modules(model: torch.nn.Module, groups: Sequence[str], *, architecture: str) -> list[torch.nn.Module]:
    """Stop gradients into the modules of ``groups`` (:data:`amtcli.nets.FREEZE_GROUPS`); returns
    those modules (the loop keeps them in eval mode so their BatchNorm statistics stay fixed too)."""
    from ..nets import freeze_groups

    known = freeze_groups(architecture)
    modules: list[torch.nn.Module] = []
    for group in groups:
        if group not in known:
            choices = ", ".join(sorted(known)) or "none"
            raise BadInput(f"--freeze {group}: not a part of {architecture} that can be frozen (choose from {choices})")
        for name in known[group]:
            module = getattr(model, name)
            for p in module.parameters():
                p.requires_grad_(False)
            modules.append(module)
    return modules


def _spec_from_checkpoint(saved: dict[str, Any], *, where: Path) -> RunSpec:
    try:
        return RunSpec.from_json(saved)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{where}: the checkpoint's run config is damaged ({type(exc).__name__}: {exc})") from None


class TranscriberTask(Task):
    """The U-Net + BiLSTM's part of a run: crops, the pitch-(un)balanced loss, note-F1 validation,
    noise rounds and early stopping."""

    def __init__(self, spec: RunSpec, *, initial_state: dict[str, torch.Tensor] | None = None, cache: bool = False):
        self.spec = spec
        self.architecture = spec.architecture
        self.initial_state = initial_state
        self.cache = cache
        self.noise = spec.noise.check()
        self.phase: dict[str, Any] = {"round": 0, "round_start": None, "levels": [], "stopped_at": None, "bad_vals": 0}

    # -- config
    def schedule(self) -> Schedule:
        return Schedule.of(self.spec.train_config)

    def to_json(self) -> dict[str, Any]:
        return self.spec.to_json()

    def resume_from(self, saved: dict[str, Any], *, where: Path) -> None:
        spec = self.spec
        self.check_same_model(saved, where=where, model_config=spec.model_config, feature_config=spec.feature_config)
        old = _spec_from_checkpoint(saved, where=where)
        if tuple(old.freeze) != tuple(spec.freeze):
            raise BadInput(
                f"{where.parent.parent}: --resume with other frozen parts ({list(spec.freeze)}) than the run ({list(old.freeze)})"
            )
        # the schedule may change (--steps, more noise rounds); everything else is the run's
        noise = self.noise if self.noise.rounds > 0 else old.noise
        self.spec = RunSpec(
            old.architecture,
            old.model_config,
            old.feature_config,
            spec.train_config,
            old.decode_config,
            old.data,
            old.init_from,
            noise,
            old.freeze,
            spec.patience,
            old.split,
        )
        self.noise = noise

    # -- modules and data
    def build(self, solver: Solver) -> dict[str, torch.nn.Module]:
        from ..nets import build_model

        spec = self.spec
        model = build_model(spec.architecture, spec.model_config, spec.feature_config).to(solver.device)
        if self.initial_state is not None and not self.resuming:
            model.load_state_dict(self.initial_state, strict=True)
        self.frozen = freeze_modules(model, spec.freeze, architecture=spec.architecture)
        self.device = solver.device
        return {"model": model}

    def optimizer(self) -> torch.optim.Optimizer:
        c = self.spec.train_config
        return torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def load_data(self, solver: Solver) -> dict[str, Any]:
        spec, cfg, fc, ctx = self.spec, self.spec.train_config, self.spec.feature_config, solver.ctx
        cache_dir = solver.out / "features" if self.cache else None
        plan = SplitPlan.from_dict(spec.split) if spec.split else None
        if cache_dir is not None and ctx.distributed:  # the ranks fill the cache together
            for split in ("train", "validation"):
                limit = None if split == "train" else cfg.val_items
                cache_features(
                    spec.data,
                    split=split,
                    feature_config=fc,
                    cache_dir=cache_dir,
                    limit=limit,
                    shard=(ctx.rank, ctx.world_size),
                    split_plan=plan,
                )
            ddp.barrier()

        def on_progress(done: int, total: int) -> None:
            solver.emit("load", {"done": done, "total": total})

        self.train = load_examples(
            spec.data,
            split="train",
            feature_config=fc,
            on_progress=on_progress,
            cache_dir=cache_dir,
            split_plan=plan,
        )
        if not self.train:
            raise BadInput(f"no training items in {', '.join(spec.data)} (split 'train')")
        self.val = (
            load_examples(
                spec.data,
                split="validation",
                feature_config=fc,
                limit=cfg.val_items,
                cache_dir=cache_dir,
                split_plan=plan,
            )
            if ctx.is_main
            else []
        )
        self.key_weights = None
        self.prior = None  # logit offsets that undo the pitch-balanced prior (validation, export)
        if cfg.pitch_balanced:
            from .calibrate import prior_offsets

            w = pitch_balance_weights(count_positives(self.train, feature_config=fc))
            self.key_weights = {k: torch.from_numpy(v).to(solver.device) for k, v in w.items()}
            self.prior = prior_offsets(w)
            if self.initial_state is not None and not self.resuming:
                # released weights give probabilities (the prior removed, or never trained pitch-balanced):
                # start from their pitch-balanced equivalent, the prior added, so that the model validates
                # as it started (with the prior removed again) instead of under-predicting every rare key
                from .calibrate import remove_prior

                remove_prior(self.modules["model"], {h: -v for h, v in self.prior.items()})
        self.crop_frames = max(8, int(round(cfg.crop_s * fc.frame_rate)))
        self.noiser = (
            Noiser(fc, kind=self.noise.kind, domain=self.noise.domain, seed=cfg.seed) if self.noise.rounds > 0 else None
        )
        self.noise_peak_lr = self.noise.lr if self.noise.lr is not None else cfg.lr / 10
        return {"train_items": len(self.train), "val_items": len(self.val)}

    def has_validation(self) -> bool:
        return bool(self.val)

    def start_info(self) -> dict[str, Any]:
        return {"frozen": list(self.spec.freeze)}

    def train_mode(self) -> None:
        self.modules["model"].train()
        for m in self.frozen:
            m.eval()  # frozen BatchNorm keeps its statistics

    # -- phases
    def _phase_steps(self) -> int:
        return self.spec.train_config.steps

    def next_phase(self, solver: Solver) -> bool:
        phase, noise, step = self.phase, self.noise, solver.step
        while True:
            rnd = phase["round"]
            if rnd == 0 and (step >= self._phase_steps() or phase["stopped_at"] is not None):
                if noise.rounds == 0:
                    return False
                phase.update(round=1, round_start=step)
                solver.best = -1.0  # best.pt: the best of the noise-trained model
                solver.emit("noise_round", {"round": 1, "rounds": noise.rounds, "step": step})
                continue
            if rnd > 0 and step - phase["round_start"] >= noise.steps:
                if rnd >= noise.rounds:
                    return False
                phase.update(round=rnd + 1, round_start=step)
                solver.emit("noise_round", {"round": rnd + 1, "rounds": noise.rounds, "step": step})
                continue
            if rnd > 0 and len(phase["levels"]) < rnd:
                solver.emit("status", {"message": f"searching the noise level of round {rnd}"})
                found = ddp.on_main(lambda rnd=rnd: self._search_level(rnd))
                phase["levels"].append({"round": rnd, "snr_db": found["snr_db"], "level": found["level"]})
                solver.log({"step": step, "noise_search": found})
                solver.emit("noise_search", found)
                self.train_mode()
            return True

    def phase_end(self, step: int) -> bool:
        rnd = self.phase["round"]
        return (rnd == 0 and step == self._phase_steps()) or (
            rnd > 0 and step - self.phase["round_start"] == self.noise.steps
        )

    def planned_steps(self, step: int) -> int:
        phase, noise = self.phase, self.noise
        if phase["round"] > 0:
            return phase["round_start"] + (noise.rounds - phase["round"] + 1) * noise.steps
        return (
            step if phase["stopped_at"] is not None else max(step, self._phase_steps())
        ) + noise.rounds * noise.steps

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"phase": json.dumps(self.phase)}
        if self.prior is not None:  # so that any checkpoint exports as probabilities (amt models export)
            state["prior_offsets"] = {h: torch.from_numpy(v) for h, v in self.prior.items()}
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "phase" in state:
            self.phase.update(json.loads(state["phase"]))

    def validation_extra(self) -> dict[str, Any]:
        return {"noise_round": self.phase["round"]} if self.phase["round"] > 0 else {}

    def after_validation(self, solver: Solver, improved: bool) -> None:
        patience, phase, step = self.spec.patience, self.phase, solver.step
        if phase["round"] == 0 and patience:
            phase["bad_vals"] = 0 if improved else phase["bad_vals"] + 1
            if phase["bad_vals"] >= patience and step < self._phase_steps():
                phase["stopped_at"] = step
                solver.log({"step": step, "early_stop": {"patience": patience, "best_f1": solver.best}})
                solver.emit("early_stop", {"step": step, "patience": patience, "best_f1": solver.best})

    def _search_level(self, round_no: int) -> dict[str, Any]:
        cfg, noise, fc = self.spec.train_config, self.noise, self.spec.feature_config
        search_rng = np.random.default_rng([cfg.seed, 7919])  # the same batches in every round
        batches = [
            sample_batch(
                self.train,
                batch_size=cfg.batch_size,
                crop_frames=self.crop_frames,
                feature_config=fc,
                rng=search_rng,
                return_crops=True,
            )
            for _ in range(noise.search_batches)
        ]

        def loss_fn(logits, target):
            return transcription_loss(logits, target, key_weights=self.key_weights)[0]

        probe = LossProbe(
            self.modules["model"],
            batches,
            noiser=self.noiser,
            loss_fn=loss_fn,
            examples=self.train,
            device=self.device,
            seed=cfg.seed + round_no,
        )
        start = self.phase["levels"][-1]["snr_db"] if self.phase["levels"] else noise.start_snr_db
        result = search_noise_level(
            probe, start_snr_db=start, target=tuple(noise.target), factor=noise.factor, max_iters=noise.max_iters
        )
        return {
            **result.to_json(),
            "round": round_no,
            "clean_loss": probe.clean,
            "kind": noise.kind,
            "domain": noise.domain,
        }

    # -- one step
    def lr(self, step: int) -> float:
        if self.phase["round"] == 0:
            return lr_at(step, self.spec.train_config)
        return round_lr(step - self.phase["round_start"], steps=self.noise.steps, peak=self.noise_peak_lr)

    def batch(self, rng: np.random.Generator, step: int):
        cfg, fc, rnd = self.spec.train_config, self.spec.feature_config, self.phase["round"]
        snr_db = self.phase["levels"][rnd - 1]["snr_db"] if rnd > 0 else None
        waveform = self.noiser is not None and rnd > 0 and self.noiser.domain == "waveform"
        batch = sample_batch(
            self.train,
            batch_size=cfg.batch_size,
            crop_frames=self.crop_frames,
            feature_config=fc,
            rng=rng,
            return_crops=waveform,
        )
        x, y = batch[0], batch[1]
        xb = torch.from_numpy(x).to(self.device)
        if snr_db is not None:
            xb = self.noiser(xb, snr_db=snr_db, rng=rng, crops=batch[2] if waveform else None, examples=self.train)
        yb = {k: torch.from_numpy(v).to(self.device) for k, v in y.items()}
        return x, xb, yb, snr_db

    def batch_bytes(self, batch) -> bytes:
        return batch[0].tobytes()

    def loss(self, batch, step: int):
        _, xb, yb, snr_db = batch
        with self.autocast():
            logits = self.net(xb)
        loss, parts = transcription_loss(logits, yb, key_weights=self.key_weights)
        record = {f"loss_{k}": v for k, v in parts.items()}
        if snr_db is not None:
            record["noise_snr_db"] = snr_db
        return loss, record

    def validate(self) -> dict[str, float]:
        """Note F1 of the model as it would be released: with a pitch-balanced loss, the prior is removed
        first (the raw outputs over-predict every rare key, and best.pt would be chosen on that)."""
        model = self.modules["model"]
        if self.prior is not None:
            from .calibrate import debiased_copy

            model = debiased_copy(model, self.prior)
        scores = validate(model, self.val, device=self.device, decode=self.spec.decode_config)
        if self.score == "robust_note_f1":
            noisy = validate(model, self._noisy_validation(), device=self.device, decode=self.spec.decode_config)
            scores["noisy_note_f1"] = noisy["note_f1"]
            scores["noisy_snr_db"] = float(self.noise.val_snr_db)
            scores["robust_note_f1"] = 0.5 * (scores["note_f1"] + noisy["note_f1"])
        return scores

    @property
    def score(self) -> str:  # type: ignore[override]
        """The validation score best.pt keeps: clean note F1, and during noise rounds the mean of clean and
        noisy note F1 (:mod:`amtcli.training.noise`, "Choosing the checkpoint")."""
        return "robust_note_f1" if self.phase["round"] > 0 and self.val else "note_f1"

    def _noisy_validation(self) -> list[Example]:
        """The validation examples under noise at ``noise.val_snr_db``: one fixed draw, made once."""
        if getattr(self, "_noisy_val", None) is None:
            fc = self.spec.feature_config
            noiser = Noiser(fc, kind=self.noise.kind, domain="feature", seed=self.spec.train_config.seed + 1)
            rng = np.random.default_rng([self.spec.train_config.seed, 7])
            self._noisy_val = [
                replace(
                    ex,
                    features=noiser(
                        torch.from_numpy(np.asarray(ex.features, np.float32))[None],
                        snr_db=self.noise.val_snr_db,
                        rng=rng,
                    )[0].numpy(),
                )
                for ex in self.val
            ]
        return self._noisy_val

    # -- the end
    def finish(self, solver: Solver) -> None:
        """Remove the pitch-balanced prior from best.pt and choose decoding thresholds on the validation split."""
        cfg, spec, model = self.spec.train_config, self.spec, self.modules["model"]
        if not (cfg.calibrate and self.val):
            return
        from .calibrate import calibrate_decoding, remove_prior

        solver.emit("status", {"message": "choosing decoding thresholds on the validation split"})
        best_path = solver.ckpt_dir / "best.pt"
        best_state = load_checkpoint(best_path)
        model.load_state_dict(best_state["model"], strict=True)
        if cfg.pitch_balanced and not best_state.get("debiased"):
            # best.pt becomes release-ready: outputs are probabilities again (see debias_pitch_balanced)
            remove_prior(model, self.prior)
            best_state.update(model=model.state_dict(), debiased=True)
            save_checkpoint(best_state, best_path)
        model.eval()
        # a noise-trained model: thresholds that suit the clean and the noisy validation alike
        also = [self._noisy_validation()] if self.score == "robust_note_f1" else []
        decode, report = calibrate_decoding(model, self.val, device=self.device, base=spec.decode_config, also=also)
        self.spec = replace(spec, decode_config=decode)
        write_config(solver.out, self.spec.to_json())
        (solver.out / "calibration.json").write_text(json.dumps(report, indent=1) + "\n")
        solver.emit("calibrated", report["chosen"])


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
    Inside a process group (torchrun, :mod:`amtcli.training.launch`) this runs DistributedDataParallel;
    only rank 0 calls ``on_event`` and writes files.
    """
    task = TranscriberTask(spec, initial_state=initial_state, cache=cache)
    return Solver(
        task, out_dir=out_dir, resume=resume, device=device, on_event=on_event, validate_first=validate_first
    ).run()
