"""One-shot banks and two-timbre mixing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from amtcli.audio.io import save_audio
from amtcli.cli import app, common
from amtcli.notes import NoteArray, midi_to_notes, notes_to_midi
from amtcli.synth.oneshot import build_bank, draw_timbres, load_bank, render_oneshot
from amtcli.synth.soundfont import pretty_midi_soundfont

SR = 16000
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(common, "_console", None)
    monkeypatch.setattr(common, "_err_console", None)


def decaying_sine(freq, seconds=2.0, delay=0):
    t = np.arange(int(seconds * SR)) / SR
    y = (0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.8)).astype(np.float32)
    return np.concatenate([np.zeros(delay, np.float32), y])


@pytest.fixture
def user_bank(tmp_path):
    """Two timbres of pure decaying sines: "a" at pitches 57 and 69, "b" at 69 only."""
    d = tmp_path / "bank"
    d.mkdir()
    rows = ["file,pitch,velocity,timbre"]
    for name, pitch in (("a", 57), ("a", 69), ("b", 69)):
        f = 440.0 * 2 ** ((pitch - 69) / 12) * (1.5 if name == "b" else 1.0)  # b: a fifth up, to tell apart
        save_audio(d / f"{name}{pitch}.wav", decaying_sine(f, delay=200), sample_rate=SR)
        rows.append(f"{name}{pitch}.wav,{pitch},100,{name}")
    (d / "oneshots.csv").write_text("\n".join(rows) + "\n")
    return d


def peak_hz(y):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * SR / len(y)


def test_user_bank_onsets_pitch_and_release(user_bank):
    bank = load_bank(user_bank, sample_rate=SR)
    assert bank.names == ["a", "b"]
    notes = NoteArray.from_lists([(0.25, 0.75, 69, 100), (1.0031, 1.2, 62, 100)])
    y = render_oneshot(notes, bank=bank, timbres=["a", "b"], alpha=0.0, duration_s=2.0, sample_rate=SR)
    assert y.shape == (2 * SR,)
    # the first audible sample is exactly at the onset (the leading 200 samples of silence were trimmed)
    assert np.all(y[: int(0.25 * SR)] == 0) and y[int(0.25 * SR)] != 0
    a2 = int(round(1.0031 * SR))
    assert np.all(y[int(0.75 * SR) + int(0.08 * SR) : a2] == 0)  # released 80 ms after note off
    assert np.abs(y[int(0.75 * SR) : int(0.75 * SR) + 100]).max() > 0.1  # still sounding at note off
    # 62 is not in the bank: the nearest sample (57) is resampled up 5 semitones
    f = peak_hz(y[a2 : a2 + int(0.19 * SR)])
    assert f == pytest.approx(440 * 2 ** ((62 - 69) / 12), rel=0.03)
    assert peak_hz(y[int(0.3 * SR) : int(0.7 * SR)]) == pytest.approx(440, rel=0.01)


def test_mixing_two_timbres(user_bank):
    bank = load_bank(user_bank, sample_rate=SR)
    notes = NoteArray.from_lists([(0.1, 1.0, 69, 100)])
    main = render_oneshot(notes, bank=bank, timbres=["a", "b"], alpha=0.0, duration_s=1.2)
    both = render_oneshot(notes, bank=bank, timbres=["a", "b"], alpha=0.4, duration_s=1.2)
    sub = both - main
    seg = slice(int(0.2 * SR), int(0.9 * SR))
    assert peak_hz(sub[seg]) == pytest.approx(660, rel=0.01)
    assert np.abs(sub[seg]).max() / np.abs(main[seg]).max() == pytest.approx(0.4, rel=0.02)


def test_draw_timbres_differ_and_alpha_in_range(user_bank):
    bank = load_bank(user_bank, sample_rate=SR)
    for s in range(20):
        d = draw_timbres(bank, (0.1, 0.3), np.random.default_rng(s))
        assert d["timbres"][0] != d["timbres"][1] and 0.1 <= d["alpha"] <= 0.3


def test_build_bank_from_soundfont_and_render(tmp_path):
    sf = str(pretty_midi_soundfont())
    info = build_bank(tmp_path / "b", soundfonts=(sf,), programs=(24, 73), velocities=(100,), duration_s=1.0)
    meta = json.loads((tmp_path / "b" / "bank.json").read_text())
    assert meta == info and [t["program"] for t in meta["timbres"]] == [24, 73]
    assert len(meta["timbres"][0]["notes"]) == 88 - 40 + 1  # guitar: pitches 40..88
    bank = load_bank(tmp_path / "b", sample_rate=SR)
    data, starts, lengths = bank.samples("TimGM6mb:024")
    assert isinstance(data, np.memmap) and data.dtype == np.float16 and len(lengths) == 49
    assert lengths.max() <= SR and len(data) == lengths.sum()
    # sample 0 of each one-shot is its onset: quiet at first, sounding within the soundfont's attack
    k = list(map(tuple, meta["timbres"][0]["notes"])).index((60, 100))
    y = bank.one_shot("TimGM6mb:024", k)
    assert len(y) > 0.5 * SR
    assert np.abs(y[:20]).max() < 0.02 * np.abs(y).max() and np.abs(y[: int(0.03 * SR)]).max() > 0.1 * np.abs(y).max()
    assert peak_hz(y[int(0.05 * SR) : int(0.5 * SR)]) == pytest.approx(261.6, rel=0.03)
    from amtcli.errors import OutputExists

    with pytest.raises(OutputExists):
        build_bank(tmp_path / "b", soundfonts=(sf,), programs=(24,))


def test_cli_oneshot_dataset(tmp_path, user_bank):
    from amtcli.synth.dataset import read_manifest

    src = notes_to_midi(
        NoteArray.from_lists([(0.2 + 0.3 * i, 0.4 + 0.3 * i, 60 + i, 90) for i in range(8)]),
        tmp_path / "m.mid",
        program=0,
    )
    out = tmp_path / "ds"
    result = runner.invoke(
        app,
        [
            "synth",
            str(src),
            "-o",
            str(out),
            "--renderer",
            "oneshot",
            "--oneshots",
            str(user_bank),
            "--mix-alpha",
            "0.2:0.3",
            "--excerpt-s",
            "0",
            "--augment",
            "none",
        ],
    )
    assert result.exit_code == 0, result.output
    (rec,) = read_manifest(out / "manifest.jsonl")
    assert rec["renderer"] == "oneshot" and sorted(rec["timbres"]) == ["a", "b"] and 0.2 <= rec["alpha"] <= 0.3
    label = midi_to_notes(out / rec["label"])
    np.testing.assert_allclose(label.onset_s, midi_to_notes(src).onset_s, atol=1e-3)
    from amtcli.audio.io import load_audio

    y = load_audio(out / rec["audio"])
    first = int(np.argmax(np.abs(y) > 0))
    assert first == int(round(0.2 * SR))  # the first note's first audible sample is its onset


def test_bad_bank_is_one_line(tmp_path):
    src = notes_to_midi(NoteArray.from_lists([(0.2, 0.4, 60)]), tmp_path / "m.mid", program=0)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        app,
        ["synth", str(src), "-o", str(tmp_path / "ds"), "--renderer", "oneshot", "--oneshots", str(tmp_path / "empty")],
    )
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no bank.json" in lines[0]
