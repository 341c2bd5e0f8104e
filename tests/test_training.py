import json

import numpy as np
import pytest
import torch

from amtcli.config import FeatureConfig, TrainConfig
from amtcli.errors import BadInput, OutputExists
from amtcli.training.checkpoints import load_checkpoint
from amtcli.training.loop import RunSpec, lr_at, train_transcriber

TINY = {"channels": [4, 8, 8], "lstm_hidden": 8}


def _spec(ds, steps, **kw):
    tc = TrainConfig(
        steps=steps, batch_size=2, crop_s=2.0, val_every=1000, checkpoint_every=2, warmup_steps=2, lr=3e-3, **kw
    )
    return RunSpec("unet-bilstm", TINY, FeatureConfig(), tc, data=[str(ds)])


def test_resume_continues_exactly(sine_dataset, tmp_path):
    straight = tmp_path / "straight"
    train_transcriber(_spec(sine_dataset, 4), out_dir=straight)
    split = tmp_path / "split"
    train_transcriber(_spec(sine_dataset, 2), out_dir=split)
    train_transcriber(_spec(sine_dataset, 4), out_dir=split, resume=True)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(split / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    lines = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert lines and all(np.isfinite(r["loss"]) for r in lines if "loss" in r)


def test_refuses_to_clobber_and_to_resume_nothing(sine_dataset, tmp_path):
    run = tmp_path / "run"
    train_transcriber(_spec(sine_dataset, 1), out_dir=run)
    with pytest.raises(OutputExists, match="already there"):
        train_transcriber(_spec(sine_dataset, 1), out_dir=run)
    with pytest.raises(BadInput, match="nothing to resume"):
        train_transcriber(_spec(sine_dataset, 1), out_dir=tmp_path / "empty", resume=True)


def test_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, lr_min=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    assert lr_at(55, cfg) == pytest.approx((1e-3 + 1e-5) / 2)


def test_debias_undoes_the_pitch_balance_prior():
    from amtcli.nets import build_model
    from amtcli.notes import NoteArray
    from amtcli.training.calibrate import debias_pitch_balanced
    from amtcli.training.data import Example
    from amtcli.training.losses import count_positives, pitch_balance_weights

    fc = FeatureConfig()
    # key 39 (C4) sounds in half of 100 frames, every other key never
    notes = NoteArray.from_lists([(0.0, 50 / fc.frame_rate, 60)])
    ex = Example("x", np.zeros((100, fc.n_bins), np.float32), notes)
    model = build_model("unet-bilstm", TINY)
    before = model.key_bias.detach().clone()
    offsets = debias_pitch_balanced(model, [ex])
    w = pitch_balance_weights(count_positives([ex], feature_config=fc))
    shift = model.key_bias.detach() - before
    np.testing.assert_allclose(shift[:, 1].numpy(), -np.log(w["frame"][1] / w["frame"][0]), rtol=1e-5)
    assert offsets["frame"][39] == pytest.approx(0.0, abs=0.05)  # balanced key: (almost) no shift
    assert (np.delete(offsets["frame"], 39) < -3).all()  # silent keys: pushed far down
    assert torch.equal(shift[:, 3], torch.zeros(88))  # velocity is not a weighted head
