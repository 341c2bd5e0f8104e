"""Input level normalisation: the same recording at any gain gives the same features and notes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import render_sines

from amtcli.audio.level import frame_levels_db, measure_level_db, normalize_level
from amtcli.config import FeatureConfig

SR = 16000


@pytest.fixture
def music(three_notes):
    return render_sines(three_notes, duration_s=2.2)


@pytest.mark.parametrize("gain_db", [0.0, -20.0, -40.0, 12.0])
def test_level_moves_exactly_with_the_gain(music, gain_db):
    base = measure_level_db(music, sample_rate=SR)
    moved = measure_level_db(music * np.float32(10 ** (gain_db / 20)), sample_rate=SR)
    assert moved == pytest.approx(base + gain_db, abs=1e-3)


def test_level_ignores_a_few_loud_clicks_that_peak_normalisation_follows(music):
    clicked = music.copy()
    clicked[[3000, 9000, 20000]] = 1.0  # three one-sample clicks, far above the music's peak
    assert 20 * np.log10(np.abs(clicked).max() / np.abs(music).max()) > 5  # peak normalisation would move
    assert abs(measure_level_db(clicked, sample_rate=SR) - measure_level_db(music, sample_rate=SR)) < 1.0


def test_level_ignores_silence_around_the_music(music):
    padded = np.concatenate([np.zeros(SR * 5, np.float32), music, np.zeros(SR * 5, np.float32)])
    assert measure_level_db(padded, sample_rate=SR) == pytest.approx(measure_level_db(music, sample_rate=SR), abs=0.5)


def test_silence_is_left_alone():
    silence = np.zeros(SR, np.float32)
    assert measure_level_db(silence, sample_rate=SR) is None
    out, gain = normalize_level(silence, sample_rate=SR, target_db=-20)
    assert gain == 0.0 and not out.any()


def test_sixteen_bit_quantisation_noise_is_silence(rng):
    lsb = (rng.integers(-1, 2, SR * 2) / 32768.0).astype(np.float32)  # a "silent" 16-bit file
    assert measure_level_db(lsb, sample_rate=SR) is None
    assert normalize_level(lsb, sample_rate=SR, target_db=-24)[1] == 0.0


def test_normalize_reaches_the_target_and_limits_the_gain(music):
    out, gain = normalize_level(music, sample_rate=SR, target_db=-25.0)
    assert measure_level_db(out, sample_rate=SR) == pytest.approx(-25.0, abs=1e-3)
    tiny = music * np.float32(10 ** (-65 / 20))  # a very quiet take (level -87 dBFS): only +60 dB is given
    _, gain = normalize_level(tiny, sample_rate=SR, target_db=-25.0)
    assert gain == 60.0


def test_frame_levels_of_a_short_signal():
    assert frame_levels_db(np.full(10, 0.5, np.float32), sample_rate=SR).shape == (1,)


def test_features_are_blind_to_gain_only_with_a_level(music):
    from amtcli.audio.features import compute_features

    fc = FeatureConfig(level_db=-25.0)
    loud = compute_features(music, config=fc)
    quiet = compute_features(music * np.float32(0.01), config=fc)
    np.testing.assert_allclose(quiet, loud, atol=1e-4)
    raw = FeatureConfig()
    assert (
        np.abs(compute_features(music * np.float32(0.01), config=raw) - compute_features(music, config=raw)).max() > 1.0
    )


def test_a_tiny_model_gives_the_same_output_under_a_gain_change(music):
    from amtcli.inference.transcribe import transcribe_full
    from amtcli.zoo import load_model

    net, release = load_model("tiny-test", device="cpu")
    net.feature_config = dataclasses.replace(net.feature_config, level_db=-25.0)
    runs = [
        transcribe_full(music * np.float32(10 ** (g / 20)), model=(net, release), device="cpu") for g in (0, -20, -40)
    ]
    for other in runs[1:]:
        for key in ("onset", "frame"):
            np.testing.assert_allclose(other.posteriors[key], runs[0].posteriors[key], atol=1e-4)
        assert len(other.notes) == len(runs[0].notes)
    # without the level the same model's posteriors follow the gain (so the check above can fail)
    net.feature_config = dataclasses.replace(net.feature_config, level_db=None)
    a = transcribe_full(music, model=(net, release), device="cpu").posteriors["frame"]
    b = transcribe_full(music * np.float32(0.01), model=(net, release), device="cpu").posteriors["frame"]
    assert np.abs(a - b).max() > 1e-3


def test_training_uses_stored_features_only_from_the_same_front_end(tmp_path):
    """Stored `amt synth --features` of another front end (here: no input level) are not used
    for a model that reads audio at a set level; they are computed anew (the old check was the width)."""
    import json
    import shutil

    from conftest import store_features, write_sine_dataset

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.training.data import load_examples

    root = write_sine_dataset(tmp_path / "ds", n_items=2, duration_s=2.0)
    raw = FeatureConfig()
    store_features(root, feature_config=raw, gain=0.01)  # stored at another level on purpose
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]

    stored = load_examples([root], split="train", feature_config=raw)[0].features
    assert isinstance(stored, np.memmap)  # same front end: the stored file is used
    leveled = FeatureConfig(level_db=-24.0)
    fresh = load_examples([root], split="train", feature_config=leveled)[0].features
    expect = compute_features(load_audio(root / rows[0]["audio"], sample_rate=SR), config=leveled)
    np.testing.assert_allclose(fresh, expect, atol=1e-5)
    shutil.rmtree(root)
