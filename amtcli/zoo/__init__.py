"""Model zoo: names -> release folders. (Registry and Hub download: see registry/hub modules.)"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelNotFound
from .release import load_release, save_release  # noqa: F401


def load_model(name_or_path: str, *, device: str = "cpu"):
    """Load a released model from a release folder path. Returns ``(model, ReleaseConfig)``."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_release(path, device=device)
    raise ModelNotFound(f"{name_or_path}: no such model folder")
