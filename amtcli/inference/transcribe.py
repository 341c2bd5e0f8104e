"""The transcribe API: audio (file or array) -> features -> posteriors -> notes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import CHUNK_S, DecodeConfig, FeatureConfig, override
from ..devices import check_precision, resolve_device, resolve_precision
from ..errors import BadInput
from ..notes import NoteArray
from .chunking import run_chunked
from .decoding import decode_posteriors


@dataclass
class Transcription:
    """Everything one run produced: notes, and the posteriors ``(n_frames, 88)`` they were decoded from.

    ``onset_strength`` ``(n_frames,)`` is what beats are tracked on: the onset probabilities summed
    over the keys (frame models), or the CQT's spectral flux (token models). ``decode`` is the
    decoding configuration that was used (thresholds, minimum note length).

    Write it as a musician would use it with :meth:`write` (format by suffix), :meth:`to_midi`
    or :meth:`to_musicxml`; options are those of :class:`amtcli.outputs.OutputOptions`.
    """

    notes: NoteArray
    posteriors: dict[str, np.ndarray]  # empty for token models (they write notes, not frames)
    features: np.ndarray | None
    frame_rate: float
    duration_s: float
    invalid_tokens: int = 0  # token models: tokens the decoder wrote that made no sense and were skipped
    onset_strength: np.ndarray | None = None
    decode: DecodeConfig | None = None

    def write(self, path: str | os.PathLike, *, fmt: str | None = None, meta: dict | None = None, **options):
        """Write as ``fmt`` (default: by the suffix: .mid, .csv, .json, .musicxml); ``options``:
        :class:`~amtcli.outputs.OutputOptions` fields (``quantize="1/16"``, ``pedal=True``, ...).
        Returns a :class:`~amtcli.outputs.WriteReport`. Overwrites ``path``."""
        from ..outputs import OutputOptions, write_transcription

        return write_transcription(self, path, fmt=fmt, options=OutputOptions(**options), meta=meta)

    def to_midi(self, path: str | os.PathLike, **options):
        """MIDI with the tracked tempo map and time signature (see :meth:`write`)."""
        return self.write(path, fmt="mid", **options)

    def to_musicxml(self, path: str | os.PathLike, **options):
        """A MusicXML score: bars, key, two staves (see :meth:`write`)."""
        return self.write(path, fmt="musicxml", **options)

    def beat_grid(self, *, tempo_bpm: float | None = None, beats_per_bar: int | None = None):
        """The :class:`~amtcli.rhythm.BeatGrid` the outputs use (tracked, or at ``tempo_bpm``)."""
        from ..rhythm import estimate_grid

        return estimate_grid(
            self.notes,
            onset_strength=self.onset_strength,
            frame_rate=self.frame_rate,
            duration_s=self.duration_s,
            tempo_bpm=tempo_bpm,
            beats_per_bar=beats_per_bar,
        )


def _as_model(model: Any, device: str, *, backend: str | None = None, precision: str | None = None):
    """A zoo spec, a loaded model, or ``(model, release_config)`` -> ``(model, DecodeConfig)``.

    A spec is loaded for the backend :func:`~amtcli.inference.backends.choose_backend` picks
    (``backend``: auto, torch or onnx); a loaded model runs on whatever engine it is.
    """
    from .backends import OnnxTranscriber

    if isinstance(model, (str, os.PathLike)):
        from ..zoo import read_release_config, resolve
        from .backends import choose_backend, load_transcriber

        folder = resolve(model)
        release = read_release_config(folder)
        chosen = choose_backend(
            backend, device=device, folder=folder, architecture=release.architecture, precision=precision
        )
        model, cfg = load_transcriber(folder, backend=chosen.name, device=device, release=release)
        return model, cfg.decode_config
    if isinstance(model, tuple):
        model, cfg = model
        return (model if isinstance(model, OnnxTranscriber) else model.to(device).eval()), cfg.decode_config
    if isinstance(model, OnnxTranscriber):
        return model, model.release.decode_config
    return model.to(device).eval(), DecodeConfig()


def posteriors_from_features(
    model,
    features: np.ndarray,
    *,
    device: str = "cpu",
    chunk_s: float = CHUNK_S,
    margin_s: float = 2.0,
    batch_size: int = 1,
    precision: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Run a transcriber over features ``(n_frames, n_bins)`` in overlapping chunks.

    ``model``: a torch model, or an :class:`~amtcli.inference.backends.OnnxTranscriber` (CPU, fp32;
    ``device`` and ``precision`` then only checked). ``precision``: auto (by the hardware, see
    :func:`amtcli.devices.resolve_precision`), fp32, bf16, fp16.
    Returns probabilities ``(n_frames, 88)`` for onset, frame, offset and velocity.
    """
    from .backends import OnnxTranscriber

    fc: FeatureConfig = model.feature_config
    chunk_frames = max(16, int(round(chunk_s * fc.frame_rate)))
    margin_frames = max(0, int(round(margin_s * fc.frame_rate)))
    if isinstance(model, OnnxTranscriber):
        if device != "cpu" or check_precision(precision) not in ("auto", "fp32"):
            raise BadInput(f"onnxruntime runs the network on the CPU in fp32, not {device} / {precision}")
        fn = model.predict
    else:
        import torch

        prec = resolve_precision(precision, device)

        def fn(batch: np.ndarray) -> dict[str, np.ndarray]:
            x = torch.from_numpy(batch).to(device)
            with torch.inference_mode(), prec.autocast(device):
                probs = model.predict(x)
            return {k: v.float().cpu().numpy() for k, v in probs.items()}

    return run_chunked(
        features,
        fn,
        chunk_frames=chunk_frames,
        margin_frames=margin_frames,
        batch_size=batch_size,
        on_progress=on_progress,
    )


def notes_from_token_model(
    model,
    features: np.ndarray,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    min_note_s: float = 0.0,
    precision: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[NoteArray, int]:
    """Run a token model (``model.output_kind == "tokens"``) over features ``(n_frames, n_bins)``.

    The features are cut into consecutive segments of ``model.config.segment_frames`` (the last one
    padded with silence), each segment is decoded greedily with cached keys/values, and the token
    sequences are stitched through their tie sections into notes (:func:`tokens.tokens_to_notes`).
    Notes shorter than ``min_note_s`` are dropped. Returns ``(notes, invalid token count)``.
    """
    import torch

    from ..tokens import tokens_to_notes

    fc: FeatureConfig = model.feature_config
    seg = int(model.config.segment_frames)
    n_frames = len(features)
    n_seg = max(1, -(-n_frames // seg))
    floor = np.float32(np.log(fc.log_offset))
    padded = np.full((n_seg * seg, features.shape[1]), floor, dtype=np.float32)
    padded[:n_frames] = features
    segments = padded.reshape(n_seg, seg, -1)
    prec = resolve_precision(precision, device)
    tokens: list[np.ndarray] = []
    for b0 in range(0, n_seg, batch_size):
        x = torch.from_numpy(segments[b0 : b0 + batch_size]).to(device)
        with torch.inference_mode(), prec.autocast(device):
            tokens += model.generate(x)
        if on_progress:
            on_progress(min(n_seg, b0 + batch_size), n_seg)
    starts = [k * seg / fc.frame_rate for k in range(n_seg)]
    notes, invalid = tokens_to_notes(
        tokens, model.codec, starts_s=starts, end_s=n_frames / fc.frame_rate, segment_s=seg / fc.frame_rate
    )
    if min_note_s > 0 and len(notes):
        notes = notes[(notes.offset_s - notes.onset_s) >= min_note_s - 1e-9]
    return notes, invalid


def transcribe_full(
    audio: str | os.PathLike | np.ndarray,
    *,
    model: Any = "synthetic",
    device: str = "auto",
    backend: str = "auto",
    decode: DecodeConfig | None = None,
    sample_rate: int | None = None,
    chunk_s: float = CHUNK_S,
    precision: str | None = None,
    keep_features: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    onset_threshold: float | None = None,
    frame_threshold: float | None = None,
    offset_threshold: float | None = None,
    min_note_s: float | None = None,
) -> Transcription:
    """Like :func:`transcribe` but returns a :class:`Transcription` with the posteriors, the onset
    strength for beat tracking, and methods that write MIDI with tempo maps, MusicXML and more."""
    from ..audio.features import compute_features
    from ..audio.io import load_audio
    from .backends import OnnxTranscriber

    device = resolve_device(device)
    net, default_decode = _as_model(model, device, backend=backend, precision=precision)
    fc: FeatureConfig = net.feature_config
    if isinstance(audio, (str, os.PathLike)):
        samples = load_audio(Path(audio), sample_rate=fc.sample_rate)
    else:
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise BadInput(f"audio array must be mono (n_samples,), got shape {samples.shape}")
        if sample_rate is not None and sample_rate != fc.sample_rate:
            import soxr

            samples = soxr.resample(samples, sample_rate, fc.sample_rate).astype(np.float32)
    duration_s = len(samples) / fc.sample_rate
    # the onnxruntime path reads the numpy CQT, so the process never imports torch
    features = compute_features(samples, config=fc, engine="numpy" if isinstance(net, OnnxTranscriber) else "torch")
    del samples
    cfg = override(
        decode or default_decode,
        onset_threshold=onset_threshold,
        frame_threshold=frame_threshold,
        offset_threshold=offset_threshold,
        min_note_s=min_note_s,
    )
    if getattr(net, "output_kind", "frames") == "tokens":
        from ..rhythm import onset_strength_from_features

        notes, invalid = notes_from_token_model(
            net, features, device=device, min_note_s=cfg.min_note_s, precision=precision, on_progress=on_progress
        )
        return Transcription(
            notes,
            {},
            features if keep_features else None,
            fc.frame_rate,
            duration_s,
            invalid_tokens=invalid,
            onset_strength=onset_strength_from_features(features),
            decode=cfg,
        )
    post = posteriors_from_features(
        net, features, device=device, chunk_s=chunk_s, precision=precision, on_progress=on_progress
    )
    notes = decode_posteriors(post, feature_config=fc, config=cfg)
    return Transcription(
        notes,
        post,
        features if keep_features else None,
        fc.frame_rate,
        duration_s,
        onset_strength=post["onset"].sum(axis=1).astype(np.float64),
        decode=cfg,
    )


def transcribe(
    audio: str | os.PathLike | np.ndarray,
    *,
    model: Any = "synthetic",
    device: str = "auto",
    backend: str = "auto",
    decode: DecodeConfig | None = None,
    sample_rate: int | None = None,
    chunk_s: float = CHUNK_S,
    precision: str | None = None,
    onset_threshold: float | None = None,
    frame_threshold: float | None = None,
    offset_threshold: float | None = None,
    min_note_s: float | None = None,
) -> NoteArray:
    """Transcribe a file path or a float32 mono array into notes.

    ``model`` is a zoo name, a release folder, ``hf://owner/repo[@rev]``, or a loaded model.
    ``sample_rate`` is the rate of an array input (default: the model's, 16 kHz).
    ``precision``: auto (chosen by the hardware: bf16 only on CPUs with native bf16, AMP on CUDA), fp32, bf16, fp16.
    ``backend``: auto (onnxruntime where the model has a ``model.onnx`` and runs on the CPU, else torch;
    see :mod:`amtcli.inference.backends`), torch or onnx.
    ``onset_threshold``, ``frame_threshold``, ``offset_threshold``, ``min_note_s``: override the
    model's decoding (or ``decode``'s) field by field, with the meanings of
    :data:`amtcli.config.DECODE_HELP` (the same as ``amt transcribe``'s flags).
    Returns a :class:`~amtcli.notes.NoteArray` (with each note's ``confidence``).
    """
    return transcribe_full(
        audio,
        model=model,
        device=device,
        backend=backend,
        decode=decode,
        sample_rate=sample_rate,
        chunk_s=chunk_s,
        precision=precision,
        onset_threshold=onset_threshold,
        frame_threshold=frame_threshold,
        offset_threshold=offset_threshold,
        min_note_s=min_note_s,
    ).notes
