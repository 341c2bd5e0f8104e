"""Does the token pipeline learn? A small Transformer on harmonic tones, in about 12 minutes on one core.

    nice -n 10 .venv/bin/python benchmarks/transformer_sanity.py --out /tmp/tx-sanity [--steps 2000]

Writes 150 items of 8 s of random overlapping harmonic tones (``tests/conftest.py``'s
``render_sines``: pitches 48-83, random velocities; every 15th item is validation), caches their
features, and trains a 0.5 M-parameter transformer (d_model 96, 2 + 2 layers) with
``train_seq2seq``. The validation note F1 in ``OUT/run/metrics.jsonl`` should climb well above
chance within 2000 steps; a flat F1 means the decoder never learned to read the audio.
Not a model to ship: tones, not music.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--frame-loss-weight", type=float, default=0.0)
    args = ap.parse_args()

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_sine_dataset

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import FeatureConfig, TrainConfig, to_dict
    from amtcli.training.seq2seq import Seq2SeqSpec, train_seq2seq

    fc = FeatureConfig()
    data = args.out / "data"
    if not (data / "manifest.jsonl").exists():
        write_sine_dataset(data, n_items=150, duration_s=8.0, seed=3)
        rows = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
        (data / "features").mkdir(exist_ok=True)
        for i, r in enumerate(rows):
            np.save(
                data / "features" / f"{r['id']}.npy",
                compute_features(load_audio(data / r["audio"], sample_rate=16000), config=fc),
            )
            r["features"] = f"features/{r['id']}.npy"
            r["split"] = "validation" if i % 15 == 0 else "train"
        (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        # the front end of the stored features, as `amt synth --features` records it (else they are recomputed)
        (data / "dataset.json").write_text(json.dumps({"feature_config": to_dict(fc)}))
    mc = {
        "conv_channels": [8, 16],
        "d_model": 96,
        "n_heads": 4,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "ff_dim": 256,
        "max_tokens": 160,
        "frame_loss_weight": args.frame_loss_weight,
    }
    tc = TrainConfig(
        steps=args.steps,
        batch_size=8,
        lr=1e-3,
        lr_min=5e-5,
        warmup_steps=100,
        val_every=500,
        val_items=10,
        checkpoint_every=500,
        threads=1,
        precision="bf16",
    )
    run = args.out / "run"
    t0 = time.time()
    train_seq2seq(
        Seq2SeqSpec("transformer", mc, fc, tc, data=[str(data)]),
        out_dir=run,
        resume=(run / "checkpoints" / "last.pt").exists(),
    )
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "val" in rec:
            print(
                json.dumps(
                    {
                        "step": rec["step"],
                        "note_f1": round(rec["val"]["note_f1"], 4),
                        "invalid_tokens_per_item": rec["val"]["invalid_tokens_per_item"],
                    }
                )
            )
    print(json.dumps({"wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
