"""Architectures, registered by name. "Models" elsewhere means released weights; these are the shapes.

Each architecture module defines a config dataclass and an ``nn.Module`` whose constructor takes
``(config, feature_config)``. Checkpoints store the architecture *name*, never a pickled class.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import FeatureConfig, from_dict
from ..errors import BadInput

# name -> (module, model class, config class)
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "unet-bilstm": ("amtcli.nets.unet_bilstm", "UNetBiLSTM", "UNetBiLSTMConfig"),
    "embedding": ("amtcli.nets.embedding", "AudioScoreEmbedding", "EmbeddingConfig"),
    "transformer": ("amtcli.nets.transformer", "TokenTransformer", "TransformerConfig"),
}

# What each architecture writes: posteriors per frame, or tokens. Kept here (not read off the class)
# so that choosing how to run a model needs no torch; tests/test_architecture.py checks it against the classes.
# (The embedding has no output kind of its own; it reads as the class default, frames.)
OUTPUT_KINDS: dict[str, str] = {"unet-bilstm": "frames", "embedding": "frames", "transformer": "tokens"}

# Architectures whose network `amt models export` also writes as model.onnx (run by onnxruntime on the
# CPU, without torch): features in, probabilities out, no generation loop.
ONNX_ARCHITECTURES = frozenset({"unet-bilstm"})

# architecture -> part -> the modules (attributes of the model) that ``--freeze PART`` keeps fixed.
# U-Net + BiLSTM: "encoder" is everything before the per-key BiLSTM (see unet_bilstm.py).
FREEZE_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "unet-bilstm": {"encoder": ("input_norm", "enc0", "to_keys", "enc1", "bottleneck", "dec1")},
}


def freeze_groups(arch: str) -> dict[str, tuple[str, ...]]:
    """The parts of architecture ``arch`` that fine-tuning can freeze (empty when none)."""
    return FREEZE_GROUPS.get(arch, {})


def _lookup(arch: str):
    try:
        module, cls, cfg = ARCHITECTURES[arch]
    except KeyError:
        raise BadInput(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})") from None
    mod = importlib.import_module(module)
    return getattr(mod, cls), getattr(mod, cfg)


def model_config_class(arch: str):
    return _lookup(arch)[1]


def output_kind(arch: str) -> str:
    """What architecture ``arch`` writes: ``frames`` (posteriors) or ``tokens``; imports no torch."""
    try:
        return OUTPUT_KINDS[arch]
    except KeyError:
        raise BadInput(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})") from None


def has_onnx_export(arch: str) -> bool:
    """Whether releases of architecture ``arch`` can carry a ``model.onnx``."""
    return arch in ONNX_ARCHITECTURES


def build_model(arch: str, model_config: dict[str, Any] | Any = None, feature_config: FeatureConfig | None = None):
    """Instantiate architecture ``arch`` from a config dataclass or dict (unknown keys are refused)."""
    model_cls, cfg_cls = _lookup(arch)
    if model_config is None or isinstance(model_config, dict):
        model_config = from_dict(cfg_cls, model_config)
    return model_cls(model_config, feature_config or FeatureConfig())
