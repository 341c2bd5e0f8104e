"""`amt train`: train a transcriber (or the embedding model) on datasets written by `amt synth`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, console, handle_errors, progress


def load_toml_config(path: Optional[Path]) -> dict:
    """``--config run.toml`` with optional tables [train], [model], [features], [decode]."""
    import tomllib

    from ..errors import BadInput

    if path is None:
        return {}
    if not path.is_file():
        raise BadInput(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"train", "model", "features", "decode"}
    if unknown:
        raise BadInput(f"{path}: unknown table(s) {', '.join(sorted(unknown))} (train, model, features, decode)")
    return data


def render_training(run, *, total_steps: int, start_step: int = 0):
    """Run ``run(on_event)`` under a rich progress bar that shows loss, validation F1 and steps/s."""
    state = {"f1": None, "sps": None, "loss": None}
    with progress() as bar:
        task = bar.add_task("training", total=total_steps, completed=start_step, info="")

        def on_event(kind: str, rec: dict) -> None:
            if kind == "start":
                bar.update(task, completed=rec["step"], total=rec["steps"])
                console().print(f"{rec['train_items']} training and {rec['val_items']} validation items, precision {rec['precision']}, from step {rec['step']}")
            elif kind == "load":
                bar.update(task, description=f"loading data {rec['done']}/{rec['total']}")
            elif kind == "step":
                state["loss"] = rec["loss"]
                if "steps_per_s" in rec:
                    state["sps"] = rec["steps_per_s"]
                bar.update(task, completed=rec["step"], description="training")
            elif kind == "status":
                bar.update(task, description=rec["message"])
            elif kind == "calibrated":
                bar.console.print(f"decoding thresholds chosen on the validation split: onset {rec['onset_threshold']}, frame {rec['frame_threshold']}")
            elif kind == "val":
                state["f1"] = rec["val"]["note_f1"]
                bar.console.print(f"step {rec['step']}: validation note F1 {rec['val']['note_f1']:.3f} (best {rec['best_f1']:.3f})")
            info = []
            if state["loss"] is not None:
                info.append(f"loss {state['loss']:.3f}")
            if state["f1"] is not None:
                info.append(f"F1 {state['f1']:.3f}")
            if state["sps"] is not None:
                info.append(f"{state['sps']:.2f} steps/s")
            bar.update(task, info="  ".join(info))

        return run(on_event)


@app.command()
@handle_errors
def train(
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Dataset folder written by `amt synth` (repeatable).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, metrics.jsonl, config.json).", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Architecture: unet-bilstm, or embedding.")] = "unet-bilstm",
    steps: Annotated[Optional[int], typer.Option(min=1, help="Total optimizer steps. [default: 20000]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Excerpts per step. [default: 8]")] = None,
    crop_s: Annotated[Optional[float], typer.Option(min=0.5, help="Seconds per training excerpt. [default: 10]")] = None,
    lr: Annotated[Optional[float], typer.Option(min=0.0, help="Peak learning rate (warm-up, then cosine decay). [default: 1e-3]")] = None,
    pitch_balanced: Annotated[Optional[bool], typer.Option("--pitch-balanced/--no-pitch-balanced", help="Weight each key's positive and negative frames equally (AT4rAMT). [default: off]")] = None,
    precision: Annotated[Optional[str], typer.Option(help="auto (bf16 autocast on CPU, AMP on CUDA), fp32, bf16, fp16.")] = None,
    val_every: Annotated[Optional[int], typer.Option(min=1, help="Validate (note F1) every N steps. [default: 500]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed. [default: 0]")] = None,
    channels: Annotated[Optional[str], typer.Option(help="U-Net widths, e.g. 8,16,32.")] = None,
    lstm_hidden: Annotated[Optional[int], typer.Option(min=1, help="BiLSTM units per direction.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with [train], [model], [features], [decode] tables; flags win.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out exactly where it stopped.")] = False,
    device: DeviceOpt = "auto",
):
    """Train a model on synthetic datasets, with validation and resumable checkpoints.

    [bold]amt train --data data/piano --steps 20000 --out runs/piano[/]
    """
    from ..config import DecodeConfig, FeatureConfig, TrainConfig, from_dict, override
    from ..errors import BadInput
    from ..inference.transcribe import resolve_device
    from ..nets import ARCHITECTURES, model_config_class

    for d in data:
        if not d.is_dir():
            raise BadInput(f"--data {d}: no such folder")
    dev = resolve_device(device)
    toml = load_toml_config(config)

    if model == "embedding":
        from ..training.embedding import train_embedding

        train_embedding([str(d) for d in data], out_dir=out, steps=steps or 2000, batch_size=batch_size or 32, lr=lr or 1e-3, seed=seed or 0, resume=resume)
        console().print(f"done: {out}")
        return
    if model not in ARCHITECTURES:
        raise BadInput(f"unknown --model {model!r} (known: {', '.join(sorted(ARCHITECTURES))})")

    from ..training.loop import RunSpec, train_transcriber

    tc = override(from_dict(TrainConfig, toml.get("train")), steps=steps, batch_size=batch_size, crop_s=crop_s, lr=lr, pitch_balanced=pitch_balanced, precision=precision, val_every=val_every, seed=seed)
    mc_cls = model_config_class(model)
    mc = from_dict(mc_cls, toml.get("model"))
    if channels:
        try:
            mc = override(mc, channels=tuple(int(c) for c in channels.split(",")))
        except ValueError:
            raise BadInput(f"--channels must be comma-separated integers, got {channels!r}") from None
    mc = override(mc, lstm_hidden=lstm_hidden)
    from ..config import to_dict

    spec = RunSpec(model, to_dict(mc), from_dict(FeatureConfig, toml.get("features")), tc, from_dict(DecodeConfig, toml.get("decode")), data=[str(d.resolve()) for d in data])
    best = render_training(lambda cb: train_transcriber(spec, out_dir=out, resume=resume, device=dev, on_event=cb), total_steps=tc.steps)
    console().print(f"done: best checkpoint {best}")
