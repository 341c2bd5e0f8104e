"""`amt train`: train a transcriber (or the embedding model) on datasets written by `amt synth`.

Also what `amt finetune` shares with it: the progress display and the noise-round options. The
training itself, on one or several processes, is :func:`amtcli.training.launch.run_training`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import app
from .common import DeviceOpt, PrecisionOpt, console, handle_errors, progress


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
    unknown = set(data) - {"train", "model", "features", "decode", "noise"}
    if unknown:
        raise BadInput(f"{path}: unknown table(s) {', '.join(sorted(unknown))} (train, model, features, decode, noise)")
    return data


# Options shared by `amt train` and `amt finetune`.
NoiseRoundsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--noise-rounds",
        min=0,
        help="Adversarial noise rounds after the clean phase (AT4rAMT); each searches its noise level first. [default: 0]",
    ),
]
NoiseStepsOpt = Annotated[
    Optional[int], typer.Option("--noise-steps", min=1, help="Optimizer steps per noise round. [default: 1000]")
]
NoiseTargetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--noise-target",
        help="LOW:HIGH band of the relative loss increase, (loss(noisy) - loss(clean)) / loss(clean), that sets each round's level. [default: 0.1:0.3]",
    ),
]
NoiseKindOpt = Annotated[
    Optional[str], typer.Option("--noise-kind", help="Noise colour: white, pink or brown. [default: white]")
]
NoiseDomainOpt = Annotated[
    Optional[str],
    typer.Option(
        "--noise-domain",
        help="feature (add noise to the cached CQT magnitudes with random phase: fast, exact per coefficient) or waveform (to the audio, then a CQT per excerpt: exact, slow on CPU). [default: feature]",
    ),
]
NprocOpt = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="Train on N local processes (DistributedDataParallel: gloo on CPU, NCCL with one GPU each). Under torchrun leave it at 1.",
    ),
]


def noise_config(toml: Optional[dict], *, rounds, steps, target, kind, domain):
    """The NoiseConfig from a ``[noise]`` table and the flags (flags win)."""
    from ..config import from_dict, override
    from ..training.noise import NoiseConfig, parse_target

    nc = override(from_dict(NoiseConfig, toml), rounds=rounds, steps=steps, kind=kind, domain=domain)
    if target is not None:
        nc = override(nc, target=parse_target(target))
    return nc.check()


SCORE_NAMES = {"note_f1": "note F1", "robust_note_f1": "note F1 (mean of clean and noisy)"}


def render_training(run, *, total_steps: int, start_step: int = 0):
    """Run ``run(on_event)`` under a rich progress bar that shows loss, validation F1 and steps/s."""
    state = {"score": None, "sps": None, "loss": None, "disc": None}
    with progress() as bar:
        task = bar.add_task("training", total=total_steps, completed=start_step, info="")

        def on_event(kind: str, rec: dict) -> None:
            if kind == "start":
                bar.update(task, completed=rec["step"], total=rec["steps"])
                procs = f", {rec['processes']} processes" if rec.get("processes", 1) > 1 else ""
                frozen = f", frozen: {', '.join(rec['frozen'])}" if rec.get("frozen") else ""
                console().print(
                    f"{rec['train_items']} training and {rec['val_items']} validation items, precision {rec['precision']}{procs}{frozen}, from step {rec['step']}"
                )
            elif kind == "noise_round":
                bar.console.print(f"step {rec['step']}: noise round {rec['round']} of {rec['rounds']}")
            elif kind == "noise_search":
                how = "in the target band" if rec["converged"] else "did NOT reach the target band; using the closest"
                bar.console.print(
                    f"  noise level: {rec['snr_db']:.1f} dB CQT-band SNR ({rec['kind']}, {rec['domain']} domain), "
                    f"loss +{100 * rec['delta']:.0f}% after {rec['iterations']} tries, {how}"
                )
            elif kind == "early_stop":
                bar.console.print(
                    f"step {rec['step']}: no better validation F1 in {rec['patience']} validations; clean phase stopped (best {rec['best_f1']:.3f})"
                )
            elif kind == "load":
                bar.update(task, description=f"loading data {rec['done']}/{rec['total']}")
            elif kind == "step":
                state["loss"] = rec["loss"]
                state["disc"] = rec.get("disc_acc", state["disc"])
                if "steps_per_s" in rec:
                    state["sps"] = rec["steps_per_s"]
                bar.update(task, completed=rec["step"], description="training")
            elif kind == "status":
                bar.update(task, description=rec["message"])
            elif kind == "calibrated":
                bar.console.print(
                    f"decoding thresholds chosen on the validation split: onset {rec['onset_threshold']}, frame {rec['frame_threshold']}"
                )
            elif kind == "val":
                metric = rec.get("metric", "note_f1")
                state["score"] = (SCORE_NAMES.get(metric, metric), rec["val"][metric])
                disc = f", discriminator accuracy {state['disc']:.2f}" if state["disc"] is not None else ""
                bar.console.print(
                    f"step {rec['step']}: validation {state['score'][0]} {state['score'][1]:.3f} (best {rec['best']:.3f}){disc}"
                )
            info = []
            if state["loss"] is not None:
                info.append(f"loss {state['loss']:.3f}")
            if state["disc"] is not None:
                info.append(f"disc acc {state['disc']:.2f}")
            if state["score"] is not None:
                info.append(f"{state['score'][0]} {state['score'][1]:.3f}")
            if state["sps"] is not None:
                info.append(f"{state['sps']:.2f} steps/s")
            bar.update(task, info="  ".join(info))

        return run(on_event)


@app.command()
@handle_errors
def train(
    data: Annotated[
        list[Path],
        typer.Option("--data", "-d", help="Dataset folder written by `amt synth` (repeatable).", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Run folder (checkpoints, metrics.jsonl, config.json).", show_default=False),
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Architecture: unet-bilstm, transformer (tokens), or embedding.")
    ] = "unet-bilstm",
    steps: Annotated[Optional[int], typer.Option(min=1, help="Total optimizer steps. [default: 20000]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Excerpts per step. [default: 8]")] = None,
    crop_s: Annotated[
        Optional[float], typer.Option(min=0.5, help="Seconds per training excerpt. [default: 10]")
    ] = None,
    lr: Annotated[
        Optional[float], typer.Option(min=0.0, help="Peak learning rate (warm-up, then cosine decay). [default: 1e-3]")
    ] = None,
    pitch_balanced: Annotated[
        Optional[bool],
        typer.Option(
            "--pitch-balanced/--no-pitch-balanced",
            help="Weight each key's positive and negative frames equally (AT4rAMT). [default: off]",
        ),
    ] = None,
    precision: Annotated[Optional[str], PrecisionOpt.__metadata__[0]] = None,
    val_every: Annotated[
        Optional[int], typer.Option(min=1, help="Validate (note F1) every N steps. [default: 500]")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed. [default: 0]")] = None,
    channels: Annotated[Optional[str], typer.Option(help="U-Net widths, e.g. 8,16,32.")] = None,
    lstm_hidden: Annotated[Optional[int], typer.Option(min=1, help="BiLSTM units per direction.")] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help=r"TOML file with \[train], \[model], \[features], \[decode] tables; flags win."),
    ] = None,
    unlabeled: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--unlabeled",
            help="Transformer: folder of unlabeled (real) audio for domain confusion (repeatable); an `amt synth` folder gives its train split.",
            show_default=False,
        ),
    ] = None,
    domain_weight: Annotated[
        Optional[float],
        typer.Option(min=0.0, help="Transformer: largest gradient-reversal factor of the domain loss. [default: 0.3]"),
    ] = None,
    domain_warmup: Annotated[
        Optional[int],
        typer.Option(min=0, help="Transformer: steps over which the domain factor rises from 0. [default: 2000]"),
    ] = None,
    init: Annotated[
        Optional[str],
        typer.Option(
            "--init",
            help="Start from a release's weights (zoo name, ./folder or hf://owner/repo): its architecture, "
            "model and feature configs are used, so --channels, --lstm-hidden and [model]/[features] are refused.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out exactly where it stopped.")
    ] = False,
    noise_rounds: NoiseRoundsOpt = None,
    noise_steps: NoiseStepsOpt = None,
    noise_target: NoiseTargetOpt = None,
    noise_kind: NoiseKindOpt = None,
    noise_domain: NoiseDomainOpt = None,
    nproc: NprocOpt = 1,
    device: DeviceOpt = "auto",
):
    """Train a model on synthetic datasets, with validation and resumable checkpoints.

    [bold]amt train --data data/piano --steps 20000 --out runs/piano[/]
    [bold]amt train --model transformer --data data/oneshot --unlabeled real/ --out runs/tx[/] — tokens, with domain confusion.
    [bold]amt train --init synthetic --data data/more --steps 2000 --lr 3e-4 --out runs/more[/] — go on from released weights.
    [bold]amt train --data data/piano --steps 20000 --noise-rounds 3 --noise-steps 2000 --out runs/robust[/]
    [bold]torchrun --nproc-per-node 4 --no-python amt train --data data/piano --device cuda --out runs/piano[/]
    """
    from ..config import DecodeConfig, FeatureConfig, TrainConfig, from_dict, override, to_dict
    from ..devices import resolve_device
    from ..errors import BadInput
    from ..nets import ARCHITECTURES, model_config_class
    from ..training.launch import run_training

    for d in data:
        if not d.is_dir():
            raise BadInput(f"--data {d}: no such folder")
    dev = resolve_device(device)
    toml = load_toml_config(config)
    if model not in ARCHITECTURES:
        raise BadInput(f"unknown --model {model!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    if model in ("embedding", "transformer") and noise_rounds:
        raise BadInput(f"--noise-rounds train the frame-level transcriber (unet-bilstm), not --model {model}")
    if model != "transformer" and (unlabeled or domain_weight is not None or domain_warmup is not None):
        raise BadInput("--unlabeled, --domain-weight and --domain-warmup are for --model transformer")
    if model != "unet-bilstm" and (channels or lstm_hidden):
        raise BadInput(
            f"--channels and --lstm-hidden are U-Net options; size --model {model} with --config's [model] table"
        )
    if model == "embedding" and (crop_s is not None or pitch_balanced is not None):
        raise BadInput("--crop-s and --pitch-balanced are transcriber options, not for --model embedding")

    mc = from_dict(model_config_class(model), toml.get("model"))
    fc = from_dict(FeatureConfig, toml.get("features"))
    if init is None and toml.get("features") is None:
        from ..datasets.manifest import shared_front_end

        stored = shared_front_end(data)
        if stored is not None and stored != fc:
            fc = stored
            level = "as recorded" if fc.level_db is None else f"input level {fc.level_db:g} dBFS"
            console().print(
                f"front end: that of the datasets' stored features ({level}); a \\[features] table overrides it"
            )
    initial_state = None
    if init is not None:
        from ..training.finetune import load_start

        if model != "unet-bilstm":
            raise BadInput(f"--init starts a unet-bilstm from a release's weights, not --model {model}")
        if channels or lstm_hidden or toml.get("model") or toml.get("features"):
            raise BadInput(
                "--init takes the model and feature configs from the release: "
                "drop --channels, --lstm-hidden and the [model]/[features] tables"
            )
        start = load_start(init)
        if start.architecture != model:
            raise BadInput(f"--init {init}: a {start.architecture} model, not {model}")
        mc = from_dict(model_config_class(model), start.model_config)
        fc = start.feature_config
        initial_state = start.state
        console().print(f"starting from the weights of {start.source} (ignored when resuming)")
    sources = [str(d.resolve()) for d in data]
    if model == "embedding":
        from ..training.embedding import EmbeddingSpec, EmbeddingTrainConfig

        tc = override(
            from_dict(EmbeddingTrainConfig, toml.get("train")),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            precision=precision,
            valid_every=val_every,
            seed=seed,
        )
        spec = EmbeddingSpec(to_dict(mc), fc, tc, data=sources)
    else:
        tc = override(
            from_dict(TrainConfig, toml.get("train")),
            steps=steps,
            batch_size=batch_size,
            crop_s=crop_s,
            lr=lr,
            pitch_balanced=pitch_balanced,
            precision=precision,
            val_every=val_every,
            seed=seed,
        )
        if channels:
            try:
                mc = override(mc, channels=tuple(int(c) for c in channels.split(",")))
            except ValueError:
                raise BadInput(f"--channels must be comma-separated integers, got {channels!r}") from None
        mc = override(mc, lstm_hidden=lstm_hidden)
        decode = from_dict(DecodeConfig, toml.get("decode"))
        if model == "transformer":
            from ..training.seq2seq import DomainConfig, Seq2SeqSpec

            for d in unlabeled or []:
                if not d.is_dir():
                    raise BadInput(f"--unlabeled {d}: no such folder")
            dc = override(DomainConfig(), weight=domain_weight, warmup_steps=domain_warmup)
            spec = Seq2SeqSpec(
                model,
                to_dict(mc),
                fc,
                tc,
                decode,
                data=sources,
                unlabeled=[str(d.resolve()) for d in unlabeled or []],
                domain_config=dc,
            )
        else:
            from ..training.loop import RunSpec

            nc = noise_config(
                toml.get("noise"),
                rounds=noise_rounds,
                steps=noise_steps,
                target=noise_target,
                kind=noise_kind,
                domain=noise_domain,
            )
            spec = RunSpec(model, to_dict(mc), fc, tc, decode, data=sources, noise=nc)
    if nproc > 1:
        console().print(f"training on {nproc} processes ({'NCCL' if dev.startswith('cuda') else 'gloo'})")
    best, is_main = run_training(
        spec,
        out=out,
        resume=resume,
        device=dev,
        nproc=nproc,
        initial_state=initial_state,
        progress=render_training,
    )
    if is_main:
        console().print(f"done: best checkpoint {best}")
