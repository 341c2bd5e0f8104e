"""`amt info`: what amt will run on here — versions, device, CPU features, the precision and the backend ``auto`` picks."""

from __future__ import annotations

from typing import Annotated

import typer

from . import app
from .common import DeviceOpt, console, handle_errors


@app.command()
@handle_errors
def info(
    device: DeviceOpt = "auto",
    remeasure: Annotated[
        bool, typer.Option("--remeasure", help="Measure bf16 against fp32 again instead of using the cached verdict.")
    ] = False,
):
    """Show the device, the arithmetic (fp32 / bf16 / fp16) that `--precision auto` chooses on this machine,
    and what `--backend auto` runs transcription on (onnxruntime or torch)."""
    import platform

    import torch

    from .. import __version__
    from ..devices import cpu_bf16_faster, cpu_bf16_native, resolve_device, resolve_precision
    from ..inference.backends import onnxruntime_version

    dev = resolve_device(device)
    if remeasure and dev == "cpu" and cpu_bf16_native():
        cpu_bf16_faster(refresh=True)
    prec = resolve_precision("auto", dev)
    out = console()
    out.print(f"amt {__version__}, torch {torch.__version__}, Python {platform.python_version()}")
    out.print(f"device: {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.startswith("cuda") else ""))
    out.print(
        f"CPU: {torch.backends.cpu.get_cpu_capability()} kernels, native bf16: {'yes' if cpu_bf16_native() else 'no'}, "
        f"{torch.get_num_threads()} torch threads"
    )
    out.print(f"precision auto -> {prec}")
    ort_version = onnxruntime_version()
    if dev != "cpu":
        backend = f"torch (onnxruntime runs on the CPU only; the device is {dev})"
    elif ort_version is None:
        backend = "torch (onnxruntime is not installed)"
    else:
        backend = (
            f"onnx for models with a model.onnx (onnxruntime {ort_version}, fp32), torch for the others; "
            "`amt transcribe --explain` says which"
        )
    out.print(f"backend auto -> {backend}")
