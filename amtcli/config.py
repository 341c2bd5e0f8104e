"""Frozen dataclasses that hold every default.

CLI flags override fields with :func:`dataclasses.replace`; the resolved configuration is written
as JSON into every run folder and every checkpoint (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

MIDI_MIN = 21  # A0, the lowest piano key
N_KEYS = 88  # A0 .. C8


@dataclass(frozen=True)
class FeatureConfig:
    """The CQT front end. It travels with the weights and is checked when a model is loaded."""

    sample_rate: int = 16000
    hop_length: int = 512
    fmin_midi: int = MIDI_MIN
    n_keys: int = N_KEYS
    bins_per_semitone: int = 2
    filter_scale: float = 0.5
    log_offset: float = 1e-3  # log compression: log(magnitude + log_offset)
    kind: str = "cqt1992v2"

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def n_bins(self) -> int:
        return self.n_keys * self.bins_per_semitone

    @property
    def bins_per_octave(self) -> int:
        return 12 * self.bins_per_semitone

    @property
    def fmin_hz(self) -> float:
        # The lowest bin is centred below the key so that the key sits in the middle of its bins.
        centre = self.fmin_midi - (self.bins_per_semitone - 1) / (2 * self.bins_per_semitone)
        return 440.0 * 2.0 ** ((centre - 69) / 12)


@dataclass(frozen=True)
class DecodeConfig:
    """Frames -> notes. Thresholds are probabilities in [0, 1]."""

    onset_threshold: float = 0.5
    frame_threshold: float = 0.4
    offset_threshold: float = 0.5
    min_note_s: float = 0.05
    use_offset: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """The training loop. ``precision``: auto (bf16 autocast on CPU, fp16 AMP on CUDA), fp32, bf16."""

    steps: int = 20000
    batch_size: int = 8
    crop_s: float = 10.0
    lr: float = 1e-3
    lr_min: float = 5e-5
    warmup_steps: int = 200
    weight_decay: float = 0.0
    clip_grad: float = 3.0
    pitch_balanced: bool = False
    precision: str = "auto"
    val_every: int = 500
    val_items: int = 32
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = 0
    threads: int = 0  # 0: torch's default
    calibrate: bool = True  # choose decoding thresholds on the validation split at the end


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (nested dataclasses included)."""
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build ``cls`` from a dict, refusing unknown keys (a silent typo is worse than an error)."""
    from .errors import BadInput

    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadInput(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)  # type: ignore[call-arg]


def override(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` that ignores ``None`` values (unset CLI flags)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]


__all__ = ["FeatureConfig", "DecodeConfig", "TrainConfig", "to_dict", "from_dict", "override", "MIDI_MIN", "N_KEYS", "field"]
