"""Augmentation: recorded, reproducible from the seed, and never shifting the audio in time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import sine

from amtcli.synth.augment import (
    NO_AUGMENT,
    AugmentConfig,
    apply_ir,
    augment_audio,
    augment_preset,
    draw_transpose,
    load_ir,
    synthetic_ir,
)

SR = 16000
ALL_ON = AugmentConfig(reverb_p=1.0, eq_p=1.0, lowpass_p=1.0, noise_p=1.0)


def test_records_and_reproducibility():
    x = sine(440, 2.0)
    a, rec_a = augment_audio(x, sample_rate=SR, config=ALL_ON, rng=np.random.default_rng(5))
    b, rec_b = augment_audio(x, sample_rate=SR, config=ALL_ON, rng=np.random.default_rng(5))
    c, rec_c = augment_audio(x, sample_rate=SR, config=ALL_ON, rng=np.random.default_rng(6))
    assert np.array_equal(a, b) and rec_a == rec_b
    assert not np.array_equal(a, c) and rec_a != rec_c
    assert [r["name"] for r in rec_a][:5] == ["reverb", "eq", "lowpass", "gain", "noise"]
    assert a.shape == x.shape and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    rev = rec_a[0]
    assert rev["ir"] == "synthetic" and 0.2 <= rev["rt60_s"] <= 1.5
    noise = rec_a[4]
    assert noise["kind"] in ("white", "pink", "brown") and 10 <= noise["snr_db"] <= 40


def test_rebuild_from_records():
    """The recorded parameters alone give back the augmented audio (nothing hidden)."""
    from amtcli.audio.noise import mix_noise
    from amtcli.synth.augment import apply_eq, apply_lowpass

    x = sine(330, 1.5)
    y, recs = augment_audio(x, sample_rate=SR, config=ALL_ON, rng=np.random.default_rng(11))
    r = {d["name"]: d for d in recs}
    z = apply_ir(
        x,
        synthetic_ir(
            rt60_s=r["reverb"]["rt60_s"],
            drr_db=r["reverb"]["drr_db"],
            sample_rate=SR,
            rng=np.random.default_rng(r["reverb"]["ir_seed"]),
        ),
    )
    z = apply_eq(z, [tuple(b) for b in r["eq"]["bands"]], sample_rate=SR)
    z = apply_lowpass(z, cutoff_hz=r["lowpass"]["cutoff_hz"], order=r["lowpass"]["order"], sample_rate=SR)
    z = z * (0.9 / np.abs(z).max() * 10 ** (r["gain"]["gain_db"] / 20))
    z = mix_noise(
        z, snr_db=r["noise"]["snr_db"], kind=r["noise"]["kind"], rng=np.random.default_rng(r["noise"]["noise_seed"])
    )
    if "limit" in r:
        z = z * r["limit"]["scale"]
    # parameters are rounded in the manifest: close, not bit-equal
    assert np.corrcoef(y, z)[0, 1] > 0.99


def test_none_preset_only_normalises():
    x = sine(440, 1.0, amp=0.1)
    y, recs = augment_audio(x, sample_rate=SR, config=augment_preset("none"), rng=np.random.default_rng(0))
    assert recs == []
    np.testing.assert_allclose(y, x * (0.9 / np.abs(x).max()), rtol=1e-5)


def test_reverb_keeps_timing():
    x = np.zeros(SR, np.float32)
    x[5000] = 1.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        ir = synthetic_ir(rt60_s=1.2, drr_db=-3.0, sample_rate=SR, rng=rng)
        assert ir[0] == 1.0
        y = apply_ir(x, ir)
        assert len(y) == len(x)
        assert np.abs(y[:5000]).max() < 1e-6 and np.argmax(np.abs(y)) == 5000  # FFT round-off only
        # the tail is there: RT60 of the energy decay roughly as asked
        e = np.cumsum(ir[::-1] ** 2)[::-1]
        t60 = np.argmax(10 * np.log10(e / e[1]) < -30) / SR * 2  # T30 doubled
        assert 0.8 < t60 < 1.6


def test_ir_files_start_at_their_direct_path(tmp_path):
    from amtcli.audio.io import save_audio

    ir = np.zeros(4000, np.float32)
    ir[300] = 0.8  # 300 samples of delay before the direct sound
    ir[301:] = 0.05 * np.random.default_rng(0).standard_normal(3699) * np.exp(-np.arange(3699) / 500)
    save_audio(tmp_path / "room.wav", ir, sample_rate=SR)
    loaded = load_ir(tmp_path / "room.wav", sample_rate=SR)
    assert loaded[0] == pytest.approx(1.0) and len(loaded) == 3700
    cfg = dataclasses.replace(NO_AUGMENT, reverb_p=1.0, ir_dir=str(tmp_path))
    x = np.zeros(SR, np.float32)
    x[1000] = 0.5
    y, recs = augment_audio(x, sample_rate=SR, config=cfg, rng=np.random.default_rng(0), irs=[tmp_path / "room.wav"])
    assert recs[0] == {"name": "reverb", "ir": str(tmp_path / "room.wav")}
    assert np.argmax(np.abs(y)) == 1000 and np.abs(y[:1000]).max() < 1e-6


def test_lowpass_removes_highs():
    from amtcli.synth.augment import apply_lowpass

    hi = sine(6000, 1.0)
    lo = sine(300, 1.0)
    assert np.abs(apply_lowpass(hi, cutoff_hz=2000, order=6, sample_rate=SR)[4000:]).max() < 0.01
    assert np.abs(apply_lowpass(lo, cutoff_hz=2000, order=6, sample_rate=SR)[4000:]).max() > 0.45


def test_draw_transpose():
    cfg = AugmentConfig(transpose_p=0.5, transpose_max=3)
    draws = [draw_transpose(cfg, np.random.default_rng(s)) for s in range(400)]
    assert set(draws) == {-3, -2, -1, 0, 1, 2, 3}
    assert 0.4 < draws.count(0) / 400 < 0.6
    assert all(draw_transpose(NO_AUGMENT, np.random.default_rng(s)) == 0 for s in range(20))
