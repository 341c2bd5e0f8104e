"""amt: automatic music transcription trained on synthetic audio.

The Python API is lazy: importing ``amtcli`` does not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"


def transcribe(audio, **kwargs):
    """Transcribe a file path or a float32 mono array; see :func:`amtcli.inference.transcribe.transcribe`."""
    from .inference.transcribe import transcribe as _transcribe

    return _transcribe(audio, **kwargs)


def transcribe_full(audio, **kwargs):
    """Transcribe and keep everything: a :class:`~amtcli.inference.transcribe.Transcription` with
    the notes, posteriors and onset strength, and ``.to_midi(path)`` (tempo map, bars),
    ``.to_musicxml(path)`` and ``.write(path, quantize="1/16", pedal=True, ...)``."""
    from .inference.transcribe import transcribe_full as _transcribe_full

    return _transcribe_full(audio, **kwargs)


def load_model(name_or_path: str = "synthetic", **kwargs):
    """Load a released model by zoo name, folder or ``hf://`` reference; see :func:`amtcli.zoo.load_model`."""
    from .zoo import load_model as _load_model

    return _load_model(name_or_path, **kwargs)


__all__ = ["__version__", "transcribe", "transcribe_full", "load_model"]
