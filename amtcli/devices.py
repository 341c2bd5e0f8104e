"""Which torch device and which arithmetic to run on. One place, so every command reads ``--device``
and ``--precision`` the same way.

Precision ``auto`` is chosen by the hardware at hand, never assumed: CUDA gets autocast (bf16 where
the GPU supports it, else fp16 with a gradient scaler); a CPU gets bf16 autocast only where it runs
bf16 natively (AVX512-BF16 or AMX) *and* a one-off micro-benchmark on this machine finds it faster
than fp32. Elsewhere (AVX2-only CPUs, where bf16 is emulated and several times slower) it is fp32.
The benchmark's verdict is cached per machine (CPU model, flags, torch version) in
``$XDG_CACHE_HOME/amt/precision.json``; ``amt info`` prints the choice and its reason.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, MissingDependency

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cuda_possible() -> bool:
    """Whether torch could find a GPU here, answered without importing torch (which takes seconds).

    False when the installed torch is a CPU build (version ``+cpu``), on macOS, or when no GPU driver
    is installed (Linux: ``/proc/driver/nvidia``, ``/dev/nvidia*``, ``/dev/dxg`` under WSL2, ``/dev/kfd``
    for ROCm; Windows: ``nvcuda.dll``). True means only "ask torch".
    """
    import importlib.metadata
    import sys

    try:
        if importlib.metadata.version("torch").endswith("+cpu"):
            return False
    except importlib.metadata.PackageNotFoundError:
        return False
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("win"):
        import ctypes.util

        return ctypes.util.find_library("nvcuda") is not None
    for path in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd"):
        if os.path.exists(path):
            return True
    return False


def resolve_device(device: str = "cpu") -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cuda``/``cuda:N``/``mps`` only if present.

    ``auto`` and ``cpu`` import torch only where a GPU driver is installed (:func:`cuda_possible`).
    """
    text = (device or "cpu").strip().lower()
    if text == "cpu" or (text == "auto" and not cuda_possible()):
        return "cpu"
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MissingDependency(
                f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)"
            )
        if text.startswith("cuda:"):
            index = text.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise BadInput(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
        return text
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise MissingDependency(
                f"--device {device}: MPS is not available on this machine (use --device cpu or auto)"
            )
        return "mps"
    raise BadInput(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class Precision:
    """What ``resolve_precision`` chose and why.

    ``dtype`` is the autocast dtype (``None``: plain fp32); ``scaler`` says whether training needs
    a gradient scaler (fp16 only); ``reason`` is one line for logs and ``amt info``.
    """

    name: str  # fp32 | bf16 | fp16
    dtype: object  # torch.dtype | None
    reason: str

    @property
    def scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self, device: str):
        """The autocast context for ``device`` (a no-op for fp32)."""
        import torch

        dev_type = "cuda" if device.startswith("cuda") else ("mps" if device == "mps" else "cpu")
        return torch.autocast(device_type=dev_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def cpu_bf16_native() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "amt" / "precision.json"


def _machine_key() -> str:
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # not the thread count: `--jobs N` workers run with fewer threads and would each measure again
    return f"{model}|torch={torch.__version__}"


_VERDICTS: dict[str, tuple[bool, str]] = {}  # this process's answers, by cache file and machine


def measure_cpu_bf16_speedup(*, repeats: int = 3) -> float:
    """fp32 time / bf16-autocast time of a small conv + LSTM + matmul workload on this CPU (> 1: bf16 faster).

    The workload has the shapes of the transcriber's layers (a 2-D convolution over a CQT patch,
    an LSTM over frames, a dense layer); it takes well under a second.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1)
    lstm = torch.nn.LSTM(64, 64, batch_first=True)
    dense = torch.nn.Linear(256, 256)
    x_conv = torch.randn(4, 8, 176, 128, generator=gen)
    x_seq = torch.randn(16, 128, 64, generator=gen)
    x_dense = torch.randn(2048, 256, generator=gen)

    def work(dtype):
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            conv(x_conv)
            lstm(x_seq)
            dense(x_dense)

    def best(dtype) -> float:
        work(dtype)  # warm-up (oneDNN primitive creation)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            work(dtype)
            times.append(time.perf_counter() - t0)
        return min(times)

    fp32 = best(None)
    try:
        bf16 = best(torch.bfloat16)
    except RuntimeError:  # a oneDNN build without bf16 kernels for one of the layers
        return 0.0
    return fp32 / max(bf16, 1e-9)


def cpu_bf16_faster(*, refresh: bool = False) -> tuple[bool, str]:
    """Whether bf16 autocast beats fp32 on this CPU, and the reason. Measured once per machine, cached."""
    if not cpu_bf16_native():
        return False, "CPU has no native bf16 (no AVX512-BF16/AMX): bf16 would be emulated"
    key = _machine_key()
    path = _cache_path()
    memo = f"{path}|{key}"
    if memo in _VERDICTS and not refresh:
        return _VERDICTS[memo]  # resolved once per file otherwise: no re-reading the cache each time
    cache: dict = {}
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key) if isinstance(cache, dict) and not refresh else None
    if not isinstance(entry, dict) or not isinstance(entry.get("speedup"), (int, float)):
        speedup = measure_cpu_bf16_speedup()
        entry = {"speedup": round(float(speedup), 3), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        cache = cache if isinstance(cache, dict) else {}
        cache[key] = entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home still gets the measured answer, just not cached
    speedup = float(entry["speedup"])
    _VERDICTS[memo] = (speedup >= 1.1, f"native bf16; measured bf16 {speedup:.2f}x the speed of fp32 on this CPU")
    return _VERDICTS[memo]


def check_precision(precision: str | None) -> str:
    """``precision`` as one of :data:`PRECISIONS` (``None`` is ``auto``), or :class:`BadInput`; no torch import."""
    text = (precision or "auto").strip().lower()
    if text not in PRECISIONS:
        raise BadInput(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return text


def resolve_precision(precision: str | None, device: str) -> Precision:
    """The arithmetic for ``device``: ``auto`` (or ``None``), ``fp32``, ``bf16`` or ``fp16``."""
    text = check_precision(precision)
    import torch

    cuda = device.startswith("cuda")
    if text == "fp32":
        return Precision("fp32", None, "asked for")
    if text == "bf16":
        return Precision("bf16", torch.bfloat16, "asked for")
    if text == "fp16":
        if not cuda:
            raise BadInput("--precision fp16 needs CUDA (use auto, fp32 or bf16)")
        return Precision("fp16", torch.float16, "asked for")
    if cuda:
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16, "CUDA with bf16 support")
        return Precision("fp16", torch.float16, "CUDA without bf16: fp16 with a gradient scaler")
    if device == "mps":
        return Precision("fp32", None, "MPS")
    faster, reason = cpu_bf16_faster()
    return Precision("bf16", torch.bfloat16, reason) if faster else Precision("fp32", None, reason)
