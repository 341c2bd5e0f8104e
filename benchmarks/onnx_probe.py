"""How much faster the default transcriber's network and start-up would be on onnxruntime (issue 13's
open 50x target): a probe for the next step, not a code path amt uses yet.

    .venv/bin/pip install onnx onnxruntime          # not dependencies of amt
    .venv/bin/python benchmarks/onnx_probe.py       # 5-minute file, the bundled model

It exports the bundled model's network (``predict``: features -> four probability maps) with torch's
ONNX exporter, runs the same 40 s chunks through torch and through onnxruntime (2 threads), checks the
outputs agree, and times ``import torch`` and ``import onnxruntime`` in fresh processes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> int:
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError as exc:
        print(f"{exc.name} is not installed (.venv/bin/pip install onnx onnxruntime); nothing measured")
        return 0
    import torch

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import CHUNK_S
    from amtcli.inference.chunking import run_chunked
    from amtcli.inference.transcribe import posteriors_from_features
    from amtcli.zoo import load_model

    net, _ = load_model("synthetic", device="cpu")
    fc = net.feature_config
    audio = np.resize(load_audio(ROOT / "examples" / "piano.flac", sample_rate=fc.sample_rate), 300 * fc.sample_rate)
    feats = compute_features(audio, config=fc)

    class Probabilities(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            out = self.model.predict(x)
            return out["onset"], out["frame"], out["offset"], out["velocity"]

    heads = ("onset", "frame", "offset", "velocity")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.onnx"
        example = torch.from_numpy(feats[None, :1375])
        torch.onnx.export(
            Probabilities(net).eval(), (example,), str(path), input_names=["features"], output_names=list(heads),
            dynamic_axes={"features": {0: "batch", 1: "frames"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def ort_fn(batch: np.ndarray) -> dict[str, np.ndarray]:
            return dict(zip(heads, session.run(None, {"features": batch})))

        chunk = int(round(CHUNK_S * fc.frame_rate))
        margin = int(round(2.0 * fc.frame_rate))
        timings = {}
        for name in ("torch", "onnxruntime"):
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                if name == "torch":
                    post = posteriors_from_features(net, feats, device="cpu", precision="fp32")
                else:
                    post_ort = run_chunked(feats, ort_fn, chunk_frames=chunk, margin_frames=margin, batch_size=1)
                best = min(best, time.perf_counter() - t0)
            timings[name] = best
    diff = max(float(np.abs(post[k] - post_ort[k]).max()) for k in heads)
    print(f"network on 300 s of audio: torch {timings['torch']:.2f} s, onnxruntime {timings['onnxruntime']:.2f} s "
          f"(largest probability difference {diff:.1e})")  # fmt: skip
    print(
        f"import in a fresh process: torch {import_seconds('torch'):.2f} s, onnxruntime {import_seconds('onnxruntime'):.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
