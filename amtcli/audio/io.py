"""Load any audio file as float32 mono at a requested rate, and write audio files.

Reading is block-wise and resampling streams (soxr), so a long stereo 44.1 kHz file never has to
sit in memory at its original rate: peak memory is about the size of the output array.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import AmtWarning, BadAudio, BadInput

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".opus")
_BLOCK_FRAMES = 1 << 18


def _open(path: Path):
    import soundfile as sf

    if not path.exists():
        raise BadAudio(f"{path}: no such file")
    if path.is_dir():
        raise BadAudio(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise BadAudio(f"{path}: the file is empty")
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadAudio(f"{path}: not a readable audio file ({reason})") from None


_DECLARED = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _warn_if_truncated(path: Path, f) -> None:
    """Warn when a WAV/AIFF header announces more audio than the file holds (a cut-off copy or
    download): libsndfile reads what is there without a word, and its log says how much that is.
    Headers left unfinished by streaming writers (size 0 or 0xFFFFFFFF) are not truncation."""
    m = _DECLARED.search(f.extra_info or "")
    if not m:
        return
    declared, actual = int(m.group(1)), int(m.group(2))
    if declared in (0, 0xFFFFFFFF) or declared <= actual or actual <= 0 or not f.samplerate:
        return
    have_s = f.frames / f.samplerate
    announced_s = have_s * declared / actual
    warnings.warn(
        f"{path}: truncated: its header announces {announced_s:.1f} s of audio but the file holds "
        f"{have_s:.1f} s (a cut-off copy or download?); using what is there",
        AmtWarning,
        stacklevel=3,
    )


def audio_info(path: str | os.PathLike) -> tuple[int, int, float]:
    """(sample_rate, channels, duration_s) of a file, without decoding it."""
    path = Path(path)
    with _open(path) as f:
        return f.samplerate, f.channels, f.frames / f.samplerate if f.samplerate else 0.0


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = 16000,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate``.

    Returns an array of shape ``(n_samples,)``. Raises :class:`BadAudio` for a missing, empty,
    truncated or non-audio file.
    """
    import soxr

    if sample_rate <= 0:
        raise BadInput(f"sample rate must be positive, got {sample_rate}")
    path = Path(path)
    with _open(path) as f:
        _warn_if_truncated(path, f)
        sr_in = f.samplerate
        total = f.frames
        start = int(round(max(0.0, offset_s) * sr_in))
        stop = total if duration_s is None else min(total, start + int(round(duration_s * sr_in)))
        if total <= 0 or start >= stop:
            if total <= 0:
                raise BadAudio(f"{path}: the file holds no audio")
            return np.zeros(0, dtype=np.float32)
        n_out = int(np.ceil((stop - start) * sample_rate / sr_in))
        out = np.empty(n_out + 16, dtype=np.float32)
        pos = 0
        resampler = None if sr_in == sample_rate else soxr.ResampleStream(sr_in, sample_rate, 1, dtype="float32")
        try:
            f.seek(start)
            remaining = stop - start
            while remaining > 0:
                block = f.read(min(_BLOCK_FRAMES, remaining), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                remaining -= len(block)
                mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
                last = remaining <= 0
                y = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if pos + len(y) > len(out):
                    out = np.concatenate([out, np.empty(pos + len(y) - len(out), np.float32)])
                out[pos : pos + len(y)] = y
                pos += len(y)
            if resampler is not None and remaining > 0:  # truncated file: flush what we have
                y = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                out[pos : pos + len(y)] = y[: len(out) - pos]
                pos += len(y)
        except (RuntimeError, ValueError) as exc:
            raise BadAudio(f"{path}: the file is damaged or truncated ({exc})") from None
    if pos == 0:
        raise BadAudio(f"{path}: no audio could be decoded (truncated file?)")
    audio = out[:pos]
    if not np.all(np.isfinite(audio)):
        raise BadAudio(f"{path}: the file decodes to non-finite samples")
    return audio


def save_audio(path: str | os.PathLike, audio: np.ndarray, *, sample_rate: int) -> Path:
    """Write ``audio`` (shape ``(n_samples,)``) as WAV, FLAC or OGG by the file's extension.

    The file is written to a temporary name and moved into place, so a crash never leaves half a file.
    """
    import soundfile as sf

    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path}: can only write .wav, .flac or .ogg")
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(str(tmp), audio, sample_rate, format=fmt, subtype=subtype)
    os.replace(tmp, path)
    return path


def find_audio_files(paths, *, extensions=AUDIO_EXTENSIONS) -> list[Path]:
    """Files and folders (searched recursively, sorted) -> list of audio file paths."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in extensions))
        else:
            found.append(p)
    return found
