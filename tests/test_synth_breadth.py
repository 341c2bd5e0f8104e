"""Broader training data: lossy codecs, recorded and synthetic IRs mixed, random polyphony, stored
features at a model's input level, and datasets made before these options existed."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from conftest import sine
from test_synth import TIM, config, runner, wide_console, write_piece  # noqa: F401 - wide_console: autouse fixture

from amtcli.cli import app
from amtcli.synth.augment import (
    CODECS,
    NO_AUGMENT,
    AugmentConfig,
    apply_codec,
    augment_audio,
    use_ir_file,
)
from amtcli.synth.dataset import build_dataset, read_manifest
from amtcli.synth.random_midi import random_piece, write_random_pieces

SR = 16000


def _clicks(seconds: float = 2.0) -> np.ndarray:
    x = np.zeros(int(seconds * SR), np.float32)
    for k in range(1, int(seconds * 4)):
        n = np.arange(800)
        x[k * SR // 4 : k * SR // 4 + 800] += 0.5 * np.sin(2 * np.pi * 440 * n / SR) * np.exp(-n / 200)
    return x


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_codec_round_trip_keeps_length_and_timing_and_loses_something(codec):
    x = _clicks()
    y = apply_codec(x, codec=codec, level=1.0, sample_rate=SR)
    assert y.shape == x.shape and y.dtype == np.float32
    c = np.correlate(y[: SR // 2], x[: SR // 2], "full")
    assert abs(int(np.argmax(c)) - (SR // 2 - 1)) <= 1  # aligned to the sample
    err = np.abs(y - x).mean() / np.abs(x).mean()
    assert 1e-4 < err < 0.5  # lossy, but the same sound


def test_codec_is_drawn_recorded_and_off_by_default():
    x = sine(440, 1.0)
    on = dataclasses.replace(NO_AUGMENT, codec_p=1.0)
    y, rec = augment_audio(x, sample_rate=SR, config=on, rng=np.random.default_rng(3))
    (step,) = [r for r in rec if r["name"] == "codec"]
    assert step["codec"] in CODECS and 0.3 <= step["level"] <= 1.0
    assert not np.array_equal(y, x)
    # off: no draws are taken, so an item's other augmentations are what they were before codecs existed
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    a, rec_a = augment_audio(x, sample_rate=SR, config=AugmentConfig(), rng=rng_a)
    assert not any(r["name"] == "codec" for r in rec_a)
    b, _ = augment_audio(x, sample_rate=SR, config=AugmentConfig(codec_p=0.0), rng=rng_b)
    assert np.array_equal(a, b) and rng_a.random() == rng_b.random()


def test_ir_share_mixes_recorded_and_synthetic_reverbs(tmp_path):
    assert all(use_ir_file(s, 1.0) for s in range(50))
    assert not any(use_ir_file(s, 0.0) for s in range(50))
    picks = [use_ir_file(s, 0.5) for s in range(400)]
    assert 0.35 < np.mean(picks) < 0.65
    ir = np.zeros(800, np.float32)
    ir[0], ir[400] = 1.0, 0.5
    sf.write(tmp_path / "room.wav", ir, SR)
    cfg = dataclasses.replace(NO_AUGMENT, reverb_p=1.0, ir_dir=str(tmp_path), ir_share=0.5)
    kinds = set()
    for seed in range(30):
        _, rec = augment_audio(
            sine(440, 0.5), sample_rate=SR, config=cfg, rng=np.random.default_rng(seed), irs=[tmp_path / "room.wav"]
        )
        kinds.add("file" if rec[0]["ir"].endswith("room.wav") else rec[0]["ir"])
    assert kinds == {"file", "synthetic"}


def test_random_pieces_are_seeded_and_span_the_keyboard(tmp_path):
    a = write_random_pieces(tmp_path / "a", 3, duration_s=20.0, seed=4)
    b = write_random_pieces(tmp_path / "b", 3, duration_s=20.0, seed=4)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != a[1].read_bytes()
    pitches, polyphony = [], []
    for path in a:
        pm = pretty_midi.PrettyMIDI(str(path))
        (inst,) = pm.instruments
        assert len(inst.notes) > 20
        pitches += [n.pitch for n in inst.notes]
        assert all(0 <= n.start < n.end and 1 <= n.velocity <= 127 for n in inst.notes)
        roll = inst.get_piano_roll(fs=20)
        polyphony.append(int((roll > 0).sum(0).max()))
    assert min(pitches) >= 21 and max(pitches) <= 108 and max(pitches) - min(pitches) > 48
    assert max(polyphony) >= 4  # chords, not only lines
    # a rerun leaves existing files alone (continues), another seed gives other pieces
    mtime = a[0].stat().st_mtime_ns
    write_random_pieces(tmp_path / "a", 4, duration_s=20.0, seed=4)
    assert a[0].stat().st_mtime_ns == mtime and len(list((tmp_path / "a").glob("*.mid"))) == 4
    other = random_piece(20.0, np.random.default_rng([5, 0]))
    assert [n.pitch for n in other.instruments[0].notes] != [
        n.pitch for n in pretty_midi.PrettyMIDI(str(a[0])).instruments[0].notes
    ]


def test_cli_make_random_then_render(tmp_path):
    out = tmp_path / "random"
    result = runner.invoke(app, ["synth", "--make-random", str(out), "--count", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.mid"))) == 2
    result = runner.invoke(app, ["synth", str(out), "-o", str(tmp_path / "ds"), "-s", TIM, "--excerpt-s", "2"])
    assert result.exit_code == 0, result.output
    assert len(read_manifest(tmp_path / "ds" / "manifest.jsonl")) == 2
    bad = runner.invoke(app, ["synth", str(out), "--make-random", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--make-random takes no SOURCES" in bad.stderr


def test_stored_features_at_a_model_input_level(tmp_path):
    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import FeatureConfig, from_dict
    from amtcli.datasets.manifest import same_front_end, stored_feature_config

    src = write_piece(tmp_path / "a.mid", n=8)
    build_dataset([src], tmp_path / "ds", config=config(excerpt_s=1.5, features=True, feature_level_db=-30.0))
    (rec,) = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    fc = FeatureConfig(level_db=-30.0)
    stored = stored_feature_config(tmp_path / "ds")
    assert from_dict(FeatureConfig, stored) == fc
    assert same_front_end(stored, fc) and not same_front_end(stored, FeatureConfig())
    feats = np.load(tmp_path / "ds" / rec["features"])
    audio = load_audio(tmp_path / "ds" / rec["audio"])
    again = compute_features(audio, config=fc)
    assert np.abs(np.exp(feats) - np.exp(again)).max() < 0.01
    plain = compute_features(audio, config=FeatureConfig())
    assert np.abs(np.exp(feats) - np.exp(plain)).max() > 0.01  # the level was applied


def test_level_db_needs_features(tmp_path):
    src = write_piece(tmp_path / "a.mid")
    result = runner.invoke(app, ["synth", str(src), "-o", str(tmp_path / "ds"), "-s", TIM, "--level-db", "-24"])
    assert result.exit_code != 0 and "--level-db" in result.stderr and "--features" in result.stderr
    result = runner.invoke(app, ["synth", str(src), "-o", str(tmp_path / "ds"), "-s", TIM, "--ir-share", "0.5"])
    assert result.exit_code != 0 and "--ir-share needs --ir-dir" in result.stderr
    assert not (tmp_path / "ds").exists()


def test_datasets_made_before_the_new_options_still_resume(tmp_path):
    src = write_piece(tmp_path / "a.mid")
    base = ["synth", str(src), "-o", str(tmp_path / "ds"), "-s", TIM, "--excerpt-s", "1"]
    assert runner.invoke(app, base).exit_code == 0
    meta_path = tmp_path / "ds" / "dataset.json"
    meta = json.loads(meta_path.read_text())
    for key in ("ir_share", "codec_p", "codec_level", "codecs"):  # as an older amt wrote it
        del meta["config"]["augment"][key]
    del meta["config"]["feature_level_db"]
    meta_path.write_text(json.dumps(meta))
    again = runner.invoke(app, base)
    assert again.exit_code == 0 and "items already there" in again.output, again.output
    changed = runner.invoke(app, base + ["--codec-p", "0.5"])
    assert changed.exit_code != 0 and "different settings" in changed.stderr
