"""Which engine runs a model's network: torch, or onnxruntime without torch.

A U-Net release folder may hold ``model.onnx`` beside ``model.safetensors`` (the same network,
written by ``amt models export`` / ``amt models onnx``). On the CPU, onnxruntime runs it about twice
as fast as torch, and a process that never imports torch starts about 2 s sooner; the features then
come from the numpy CQT (:class:`amtcli.audio.features.NumpyCQT`), which gives torch's numbers to
float32 rounding. ``auto`` takes onnxruntime wherever it can run the model as torch would:

- the device is the CPU (onnxruntime here is its CPU build; CUDA and MPS stay with torch);
- the architecture has an ONNX export (U-Net; token and embedding models run on torch);
- the folder has ``model.onnx``;
- the precision is ``auto`` or ``fp32`` (onnxruntime runs fp32; ``--precision bf16`` needs torch);
- onnxruntime is installed.

Otherwise torch, and :class:`Backend` says why in one line (``amt transcribe --explain``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..devices import check_precision
from ..errors import BadInput, ConfigMismatch, MissingDependency
from ..zoo.release import ONNX_HEADS, ONNX_NAME, ONNX_WEIGHTS_KEY, WEIGHTS_NAME, ReleaseConfig, read_release_config

BACKENDS = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class Backend:
    """What :func:`choose_backend` chose (``torch`` or ``onnx``) and why, in one line."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def onnxruntime_version() -> str | None:
    """The installed onnxruntime's version, or ``None`` (found without importing it)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        return importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def check_backend(backend: str | None) -> str:
    """``backend`` as one of :data:`BACKENDS` (``None`` is ``auto``), or :class:`BadInput`."""
    text = (backend or "auto").strip().lower()
    if text not in BACKENDS:
        raise BadInput(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return text


def _why_not_onnx(*, device: str, folder: Path, architecture: str, precision: str) -> str | None:
    from ..nets import has_onnx_export, output_kind

    if device != "cpu":
        return f"the model runs on {device}; onnxruntime runs here on the CPU only"
    if not has_onnx_export(architecture):
        kind = "a token model" if output_kind(architecture) == "tokens" else f"a {architecture!r} model"
        return f"{kind} has no ONNX export"
    if not (folder / ONNX_NAME).is_file():
        return f"{folder} has no {ONNX_NAME} (`amt models onnx {folder}` writes it)"
    if precision not in ("auto", "fp32"):
        return f"--precision {precision} runs on torch (onnxruntime runs fp32)"
    if onnxruntime_version() is None:
        return "onnxruntime is not installed"
    return None


def choose_backend(
    backend: str | None,
    *,
    device: str,
    folder: str | os.PathLike,
    architecture: str,
    precision: str | None = None,
) -> Backend:
    """The engine for the release in ``folder`` on ``device`` (already resolved: ``cpu``, ``cuda``...).

    ``backend``: ``auto`` (onnxruntime where it can run the model, see the module docstring), ``torch``,
    or ``onnx`` (an error naming the reason where it cannot). Imports neither torch nor onnxruntime.
    """
    text = check_backend(backend)
    prec = check_precision(precision)
    if text == "torch":
        return Backend("torch", "asked for")
    why_not = _why_not_onnx(device=device, folder=Path(folder), architecture=architecture, precision=prec)
    if why_not is None:
        how = "asked for" if text == "onnx" else f"{ONNX_NAME} on the CPU"
        return Backend("onnx", f"onnxruntime {onnxruntime_version()}, {how}")
    if text == "onnx":
        error = MissingDependency if "not installed" in why_not else BadInput
        raise error(f"--backend onnx: {why_not}" + ("" if error is MissingDependency else "; use --backend torch"))
    return Backend("torch", why_not)


def onnx_threads() -> int:
    """onnxruntime's threads: ``OMP_NUM_THREADS`` where set (as torch reads it), else 0 (its default: one per core)."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


class OnnxTranscriber:
    """A release's ``model.onnx`` on onnxruntime: what transcription uses in place of the torch model.

    ``predict(features (B, T, n_bins))`` returns the probabilities ``(B, T, 88)`` of each head, like
    the torch model's ``predict``. Refuses (:class:`ConfigMismatch`) a ``model.onnx`` that was not
    made from the ``model.safetensors`` beside it, or that does not fit the release's features.
    """

    output_kind = "frames"

    def __init__(self, folder: str | os.PathLike, *, release: ReleaseConfig | None = None, threads: int | None = None):
        import onnxruntime as ort

        from ..zoo.registry import sha256_file

        self.folder = Path(folder)
        self.release = release if release is not None else read_release_config(self.folder)
        self.feature_config = self.release.feature_config
        path = self.folder / ONNX_NAME
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; onnxruntime's warnings are not the user's business
        options.intra_op_num_threads = onnx_threads() if threads is None else threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: on a machine shared with other work (the usual case
        # for a command-line tool) spinning threads fight the other processes for the cores. The 5-minute
        # network on 2 busy cores: 2.15 s without spinning, 2.48 s with it (4.77 vs 6.48 s under heavier load).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes for files it cannot read
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigMismatch(f"{path}: onnxruntime cannot load it ({first[:200]})") from None
        made_from = self.session.get_modelmeta().custom_metadata_map.get(ONNX_WEIGHTS_KEY)
        if made_from != sha256_file(self.folder / WEIGHTS_NAME):
            raise ConfigMismatch(
                f"{path} was not exported from the {WEIGHTS_NAME} beside it; write it again with "
                f"`amt models onnx {self.folder} --overwrite`, or use --backend torch"
            )
        inputs, outputs = self.session.get_inputs(), [o.name for o in self.session.get_outputs()]
        width = inputs[0].shape[-1] if len(inputs) == 1 else None
        if len(inputs) != 1 or inputs[0].name != "features" or sorted(outputs) != sorted(ONNX_HEADS):
            raise ConfigMismatch(f"{path}: not an amt network (inputs {[i.name for i in inputs]}, outputs {outputs})")
        if width != self.feature_config.n_bins:
            raise ConfigMismatch(f"{path}: reads {width} CQT bins but config.json has {self.feature_config.n_bins}")

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Probabilities ``(B, T, 88)`` per head for features ``(B, T, n_bins)`` (float32)."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        return dict(zip(ONNX_HEADS, self.session.run(list(ONNX_HEADS), {"features": x})))


def load_transcriber(
    folder: str | os.PathLike,
    *,
    backend: str,
    device: str = "cpu",
    release: ReleaseConfig | None = None,
    threads: int | None = None,
):
    """Load the release in ``folder`` for ``backend`` (``torch`` or ``onnx``, as :func:`choose_backend`
    named it). Returns ``(model, ReleaseConfig)``: a torch model in eval mode on ``device``, or an
    :class:`OnnxTranscriber`."""
    if backend == "onnx":
        net = OnnxTranscriber(folder, release=release, threads=threads)
        return net, net.release
    if backend != "torch":
        raise BadInput(f"backend {backend!r}: load_transcriber takes torch or onnx (choose_backend resolves auto)")
    from ..zoo import load_release

    return load_release(folder, device=device)
