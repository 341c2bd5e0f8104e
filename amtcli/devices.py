"""Which torch device to run on. One place, so every command reads ``--device`` the same way."""

from __future__ import annotations

from .errors import BadInput, MissingDependency


def resolve_device(device: str = "cpu") -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cuda``/``cuda:N``/``mps`` only if present."""
    import torch

    text = (device or "cpu").strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MissingDependency(f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)")
        if text.startswith("cuda:"):
            index = text.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise BadInput(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
        return text
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise MissingDependency(f"--device {device}: MPS is not available on this machine (use --device cpu or auto)")
        return "mps"
    raise BadInput(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or mps")
