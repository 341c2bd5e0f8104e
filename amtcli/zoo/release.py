"""Release folders: ``config.json`` + ``model.safetensors`` + ``README.md`` (model card), and for
U-Net models ``model.onnx``.

``config.json`` holds the format version, architecture name, model and feature configs, decode
defaults and the amtcli version. Weights are inference-only safetensors, loaded with strict keys.
``model.onnx`` is the same network for onnxruntime (features ``(batch, frames, n_bins)`` -> the
probabilities of each head ``(batch, frames, 88)``), written from the safetensors by
:func:`amtcli.zoo.export.write_onnx`; its metadata names the sha256 of the ``model.safetensors`` it
was made from (``ONNX_WEIGHTS_KEY``), so a copy left beside other weights is refused, not used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import DecodeConfig, FeatureConfig, from_dict, to_dict
from ..errors import BadInput, ConfigMismatch, ModelNotFound

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
ONNX_NAME = "model.onnx"
ONNX_WEIGHTS_KEY = "amtcli.weights_sha256"  # model.onnx metadata: sha256 of the model.safetensors it came from
ONNX_HEADS = ("onset", "frame", "offset", "velocity")  # model.onnx outputs, in this order


@dataclass
class ReleaseConfig:
    architecture: str
    model_config: dict[str, Any]
    feature_config: FeatureConfig
    decode_config: DecodeConfig = field(default_factory=DecodeConfig)
    amtcli_version: str = __version__
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "model_config": self.model_config,
            "feature_config": to_dict(self.feature_config),
            "decode_config": to_dict(self.decode_config),
            "amtcli_version": self.amtcli_version,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: str = "config.json") -> "ReleaseConfig":
        """Every field is checked: a wrong type or an impossible value (``hop_length: 0``) is a
        :class:`ConfigMismatch` naming ``where`` and the field."""
        if not isinstance(data, dict):
            raise ConfigMismatch(f"{where}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format_version")
        if fmt != FORMAT_VERSION:
            raise ConfigMismatch(f"{where}: release format {fmt!r} is not supported (this amt reads {FORMAT_VERSION})")
        if "architecture" not in data:
            raise ConfigMismatch(f"{where}: missing field 'architecture'")
        for name, kind in (
            ("architecture", str),
            ("model_config", dict),
            ("feature_config", dict),
            ("decode_config", dict),
            ("extra", dict),
            ("amtcli_version", str),
        ):
            value = data.get(name)
            if value is not None and not isinstance(value, kind):
                expected = "a string" if kind is str else "an object"
                raise ConfigMismatch(f"{where}: field {name!r} must be {expected}, got {value!r}")
        try:
            return cls(
                architecture=data["architecture"],
                model_config=dict(data.get("model_config") or {}),
                feature_config=from_dict(FeatureConfig, data.get("feature_config")),
                decode_config=from_dict(DecodeConfig, data.get("decode_config")),
                amtcli_version=data.get("amtcli_version", "?"),
                format_version=fmt,
                extra=dict(data.get("extra") or {}),
            )
        except BadInput as exc:
            raise ConfigMismatch(f"{where}: {exc}") from None


def read_release_config(folder: str | os.PathLike) -> ReleaseConfig:
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ModelNotFound(f"{folder}: not a release folder (no {CONFIG_NAME})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigMismatch(f"{path}: not valid JSON ({exc})") from None
    return ReleaseConfig.from_json(data, where=str(path))


def save_release(
    model,
    folder: str | os.PathLike,
    *,
    decode_config: DecodeConfig | None = None,
    card: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (an amt architecture) as a release folder. Returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = ReleaseConfig(
        architecture=model.arch,
        model_config=to_dict(model.config),
        feature_config=model.feature_config,
        decode_config=decode_config or DecodeConfig(),
        extra=extra or {},
    )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / f".{WEIGHTS_NAME}.tmp"
    # One metadata key: safetensors writes a multi-key metadata dict in random order, and a release
    # must be byte-for-byte reproducible (the registry pins its sha256).
    meta = json.dumps({"architecture": model.arch, "format_version": FORMAT_VERSION}, sort_keys=True)
    save_file(state, str(tmp), metadata={"amtcli": meta})
    os.replace(tmp, folder / WEIGHTS_NAME)
    (folder / CONFIG_NAME).write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    if card is not None:
        (folder / CARD_NAME).write_text(card)
    return folder


def load_release(folder: str | os.PathLike, *, device: str = "cpu", expect_features: FeatureConfig | None = None):
    """Build the architecture named in ``config.json`` and load ``model.safetensors`` with strict keys.

    Returns ``(model, ReleaseConfig)``; the model is in eval mode on ``device``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..nets import build_model

    folder = Path(folder)
    cfg = read_release_config(folder)
    if expect_features is not None and expect_features != cfg.feature_config:
        raise ConfigMismatch(
            f"{folder}: the model was trained on features {cfg.feature_config} but {expect_features} were given"
        )
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelNotFound(f"{folder}: no {WEIGHTS_NAME}")
    try:
        model = build_model(cfg.architecture, cfg.model_config, cfg.feature_config)
    except BadInput as exc:  # an unknown architecture, a model_config field of the wrong type
        raise ConfigMismatch(f"{folder / CONFIG_NAME}: {exc}") from None
    except (
        ValueError,
        RuntimeError,
        TypeError,
        ArithmeticError,
        IndexError,
    ) as exc:  # sizes torch cannot build (negative, zero, inf)
        raise ConfigMismatch(
            f"{folder / CONFIG_NAME}: model_config does not build a {cfg.architecture!r} ({_first_line(exc)})"
        ) from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ConfigMismatch(f"{weights}: unreadable weights ({_first_line(exc)})") from None
    load_weights_strict(model, state, where=weights, architecture=cfg.architecture)
    return model.to(device).eval(), cfg


def load_weights_strict(model, state, *, where, architecture: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line :class:`ConfigMismatch` naming ``where``."""
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ConfigMismatch(
            f"{where}: weights do not match architecture {architecture!r} "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigMismatch(f"{where}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
