"""Adversarial noise rounds (AT4rAMT): after the clean phase, rounds of training on noisy input, each
at a noise level searched so that the noise costs the current model a set share of its loss.

Before round r the level is searched on a fixed sample of training batches (the same crops and the
same noise draw at every level, so the response is a smooth function of the level)::

    delta(level) = (loss(noisy) - loss(clean)) / loss(clean)

The noise amplitude is multiplied by ``factor`` while ``delta`` is below the target band and divided
while above it; once the search has crossed the band the factor shrinks to its square root (a
bisection in log amplitude). It stops inside the band or after ``max_iters`` evaluations; then it
keeps the level whose ``delta`` came closest to the band and says it did not converge.

**Levels.** A level is an SNR in dB measured in the CQT domain over the model's 88-key band:
the excerpt's CQT power ``mean |S|^2`` over the noise's expected CQT power ``E mean |N|^2``. The
expected noise power per unit of waveform RMS comes from the CQT of a long noise recording of the
chosen colour (the *noise bank*), so both domains below put the same noise power into the
features at the same level.

**Choosing the checkpoint.** Validation is clean, and the rounds trade a little clean F1 for a lot
of noisy F1, so clean F1 alone would keep the least noise-trained checkpoint of the first round.
During the rounds ``best.pt`` keeps the best *robust* score instead: the mean of the clean note F1
and the note F1 with the validation features under noise of the run's colour at ``val_snr_db``
(a fixed level, so that checkpoints of different rounds compare; feature domain, one fixed draw).
The decoding thresholds chosen at the end are scored the same way, on both sets.

**Domains.** Training reads cached log-CQT features ``log(|S| + offset)``.

- ``feature`` (default): ``|S + N|`` is formed from the features directly. ``|N|`` is a crop of the
  noise bank (the real CQT magnitudes of real noise: the right spectrum, the right spread and the
  right smoothness in time and frequency) and its phase relative to the signal is uniform and
  independent, as it is for noise: ``|S + N|^2 = |S|^2 + |N|^2 + 2 |S| |N| cos(theta)``. For each
  coefficient this has exactly the distribution of the CQT of the noisy waveform; only the
  correlation of theta between neighbouring coefficients is lost. It costs a few element-wise
  operations per batch, needs no audio, and runs on the training device.
- ``waveform``: noise is added to the audio of each crop and the CQT is recomputed (exact, but it
  reads the audio and runs a CQT per excerpt on the CPU: several times slower than a training step
  of a small model on CPU). Meant for checking the feature-domain shortcut, and for GPUs with
  spare CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..audio.noise import NOISE_KINDS, make_noise
from ..config import FeatureConfig
from ..errors import BadInput

NOISE_DOMAINS = ("feature", "waveform")


@dataclass(frozen=True)
class NoiseConfig:
    """Noise rounds after the clean phase. ``rounds=0``: none."""

    rounds: int = 0
    steps: int = 1000  # optimizer steps per round
    target: tuple = (0.1, 0.3)  # band of delta = (loss(noisy) - loss(clean)) / loss(clean)
    kind: str = "white"
    domain: str = "feature"
    start_snr_db: float = 30.0  # where the first search starts; later rounds start at the previous level
    factor: float = 2.0  # noise amplitude factor per search move (2: 6 dB)
    max_iters: int = 12
    search_batches: int = 4
    lr: float | None = None  # peak learning rate of each round (cosine to a tenth); default: train lr / 10
    val_snr_db: float = 0.0  # during the rounds best.pt keeps the best mean of clean F1 and F1 at this level

    def check(self) -> "NoiseConfig":
        if self.rounds < 0 or self.steps < 1:
            raise BadInput("--noise-rounds must be >= 0 and --noise-steps >= 1")
        lo, hi = self.target
        if not 0 < lo < hi:
            raise BadInput(f"--noise-target {lo}:{hi}: need 0 < low < high")
        if self.kind not in NOISE_KINDS:
            raise BadInput(f"unknown --noise-kind {self.kind!r} (choose from {', '.join(NOISE_KINDS)})")
        if self.domain not in NOISE_DOMAINS:
            raise BadInput(f"unknown --noise-domain {self.domain!r} (choose from {', '.join(NOISE_DOMAINS)})")
        if self.factor <= 1 or self.max_iters < 1 or self.search_batches < 1:
            raise BadInput("noise search: factor must be > 1, max_iters and search_batches >= 1")
        return self


def parse_target(text: str) -> tuple[float, float]:
    """``"0.1:0.3"`` -> ``(0.1, 0.3)``."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise BadInput(f"--noise-target {text!r}: expected LOW:HIGH, e.g. 0.1:0.3") from None
    if not 0 < lo < hi:
        raise BadInput(f"--noise-target {text!r}: need 0 < LOW < HIGH")
    return lo, hi


def round_lr(k: int, *, steps: int, peak: float) -> float:
    """Learning rate at step ``k`` of a round: cosine from ``peak`` to ``peak / 10`` (no warm-up)."""
    progress = min(1.0, k / max(1, steps))
    low = peak / 10
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    snr_db: float
    delta: float
    converged: bool
    history: list[tuple[float, float]] = field(default_factory=list)  # (snr_db, delta) per evaluation

    @property
    def level(self) -> float:
        """Noise-to-signal amplitude ratio in the CQT band."""
        return 10.0 ** (-self.snr_db / 20.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "snr_db": self.snr_db,
            "level": self.level,
            "delta": self.delta,
            "converged": self.converged,
            "iterations": len(self.history),
            "history": [[s, d] for s, d in self.history],
        }


def search_noise_level(
    delta_fn: Callable[[float], float],
    *,
    start_snr_db: float,
    target: tuple[float, float],
    factor: float = 2.0,
    max_iters: int = 12,
    snr_range_db: tuple[float, float] = (-40.0, 80.0),
) -> SearchResult:
    """Find an SNR (dB) whose ``delta_fn(snr_db)`` lies in ``target``; see the module docstring.

    ``delta_fn`` should grow as the SNR falls (more noise). Multiplying the noise amplitude by
    ``factor`` lowers the SNR by ``20 log10(factor)`` dB. The SNR stays in ``snr_range_db``.
    """
    lo, hi = target
    step_db = 20.0 * math.log10(factor)
    snr, last_dir = float(start_snr_db), 0
    history: list[tuple[float, float]] = []
    for _ in range(max_iters):
        d = float(delta_fn(snr))
        history.append((snr, d))
        if lo <= d <= hi:
            return SearchResult(snr, d, True, history)
        direction = 1 if d < lo else -1  # 1: more noise
        if last_dir and direction != last_dir:
            step_db /= 2.0  # crossed the band: bisect (sqrt of the amplitude factor)
        last_dir = direction
        nxt = min(max(snr - direction * step_db, snr_range_db[0]), snr_range_db[1])
        if nxt == snr:  # at the end of the range and still outside the band
            break
        snr = nxt

    def distance(d: float) -> float:
        return lo - d if d < lo else d - hi

    best = min(reversed(history), key=lambda h: distance(h[1]))  # ties: the furthest the search got
    return SearchResult(best[0], best[1], False, history)


# ------------------------------------------------------------------------------------- noise


_BANKS: dict[tuple, np.ndarray] = {}


def noise_bank(feature_config: FeatureConfig, *, kind: str, seconds: float = 20.0, seed: int = 0) -> np.ndarray:
    """CQT magnitudes ``(n_frames, n_bins)`` of unit-RMS noise of colour ``kind`` (edges trimmed)."""
    from ..audio.features import compute_features, get_front_end

    key = (feature_config, kind, seconds, seed)
    if key not in _BANKS:
        fc = feature_config
        audio = make_noise(
            int(seconds * fc.sample_rate), kind=kind, rng=np.random.default_rng([seed, NOISE_KINDS.index(kind)])
        )
        feats = compute_features(audio, config=fc)
        ctx = get_front_end(fc).kernel_length // (2 * fc.hop_length) + 2
        mag = np.maximum(np.exp(feats[ctx:-ctx].astype(np.float64)) - fc.log_offset, 0.0)
        _BANKS[key] = mag.astype(np.float32)
    return _BANKS[key]


class Noiser:
    """Adds noise at a CQT-band SNR to a batch of log-CQT features ``(B, T, n_bins)``."""

    def __init__(self, feature_config: FeatureConfig, *, kind: str = "white", domain: str = "feature", seed: int = 0):
        if domain not in NOISE_DOMAINS:
            raise BadInput(f"unknown noise domain {domain!r} (choose from {', '.join(NOISE_DOMAINS)})")
        self.fc = feature_config
        self.kind = kind
        self.domain = domain
        self.bank = noise_bank(feature_config, kind=kind, seed=seed)
        self.unit_power = float(np.mean(self.bank.astype(np.float64) ** 2))  # E mean|N|^2 per unit RMS
        self._bank_t: torch.Tensor | None = None

    def noise_rms(self, x: torch.Tensor, snr_db: float) -> torch.Tensor:
        """Waveform RMS of the noise for each excerpt of ``x`` ``(B, T, F)`` at ``snr_db``: ``(B,)``."""
        mag = (torch.exp(x.float()) - self.fc.log_offset).clamp_min(0)
        power = mag.pow(2).mean(dim=(1, 2))
        return torch.sqrt(power / (self.unit_power * 10.0 ** (snr_db / 10.0)))

    def __call__(
        self,
        x: torch.Tensor,
        *,
        snr_db: float,
        rng: np.random.Generator,
        crops: Sequence[tuple[int, int]] | None = None,
        examples: Sequence[Any] | None = None,
    ) -> torch.Tensor:
        if self.domain == "waveform":
            if crops is None or examples is None:
                raise BadInput("waveform-domain noise needs the crops and the examples they came from")
            return self._waveform(x, snr_db=snr_db, rng=rng, crops=crops, examples=examples)
        return self._feature(x, snr_db=snr_db, rng=rng)

    def _feature(self, x: torch.Tensor, *, snr_db: float, rng: np.random.Generator) -> torch.Tensor:
        b, t, f = x.shape
        if self._bank_t is None or self._bank_t.device != x.device:
            self._bank_t = torch.from_numpy(self.bank).to(x.device)
        n_bank = len(self.bank)
        starts = rng.integers(0, n_bank, size=b)
        index = torch.from_numpy((starts[:, None] + np.arange(t)[None, :]) % n_bank).to(x.device)  # wraps around
        theta = torch.from_numpy(rng.uniform(0.0, 2.0 * np.pi, size=(b, t, f)).astype(np.float32)).to(x.device)
        s = (torch.exp(x.float()) - self.fc.log_offset).clamp_min(0)
        n = self._bank_t[index] * self.noise_rms(x, snr_db)[:, None, None]
        mag = torch.sqrt((s * s + n * n + 2 * s * n * torch.cos(theta)).clamp_min(0))
        return torch.log(mag + self.fc.log_offset).to(x.dtype)

    def _waveform(self, x: torch.Tensor, *, snr_db: float, rng: np.random.Generator, crops, examples) -> torch.Tensor:
        from ..audio.features import compute_features, get_front_end
        from ..audio.io import load_audio

        fc = self.fc
        hop = fc.hop_length
        b, t, _ = x.shape
        ctx = get_front_end(fc).kernel_length // (2 * hop) + 2
        rms = self.noise_rms(x, snr_db).cpu().numpy()
        out = np.empty((b, t, fc.n_bins), np.float32)
        for row, (idx, start) in enumerate(crops):
            audio_path = getattr(examples[idx], "audio", None)
            if audio_path is None or not Path(audio_path).is_file():
                raise BadInput(f"{examples[idx].id}: waveform-domain noise needs the audio file")
            # a buffer of (t + 2 ctx) frames of audio, zero outside the file (as the front end pads)
            buf = np.zeros((t + 2 * ctx) * hop, np.float32)
            first = (start - ctx) * hop
            a0 = max(0, first)
            seg = load_audio(
                audio_path,
                sample_rate=fc.sample_rate,
                offset_s=a0 / fc.sample_rate,
                duration_s=(len(buf) - (a0 - first)) / fc.sample_rate,
            )
            buf[a0 - first : a0 - first + len(seg)] = seg[: len(buf) - (a0 - first)]
            buf += rms[row] * make_noise(len(buf), kind=self.kind, rng=rng)
            out[row] = compute_features(buf, config=fc)[ctx : ctx + t]
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


# ------------------------------------------------------------------------------ loss response


class LossProbe:
    """``delta(snr_db)`` of a model on fixed batches: the same crops and noise draw at every level.

    ``batches``: ``[(x, y, crops), ...]`` as from ``sample_batch(..., return_crops=True)``.
    The model runs in eval mode without gradients; its training flags are restored afterwards.
    """

    def __init__(self, model, batches, *, noiser: Noiser, loss_fn, examples=None, device: str = "cpu", seed: int = 0):
        self.model = model
        self.batches = batches
        self.noiser = noiser
        self.loss_fn = loss_fn
        self.examples = examples
        self.device = device
        self.seed = seed
        self.clean = self._loss(None)

    @torch.no_grad()
    def _loss(self, snr_db: float | None) -> float:
        modes = {m: m.training for m in self.model.modules()}
        self.model.eval()
        rng = np.random.default_rng(self.seed)
        total = 0.0
        try:
            for x, y, crops in self.batches:
                xb = torch.from_numpy(x).to(self.device)
                if snr_db is not None:
                    xb = self.noiser(xb, snr_db=snr_db, rng=rng, crops=crops, examples=self.examples)
                yb = {k: torch.from_numpy(v).to(self.device) for k, v in y.items()}
                total += float(self.loss_fn(self.model(xb), yb))
        finally:
            for m, mode in modes.items():
                m.training = mode
        return total / len(self.batches)

    def __call__(self, snr_db: float) -> float:
        return (self._loss(snr_db) - self.clean) / max(self.clean, 1e-12)
