"""amt synth: soundfont rendering, labels, onset timing, the dataset writer and its CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from typer.testing import CliRunner

from amtcli.cli import app, common
from amtcli.notes import NoteArray, midi_to_notes, notes_to_midi
from amtcli.synth.augment import NO_AUGMENT
from amtcli.synth.dataset import SynthConfig, build_dataset, item_id, read_manifest, split_of
from amtcli.synth.soundfont import FLUIDSYNTH_BLOCK, parse_programs, pretty_midi_soundfont, render_notes

SR = 16000
TIM = str(pretty_midi_soundfont())
TICK_S = 1 / 1920  # notes_to_midi writes 960 ticks per beat at 120 bpm
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(common, "_console", None)
    monkeypatch.setattr(common, "_err_console", None)


def write_piece(path, *, n=12, seed=0, pedal=True, start=0.25, program=0):
    """A MIDI file with ``n`` notes on a tick grid, a sustain pedal press and a drum track."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(resolution=960)
    inst = pretty_midi.Instrument(program=program)
    t = start
    for _ in range(n):
        on = round(t / TICK_S) * TICK_S
        dur = round(rng.uniform(0.1, 0.4) / TICK_S) * TICK_S
        inst.notes.append(
            pretty_midi.Note(
                velocity=int(rng.integers(40, 120)), pitch=int(rng.integers(48, 84)), start=on, end=on + dur
            )
        )
        t += rng.uniform(0.15, 0.5)
    if pedal:
        inst.control_changes += [pretty_midi.ControlChange(64, 127, 1.0), pretty_midi.ControlChange(64, 0, 2.0)]
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=0.5, end=0.6))
    pm.instruments += [inst, drums]
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))
    return path


def config(**kw):
    kw.setdefault("soundfonts", (TIM,))
    kw.setdefault("augment", NO_AUGMENT)
    return SynthConfig(**kw)


def same_notes(a: NoteArray, b: NoteArray, tol=TICK_S / 2 + 1e-9):
    a, b = a.sorted(), b.sorted()
    assert len(a) == len(b)
    assert a.pitch.tolist() == b.pitch.tolist()
    assert a.velocity.tolist() == b.velocity.tolist()
    np.testing.assert_allclose(a.onset_s, b.onset_s, atol=tol)
    np.testing.assert_allclose(a.offset_s, b.offset_s, atol=tol)


# ------------------------------------------------------------------------------ labels and audio


def test_label_is_source_after_transposition_whole_piece(tmp_path):
    src = write_piece(tmp_path / "src" / "a.mid")
    aug = dataclasses.replace(NO_AUGMENT, transpose_p=1.0, transpose_max=3)
    build_dataset([tmp_path / "src"], tmp_path / "ds", config=config(excerpt_s=0, augment=aug))
    (rec,) = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    assert rec["transpose"] in (-3, -2, -1, 1, 2, 3)
    expected = midi_to_notes(src, sustain=True).shifted(semitones=rec["transpose"])  # drums dropped
    label = midi_to_notes(tmp_path / "ds" / rec["label"])
    same_notes(label, expected)
    # the pedal (1.0-2.0 s) really lengthened some note, so the test sees sounding offsets
    assert np.any(midi_to_notes(src, sustain=True).offset_s != midi_to_notes(src).offset_s)
    audio, sr = sf.read(tmp_path / "ds" / rec["audio"])
    assert sr == SR and audio.ndim == 1
    assert rec["excerpt"] == [0.0, pytest.approx(expected.end_s + 1.0, abs=1e-5)]
    assert len(audio) == round(rec["duration_s"] * SR)


def test_label_is_excerpt_of_source(tmp_path):
    src = write_piece(tmp_path / "src" / "long.mid", n=60)
    build_dataset([src], tmp_path / "ds", config=config(excerpt_s=3.0, renders_per_piece=3))
    recs = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    assert len(recs) == 3 and len({r["excerpt"][0] for r in recs}) == 3
    source = midi_to_notes(src, sustain=True)
    for rec in recs:
        start, end = rec["excerpt"]
        assert end - start == pytest.approx(3.0)
        expected = source.clipped(start, end)
        same_notes(midi_to_notes(tmp_path / "ds" / rec["label"]), expected)
        assert rec["duration_s"] == pytest.approx(3.0)


def _onset(y, a, *, rel=0.02, window_s=0.3):
    """First sample from ``a`` above ``rel`` times the peak of the next ``window_s``."""
    seg = np.abs(y[a : a + int(window_s * SR)])
    return a + int(np.argmax(seg > rel * seg.max()))


def test_onsets_align_with_labels_within_1ms(tmp_path):
    """Onsets at every position inside FluidSynth's 64-sample block land where the labels say.

    The soundfont sample itself starts with a few ms of near-silence (its attack). That attack is
    measured independently with the bare fluidsynth program on a note placed exactly on a block
    boundary (where FluidSynth starts a note without delay), and is the same for every note:
    after removing it every onset must be within 1 ms of its label.
    """
    pitch, vel, prog = 60, 100, 24  # nylon guitar: clean attack, short release
    # raw FluidSynth, note exactly on a block boundary (0.5 s = 125 blocks at 16 kHz)
    ref_mid = notes_to_midi(NoteArray.from_lists([(0.5, 0.8, pitch, vel)], program=prog), tmp_path / "ref.mid")
    raw = tmp_path / "ref.raw"
    subprocess.run(
        [
            "fluidsynth",
            "-ni",
            "-q",
            "-F",
            str(raw),
            "-T",
            "raw",
            "-O",
            "float",
            "-E",
            "little",
            "-r",
            str(SR),
            "-R",
            "0",
            "-C",
            "0",
            TIM,
            str(ref_mid),
        ],
        check=True,
        capture_output=True,
    )
    ref = np.fromfile(raw, dtype="<f4").reshape(-1, 2).mean(axis=1)
    attack = _onset(ref, int(0.5 * SR) - 10) / SR - 0.5
    assert 0 <= attack < 0.02

    # 16 notes at onsets spread over every phase of the block, 1.2 s apart (tails have died out)
    block_s = FLUIDSYNTH_BLOCK / SR
    onsets = [0.3 + 1.2 * i + (i / 16) * block_s + 0.37 / SR for i in range(16)]
    notes = NoteArray.from_lists([(o, o + 0.3, pitch, vel) for o in onsets], program=prog)
    y = render_notes(notes, soundfont=TIM, sample_rate=SR)
    errors = []
    for o in onsets:
        a = int((o - 0.01) * SR)
        peak = np.abs(y[a : a + int(0.3 * SR)]).max()
        assert np.abs(y[a : a + int(0.008 * SR)]).max() < 0.01 * peak  # silence before: detection is clean
        found = _onset(y, a) / SR
        errors.append(found - attack - o)
    errors = np.array(errors) * 1000
    print("onset errors (ms):", np.round(errors, 3), "attack (ms):", round(attack * 1000, 3))
    assert np.abs(errors).max() < 1.0, errors
    # without the timing passes FluidSynth's block quantisation shows (the test can fail)
    y1 = render_notes(notes, soundfont=TIM, sample_rate=SR, timing_passes=1)
    err1 = np.array([_onset(y1, int((o - 0.01) * SR)) / SR - attack - o for o in onsets]) * 1000
    assert np.abs(err1).max() > 1.0


def test_render_is_deterministic_and_silent_without_notes():
    notes = NoteArray.from_lists([(0.1, 0.4, 60, 90), (0.3, 0.9, 67, 70)])
    a = render_notes(notes, soundfont=TIM, duration_s=1.0)
    b = render_notes(notes, soundfont=TIM, duration_s=1.0)
    assert a.dtype == np.float32 and a.shape == (SR,)
    assert np.array_equal(a, b) and np.abs(a).max() > 0.01
    assert not render_notes(NoteArray.empty(), soundfont=TIM, duration_s=0.5).any()
    drums = NoteArray.from_lists([(0.1, 0.4, 36)])
    drums.program[:] = -1
    assert not render_notes(drums, soundfont=TIM, duration_s=0.5).any()


def test_parse_programs():
    assert parse_programs("piano, guitar,33") == (0, 24, 33)
    assert parse_programs("Acoustic Grand Piano") == (0,)
    assert parse_programs(None) is None and parse_programs("") is None
    from amtcli.errors import BadInput

    with pytest.raises(BadInput):
        parse_programs("kazooo")
    with pytest.raises(BadInput):
        parse_programs("200")


def test_programs_option_sets_every_note(tmp_path):
    src = write_piece(tmp_path / "a.mid", program=5)
    build_dataset([src], tmp_path / "ds", config=config(excerpt_s=0, programs=(40, 73), renders_per_piece=4))
    recs = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    for rec in recs:
        (prog,) = rec["programs"]
        assert prog in (40, 73)
        assert set(midi_to_notes(tmp_path / "ds" / rec["label"]).program.tolist()) == {prog}
    assert {r["programs"][0] for r in recs} == {40, 73}  # 4 draws: both seen with this seed


# ------------------------------------------------------------------------------------ the dataset


def test_manifest_fields_and_files(tmp_path):
    for i in range(3):
        write_piece(tmp_path / "src" / f"p{i}.mid", seed=i, n=30)
    summary = build_dataset(
        [tmp_path / "src"], tmp_path / "ds", config=SynthConfig(soundfonts=(TIM,), excerpt_s=2.0, seed=7)
    )
    assert summary.items_written == 3
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["format_version"] == 1 and meta["config"]["excerpt_s"] == 2.0 and meta["feature_config"] is None
    recs = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    keys = {
        "id",
        "audio",
        "label",
        "features",
        "duration_s",
        "split",
        "source",
        "renderer",
        "soundfont",
        "programs",
        "transpose",
        "excerpt",
        "augment",
        "seed",
    }
    for rec in recs:
        assert keys <= set(rec)
        assert rec["split"] in ("train", "validation", "test")
        assert rec["renderer"] == "soundfont" and rec["soundfont"].endswith("TimGM6mb.sf2")
        assert rec["features"] is None and rec["audio"] == f"audio/{rec['id']}.flac"
        info = sf.info(tmp_path / "ds" / rec["audio"])
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
        assert info.frames == round(2.0 * SR)
        assert (tmp_path / "ds" / rec["label"]).exists()
        assert isinstance(rec["augment"], list) and all("name" in a for a in rec["augment"])
        assert rec["id"] == item_id(rec["source_key"], 0)


def test_features_are_cached_from_the_final_audio(tmp_path):
    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import FeatureConfig

    src = write_piece(tmp_path / "a.mid", n=8)
    build_dataset([src], tmp_path / "ds", config=SynthConfig(soundfonts=(TIM,), excerpt_s=1.5, features=True))
    (rec,) = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    feats = np.load(tmp_path / "ds" / rec["features"])
    fc = FeatureConfig()
    assert feats.dtype == np.float32 and feats.shape == (int(1.5 * SR) // fc.hop_length + 1, fc.n_bins)
    again = compute_features(load_audio(tmp_path / "ds" / rec["audio"]), config=fc)
    assert np.abs(np.exp(feats) - np.exp(again)).max() < 0.01  # only the 16-bit quantisation differs
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    from amtcli.config import from_dict

    assert from_dict(FeatureConfig, meta["feature_config"]) == fc


def test_splits_by_piece_are_deterministic_and_disjoint(tmp_path):
    from amtcli.synth.dataset import iter_midi_files

    paths = [write_piece(tmp_path / "c" / f"x{i:02d}.mid", seed=i, n=3) for i in range(60)]
    fr = (0.5, 0.25, 0.25)
    files = list(iter_midi_files([tmp_path / "c"]))
    first = [split_of(p, k, fractions=fr, split_by="file") for p, k in files]
    assert first == [split_of(p, k, fractions=fr, split_by="file") for p, k in files]
    assert set(first) == {"train", "validation", "test"}
    # a copy of a piece elsewhere is in the same split (the hash is of its contents)
    copy = tmp_path / "elsewhere" / "renamed.mid"
    copy.parent.mkdir()
    copy.write_bytes(paths[5].read_bytes())
    assert split_of(copy, "elsewhere/renamed.mid", fractions=fr, split_by="file") == first[5]
    # by folder: every performance of a piece shares its split
    for piece in range(12):
        for perf in range(3):
            write_piece(tmp_path / "asap" / f"piece{piece}" / f"perf{perf}.mid", seed=100 * piece + perf, n=3)
    by_piece = {}
    for p, k in iter_midi_files([tmp_path / "asap"]):
        by_piece.setdefault(p.parent.name, set()).add(split_of(p, k, fractions=fr, split_by="folder"))
    assert all(len(s) == 1 for s in by_piece.values())
    assert len(set.union(*by_piece.values())) > 1
    # --only-split: a dataset of held-out pieces only, disjoint from the training items
    build_dataset([tmp_path / "c"], tmp_path / "test", config=config(excerpt_s=0.5, split=fr), only_split=("test",))
    build_dataset([tmp_path / "c"], tmp_path / "train", config=config(excerpt_s=0.5, split=fr), only_split=("train",))
    test_src = {r["source"] for r in read_manifest(tmp_path / "test" / "manifest.jsonl")}
    train_src = {r["source"] for r in read_manifest(tmp_path / "train" / "manifest.jsonl")}
    assert test_src and train_src and not test_src & train_src
    assert len(test_src) == first.count("test") and len(train_src) == first.count("train")


def test_resume_skips_existing_items(tmp_path):
    for i in range(4):
        write_piece(tmp_path / "src" / f"p{i}.mid", seed=i)
    cfg = config(excerpt_s=1.0)
    s1 = build_dataset([tmp_path / "src"], tmp_path / "ds", config=cfg, max_files=2)
    assert s1.items_written == 2
    recs = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    mtimes = {r["id"]: (tmp_path / "ds" / r["audio"]).stat().st_mtime_ns for r in recs}
    s2 = build_dataset([tmp_path / "src"], tmp_path / "ds", config=cfg)
    assert (s2.items_written, s2.items_skipped) == (2, 2)
    for r in recs:  # the first two were not touched
        assert (tmp_path / "ds" / r["audio"]).stat().st_mtime_ns == mtimes[r["id"]]
    # a lost audio file is rendered again, and the manifest keeps one line per item
    lost = tmp_path / "ds" / recs[0]["audio"]
    lost.unlink()
    s3 = build_dataset([tmp_path / "src"], tmp_path / "ds", config=cfg)
    assert (s3.items_written, s3.items_skipped) == (1, 3) and lost.exists()
    ids = [r["id"] for r in read_manifest(tmp_path / "ds" / "manifest.jsonl")]
    assert len(ids) == len(set(ids)) == 4


def test_different_settings_are_refused_and_overwrite_restarts(tmp_path):
    from amtcli.errors import OutputExists

    src = write_piece(tmp_path / "a.mid")
    build_dataset([src], tmp_path / "ds", config=config(excerpt_s=1.0))
    with pytest.raises(OutputExists, match="excerpt_s"):
        build_dataset([src], tmp_path / "ds", config=config(excerpt_s=2.0))
    s = build_dataset([src], tmp_path / "ds", config=config(excerpt_s=2.0), overwrite=True)
    assert s.items_written == 1
    (rec,) = read_manifest(tmp_path / "ds" / "manifest.jsonl")
    assert rec["duration_s"] == 2.0


def test_max_hours_caps_the_dataset(tmp_path):
    for i in range(20):
        write_piece(tmp_path / "src" / f"p{i}.mid", seed=i)
    s = build_dataset([tmp_path / "src"], tmp_path / "ds", config=config(excerpt_s=1.0), max_hours=3.0 / 3600)
    assert s.stopped_at_cap and 3 <= s.items_written < 20  # chunks of 8 files: stops after the first


def test_items_reproduce_from_their_seed(tmp_path):
    src = write_piece(tmp_path / "a.mid", n=20)
    cfg = SynthConfig(soundfonts=(TIM,), excerpt_s=2.0, seed=3)  # default augmentation
    for d in ("one", "two"):
        build_dataset([src], tmp_path / d, config=cfg)
    (a,), (b,) = (read_manifest(tmp_path / d / "manifest.jsonl") for d in ("one", "two"))
    assert a == b
    assert np.array_equal(sf.read(tmp_path / "one" / a["audio"])[0], sf.read(tmp_path / "two" / b["audio"])[0])
    build_dataset([src], tmp_path / "three", config=dataclasses.replace(cfg, seed=4))
    (c,) = read_manifest(tmp_path / "three" / "manifest.jsonl")
    assert (c["seed"], c["excerpt"]) != (a["seed"], a["excerpt"])


# ------------------------------------------------------------------------------------------ CLI


def test_cli_skips_bad_midi_with_a_summary(tmp_path):
    src = tmp_path / "src"
    write_piece(src / "good.mid")
    (src / "garbage.mid").write_bytes(b"this is not a midi file at all")
    (src / "empty.mid").write_bytes(b"")
    notes_to_midi(NoteArray.empty(), src / "nonotes.mid")
    result = runner.invoke(
        app, ["synth", str(src), "-o", str(tmp_path / "ds"), "-s", TIM, "--excerpt-s", "1", "--augment", "none"]
    )
    assert result.exit_code == 0, result.output
    assert "3 file(s)/render(s) skipped" in result.stderr
    for name in ("garbage.mid", "empty.mid", "nonotes.mid"):
        assert name in result.stderr
    assert "Traceback" not in result.output
    assert len(read_manifest(tmp_path / "ds" / "manifest.jsonl")) == 1
    # nothing usable at all: non-zero exit
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mid").write_bytes(b"nope")
    result = runner.invoke(app, ["synth", str(bad), "-o", str(tmp_path / "ds2"), "-s", TIM])
    assert result.exit_code != 0


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["-s", "/no/such/font.sf2"], {}, "no such soundfont"),
        (["-s", "{bad}"], {}, "not a valid soundfont"),
        ([], {"AMT_FLUIDSYNTH": "/no/such/fluidsynth"}, "fluidsynth program is not installed"),
        (["--programs", "kazooo"], {}, "unknown instrument"),
        (["--split", "1:2"], {}, "--split"),
        (["--renderer", "oneshot"], {}, "--oneshots"),
    ],
)
def test_cli_user_errors_are_one_line(tmp_path, monkeypatch, args, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    src = write_piece(tmp_path / "a.mid")
    (tmp_path / "bad.sf2").write_bytes(b"not a soundfont")
    args = [a.replace("{bad}", str(tmp_path / "bad.sf2")) for a in args]
    result = runner.invoke(app, ["synth", str(src), "-o", str(tmp_path / "ds"), *args])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "ds").exists()


def test_cli_resume_and_refusal(tmp_path):
    src = write_piece(tmp_path / "a.mid")
    base = ["synth", str(src), "-o", str(tmp_path / "ds"), "-s", TIM, "--excerpt-s", "1"]
    assert runner.invoke(app, base).exit_code == 0
    again = runner.invoke(app, base)
    assert again.exit_code == 0 and "items already there" in again.output
    other = runner.invoke(app, base[:-1] + ["2"])
    assert other.exit_code != 0 and "different settings" in other.stderr
