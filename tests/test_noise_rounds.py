"""Adversarial noise rounds: the level search, the two noise domains, rounds in the loop and their resume."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import sine

from amtcli.config import FeatureConfig, TrainConfig
from amtcli.errors import BadInput
from amtcli.training.noise import NoiseConfig, Noiser, parse_target, search_noise_level

TINY = {"channels": [4, 8, 8], "lstm_hidden": 8}


# ------------------------------------------------------------------------------------ search


def amplitude_response(exponent: float, scale: float):
    """delta = scale * (noise amplitude ratio) ** exponent, a known monotone response."""
    calls = []

    def delta(snr_db: float) -> float:
        calls.append(snr_db)
        return scale * (10 ** (-snr_db / 20)) ** exponent

    return delta, calls


@pytest.mark.parametrize(
    "exponent, scale, start, band",
    [
        (2.0, 30.0, 30.0, (0.1, 0.3)),  # too little noise at the start: the level must go up
        (2.0, 30.0, -20.0, (0.1, 0.3)),  # far too much: down
        (4.0, 500.0, 30.0, (0.20, 0.22)),  # steep response, narrow band: needs the bisection
        (1.0, 2.0, 0.0, (0.1, 0.3)),
    ],
)
def test_search_lands_inside_the_band(exponent, scale, start, band):
    delta, calls = amplitude_response(exponent, scale)
    res = search_noise_level(delta, start_snr_db=start, target=band, factor=2.0, max_iters=20)
    assert res.converged
    assert band[0] <= res.delta <= band[1]
    assert delta(res.snr_db) == pytest.approx(res.delta)  # the reported level is the one that gave it
    # the analytic level where delta enters the band: the answer must lie between the band's ends
    snr_lo = -20 / exponent * math.log10(band[0] / scale)
    snr_hi = -20 / exponent * math.log10(band[1] / scale)
    assert snr_hi - 1e-9 <= res.snr_db <= snr_lo + 1e-9
    assert len(res.history) == len(calls) - 1 <= 20


def test_first_moves_are_whole_factors_then_halves():
    delta, _ = amplitude_response(2.0, 30.0)
    res = search_noise_level(delta, start_snr_db=40.0, target=(0.1, 0.3), factor=2.0, max_iters=20)
    snrs = [s for s, _ in res.history]
    step = 20 * math.log10(2.0)
    assert snrs[1] == pytest.approx(40.0 - step)  # more noise: amplitude x2 (-6 dB)
    assert all(b < a for a, b in zip(snrs, snrs[1:3]))


def test_search_reports_when_it_cannot_reach_the_band():
    res = search_noise_level(lambda snr: 0.0, start_snr_db=30.0, target=(0.1, 0.3), max_iters=8)
    assert not res.converged and len(res.history) == 8
    assert res.snr_db == pytest.approx(30.0 - 7 * 20 * math.log10(2))  # kept climbing, every try at delta 0
    # a response that jumps over the band: the closest level is kept and flagged
    res = search_noise_level(lambda snr: 0.05 if snr > 10 else 0.9, start_snr_db=30.0, target=(0.1, 0.3), max_iters=10)
    assert not res.converged and res.delta in (0.05, 0.9)
    assert min(abs(res.delta - 0.1), abs(res.delta - 0.3)) == min(
        min(abs(d - 0.1), abs(d - 0.3)) for _, d in res.history
    )
    # the range bound stops a hopeless search early
    res = search_noise_level(
        lambda snr: 0.0, start_snr_db=-30.0, target=(0.1, 0.3), max_iters=50, snr_range_db=(-40.0, 80.0)
    )
    assert res.history[-1][0] == -40.0 and len(res.history) < 50


def test_bad_noise_options_are_one_line_errors():
    with pytest.raises(BadInput, match="LOW:HIGH"):
        parse_target("0.3")
    with pytest.raises(BadInput, match="0 < LOW < HIGH"):
        parse_target("0.3:0.1")
    with pytest.raises(BadInput, match="noise-kind"):
        NoiseConfig(rounds=1, kind="purple").check()
    with pytest.raises(BadInput, match="noise-domain"):
        NoiseConfig(rounds=1, domain="spectral").check()


# ------------------------------------------------------------------------------------ domains


def _chord(duration_s=3.0):
    return sine(220.0, duration_s, amp=0.3) + sine(330.0, duration_s, amp=0.2) + sine(660.0, duration_s, amp=0.1)


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_feature_noise_puts_the_asked_power_in_and_matches_the_waveform_domain(tmp_path, kind):
    from amtcli.audio.features import compute_features
    from amtcli.audio.io import save_audio
    from amtcli.training.data import Example

    fc = FeatureConfig()
    audio = _chord()
    path = save_audio(tmp_path / "chord.wav", audio, sample_rate=fc.sample_rate)
    from amtcli.audio.io import load_audio

    feats = compute_features(load_audio(path, sample_rate=fc.sample_rate), config=fc)
    t = 64
    start = 20
    x = torch.from_numpy(np.ascontiguousarray(feats[start : start + t]))[None]
    examples = [Example("chord", feats, None, path)]
    snr = 10.0
    clean_power = float(((torch.exp(x) - fc.log_offset).clamp_min(0) ** 2).mean())
    got = {}
    for domain in ("feature", "waveform"):
        noiser = Noiser(fc, kind=kind, domain=domain)
        draws = [
            noiser(x, snr_db=snr, rng=np.random.default_rng(i), crops=[(0, start)], examples=examples) for i in range(6)
        ]
        noisy = torch.cat(draws)
        power = float(((torch.exp(noisy.double()) - fc.log_offset).clamp_min(0) ** 2).mean())
        added = power - clean_power
        # the noise power added is the asked fraction of the signal's CQT power (to within ~1.5 dB)
        assert 10 * math.log10(clean_power / added) == pytest.approx(snr, abs=1.5), domain
        got[domain] = noisy.mean(dim=(0, 1))  # mean log magnitude per bin
    clean_profile = x[0].mean(dim=0)
    change = (got["waveform"] - clean_profile).abs().mean()
    disagreement = (got["feature"] - got["waveform"]).abs().mean()
    assert change > 1.0  # the noise is plainly there ...
    assert disagreement < 0.25 * change  # ... and both domains put the same noise there


def test_feature_noise_keeps_shape_dtype_and_is_seeded():
    fc = FeatureConfig()
    noiser = Noiser(fc, kind="white")
    x = torch.full((2, 40, fc.n_bins), math.log(fc.log_offset)) + torch.rand(2, 40, fc.n_bins)
    a = noiser(x, snr_db=20.0, rng=np.random.default_rng(3))
    b = noiser(x, snr_db=20.0, rng=np.random.default_rng(3))
    c = noiser(x, snr_db=0.0, rng=np.random.default_rng(3))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert (c - x).abs().mean() > (a - x).abs().mean() > 0


# ------------------------------------------------------------------------------- in the loop


def _spec(ds, *, rounds, steps=2, noise_steps=2):
    from amtcli.training.loop import RunSpec

    tc = TrainConfig(
        steps=steps,
        batch_size=2,
        crop_s=2.0,
        val_every=1000,
        checkpoint_every=1,
        warmup_steps=1,
        lr=3e-3,
        calibrate=False,
    )
    nc = NoiseConfig(rounds=rounds, steps=noise_steps, target=(0.05, 0.5), search_batches=1, max_iters=6)
    return RunSpec("unet-bilstm", TINY, FeatureConfig(), tc, data=[str(ds)], noise=nc)


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_noise_rounds_log_their_level_and_resume_exactly(sine_dataset, tmp_path):
    from amtcli.training.checkpoints import load_checkpoint
    from amtcli.training.loop import train_transcriber

    straight = tmp_path / "straight"
    events = []
    train_transcriber(_spec(sine_dataset, rounds=2), out_dir=straight, on_event=lambda k, r: events.append((k, r)))
    records = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    searches = [r for r in records if "noise_search" in r]
    assert [r["step"] for r in searches] == [2, 4]  # after the clean phase, then after round 1
    for r in searches:
        s = r["noise_search"]
        assert {"snr_db", "level", "delta", "converged", "iterations", "kind", "domain"} <= set(s)
        assert s["level"] == pytest.approx(10 ** (-s["snr_db"] / 20))
        if s["converged"]:
            assert 0.05 <= s["delta"] <= 0.5
    noisy_steps = [r for r in records if "noise_snr_db" in r]
    assert noisy_steps and all(r["step"] > 2 for r in noisy_steps)
    assert sum(k == "noise_search" for k, _ in events) == 2
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert a["step"] == 6

    # the same run, interrupted after step 4 (round 1 done, round 2's level not searched yet) and resumed
    split = tmp_path / "split"

    def stop_at_4(kind, rec):  # the step event comes after the step's checkpoint
        if kind == "step" and rec["step"] == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_transcriber(_spec(sine_dataset, rounds=2), out_dir=split, on_event=stop_at_4)
    assert load_checkpoint(split / "checkpoints" / "last.pt")["step"] == 4
    train_transcriber(_spec(sine_dataset, rounds=2), out_dir=split, resume=True)
    b = load_checkpoint(split / "checkpoints" / "last.pt")
    assert b["step"] == 6
    assert json.loads(a["phase"])["levels"] == json.loads(b["phase"])["levels"]
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)


@pytest.mark.slow
def test_noise_rounds_keep_the_best_mean_of_clean_and_noisy_validation(sine_dataset, tmp_path):
    """Clean F1 alone would keep the least noise-trained checkpoint: during the rounds best.pt follows the
    mean of clean note F1 and note F1 under noise at a fixed level, and so do the decoding thresholds."""
    from dataclasses import replace

    from amtcli.training.loop import train_transcriber

    spec = _spec(sine_dataset, rounds=1, steps=2, noise_steps=3)
    spec = replace(spec, train_config=replace(spec.train_config, val_every=1, calibrate=True))
    events = []
    out = tmp_path / "run"
    train_transcriber(spec, out_dir=out, on_event=lambda k, r: events.append((k, r)))
    vals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in vals if "val" in r]
    clean = [r for r in vals if "noise_round" not in r]
    rounds = [r for r in vals if r.get("noise_round") == 1]
    assert clean and rounds
    assert all("robust_note_f1" not in r["val"] for r in clean)
    for r in rounds:
        v = r["val"]
        assert v["noisy_snr_db"] == 0.0
        assert v["robust_note_f1"] == pytest.approx(0.5 * (v["note_f1"] + v["noisy_note_f1"]))
    # the best of the rounds is the best robust score (the clean phase's best does not carry over)
    assert rounds[-1]["best_f1"] == pytest.approx(max(r["val"]["robust_note_f1"] for r in rounds))
    assert [r["metric"] for k, r in events if k == "val"][-1] == "robust_note_f1"
    # the decoding thresholds suit both: each setting scored on the clean and the noisy validation
    grid = json.loads((out / "calibration.json").read_text())["grid"]
    assert all(len(row["note_f1_by_set"]) == 2 for row in grid)
    assert all(row["note_f1"] == pytest.approx(sum(row["note_f1_by_set"]) / 2) for row in grid)
