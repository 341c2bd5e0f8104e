"""Frozen dataclasses that hold every default.

CLI flags override fields with :func:`dataclasses.replace`; the resolved configuration is written
as JSON into every run folder and every checkpoint (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

MIDI_MIN = 21  # A0, the lowest piano key
N_KEYS = 88  # A0 .. C8


def _range_error(obj: Any, name: str, expected: str):
    from .errors import BadInput

    raise BadInput(f"{type(obj).__name__}.{name}: expected {expected}, got {getattr(obj, name)!r}")


def _check_ranges(obj: Any, *, positive=(), non_negative=(), unit=()) -> None:
    """Raise :class:`BadInput` naming the first field outside its range (a number, then the range).

    Numbers that are not numbers are refused here too, so a config built in Python fails as
    clearly as one read from a file."""
    for names, ok, expected in (
        (positive, lambda v: v > 0, "a number > 0"),
        (non_negative, lambda v: v >= 0, "a number >= 0"),
        (unit, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ):
        for name in names:
            value = getattr(obj, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or not ok(value)
            ):
                _range_error(obj, name, expected)


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
    # Input level: scale each recording so its level (amtcli.audio.level.measure_level_db) is this
    # many dBFS before the CQT, which makes the features blind to the recording gain. None: as recorded.
    level_db: float | None = None
    # Variable-Q (librosa's VQT): each bin's bandwidth is alpha * f + gamma (Hz) instead of alpha * f,
    # which shortens the low bins' kernels (finer timing for bass notes, coarser pitch). 0: the CQT.
    gamma: float = 0.0

    def __post_init__(self):
        _check_ranges(
            self,
            positive=("sample_rate", "hop_length", "n_keys", "bins_per_semitone", "filter_scale", "log_offset"),
            non_negative=("gamma",),
        )
        if (
            isinstance(self.fmin_midi, bool)
            or not isinstance(self.fmin_midi, numbers.Integral)
            or not 0 <= self.fmin_midi <= 128 - self.n_keys
        ):
            _range_error(self, "fmin_midi", "keys fmin_midi .. fmin_midi + n_keys - 1 within MIDI 0..127")

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
    """Frames -> notes. Thresholds are probabilities in [0, 1]; each field means what
    :data:`DECODE_HELP` says (the same text is the help of ``amt transcribe``'s flags)."""

    onset_threshold: float = 0.5
    frame_threshold: float = 0.4
    offset_threshold: float = 0.5
    min_note_s: float = 0.05
    use_offset: bool = True

    def __post_init__(self):
        _check_ranges(
            self, unit=("onset_threshold", "frame_threshold", "offset_threshold"), non_negative=("min_note_s",)
        )


# Seconds of features per network chunk in transcription (each with 2 s of context either side).
# 40 s, one chunk at a time: on 2 AVX2 cores this ran a 5-minute file's network about a third faster
# than 20 s in batches of 4, with a third less peak memory (the BiLSTM is compute-bound, so batching
# chunks buys nothing, and longer chunks waste less on margins).
CHUNK_S = 40.0

# The one meaning of each decoding setting: DecodeConfig's fields, amtcli.transcribe()'s keyword
# arguments and amt transcribe's flags (--onset-threshold ...) all use these words.
DECODE_HELP = {
    "onset_threshold": "A note starts where its key's onset probability reaches this value (higher: fewer, surer notes).",
    "frame_threshold": "A started note sounds on while its key's frame probability stays at or above this value.",
    "offset_threshold": "A note ends early where its key's offset probability reaches this value (models with an offset head).",
    "min_note_s": "Notes shorter than this many seconds are dropped.",
}


@dataclass(frozen=True)
class TrainConfig:
    """The training loop. ``precision``: auto (chosen by the hardware, :func:`amtcli.devices.resolve_precision`), fp32, bf16, fp16."""

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


def _type_error(value: Any, hint: Any) -> str | None:
    """Why ``value`` (read from JSON or TOML) does not fit the annotation ``hint``; ``None`` if it fits.

    Checks the plain types configs use (bool, int, float, str, tuples, ``X | None``); anything
    else (nested dataclasses, dicts, ``Any``) is left to the class. Hand-written rather than pydantic:
    five types, and ``amt transcribe`` should not import a validation framework to read one file.
    """
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        reasons = [_type_error(value, h) for h in options if h is not type(None)]
        return None if any(r is None for r in reasons) else reasons[0]
    if hint is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"expected an integer, got {value!r}"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"expected a finite number, got {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    if hint is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            return f"expected a list, got {value!r}"
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif args and len(args) != len(value):
            return f"expected {len(args)} values, got {len(value)}"
        for item, h in zip(value, args):
            reason = _type_error(item, h)
            if reason is not None:
                return reason
        if not args and not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
            return f"expected a list of numbers or strings, got {value!r}"
    return None


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build ``cls`` from a dict, refusing unknown keys (a silent typo is worse than an error) and
    values of the wrong type (``"hop_length": "512"``), with one line naming the field."""
    import typing

    from .errors import BadInput

    if data is not None and not isinstance(data, dict):
        raise BadInput(f"{cls.__name__}: expected a table of fields, got {data!r}")
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadInput(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation this module cannot resolve: skip the type check
        hints = {}
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            value = data[f.name]
            reason = _type_error(value, hints[f.name]) if f.name in hints else None
            if reason is not None:
                raise BadInput(f"{cls.__name__}.{f.name}: {reason}")
            if isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)  # type: ignore[call-arg]


def override(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` that ignores ``None`` values (unset CLI flags)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]


__all__ = [
    "FeatureConfig",
    "DecodeConfig",
    "DECODE_HELP",
    "TrainConfig",
    "to_dict",
    "from_dict",
    "override",
    "MIDI_MIN",
    "N_KEYS",
    "field",
]
