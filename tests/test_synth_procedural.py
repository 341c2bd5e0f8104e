"""Procedural timbres: the drawn models, their notes, and banks the one-shot renderer can mix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.errors import AmtError, OutputExists
from amtcli.notes import NoteArray, notes_to_midi
from amtcli.synth import procedural
from amtcli.synth.oneshot import load_bank, render_oneshot
from amtcli.synth.procedural import build_procedural_bank, draw_timbre, render_note

SR = 16000
runner = CliRunner()


def _peaks(y: np.ndarray, n: int) -> np.ndarray:
    """Frequencies (Hz) of the ``n`` strongest spectral peaks of ``y`` (Hann window, zero-padded)."""
    size = 1 << 18
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=size))
    local = (spec[1:-1] > spec[:-2]) & (spec[1:-1] >= spec[2:])
    idx = np.nonzero(local)[0] + 1
    top = idx[np.argsort(spec[idx])[::-1][:n]]
    return np.sort(top * SR / size)


def test_draws_are_seeded_and_recordable():
    a = [draw_timbre(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1] and json.loads(json.dumps(a[0])) == a[0]
    families = {draw_timbre(np.random.default_rng(s))["family"] for s in range(40)}
    assert families == set(procedural.FAMILIES)
    with pytest.raises(AmtError):
        draw_timbre(np.random.default_rng(0), "whistled")


def test_struck_partials_are_stretched_by_the_inharmonicity():
    params = {
        **draw_timbre(np.random.default_rng(0), "struck"),
        "inharmonicity": 1e-3,
        "strings": 1,
        "strike_point": 0.11,
        "slope": 0.8,
        "body": [],
        "tilt_db_per_octave": 0.0,
    }
    pitch = 48  # 130.8 Hz; B at MIDI 48 is half that at MIDI 60
    y = render_note(params, pitch, 100, duration_s=2.0, sample_rate=SR, seed=0)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    b = 1e-3 * 2 ** ((pitch - 60) / 12)
    found = _peaks(y, 20)
    for k in (6, 8, 10):
        stretched = k * f0 * np.sqrt(1 + b * k * k)
        assert np.min(np.abs(found - stretched)) < 1.5, (k, stretched, found)
        assert stretched - k * f0 > 3.0  # far enough from the harmonic position to tell them apart


@pytest.mark.parametrize("family", procedural.FAMILIES)
def test_notes_start_at_sample_zero_and_struck_and_plucked_ones_decay(family):
    params = draw_timbre(np.random.default_rng(1), family)
    y = render_note(params, 60, 90, duration_s=2.0, sample_rate=SR, seed=0)
    assert y.dtype == np.float32 and len(y) == 2 * SR and np.isfinite(y).all()
    assert np.abs(y[: int(0.2 * SR)]).max() > 0.05 * np.abs(y).max()  # sounding from the start
    head, tail = (float(np.sqrt(np.mean(y[s] ** 2))) for s in (slice(0, SR // 4), slice(-SR // 4, None)))
    if family != "sustained":
        assert tail < 0.5 * head
    soft = render_note(params, 60, 30, duration_s=2.0, sample_rate=SR, seed=0)
    assert np.abs(soft).max() < np.abs(y).max()  # velocity is loudness


def test_a_procedural_bank_is_mixed_like_any_other(tmp_path, monkeypatch):
    monkeypatch.setattr(procedural, "_RANGE", {"struck": (58, 62), "plucked": (58, 62), "sustained": (58, 62)})
    meta = build_procedural_bank(tmp_path / "bank", n_timbres=3, seed=4, velocities=(60, 110), duration_s=1.0)
    assert len(meta["timbres"]) == 3 and meta["n_samples"] == 3 * 5 * 2
    assert all(t["params"]["family"] in procedural.FAMILIES for t in meta["timbres"])
    bank = load_bank(tmp_path / "bank")
    names = bank.names
    notes = NoteArray.from_lists([(0.1, 0.5, 60, 90), (0.3, 0.9, 61, 60)])
    y = render_oneshot(notes, bank=bank, timbres=[names[0], names[1]], alpha=0.3, duration_s=1.2)
    assert np.abs(y[: int(0.1 * SR)]).max() == 0 and np.abs(y[int(0.1 * SR) :]).max() > 0
    with pytest.raises(OutputExists):
        build_procedural_bank(tmp_path / "bank", n_timbres=1)
    again = build_procedural_bank(tmp_path / "again", n_timbres=3, seed=4, velocities=(60, 110), duration_s=1.0)
    assert [t["params"] for t in again["timbres"]] == [t["params"] for t in meta["timbres"]]
    first = meta["timbres"][0]["file"]
    assert np.array_equal(np.load(tmp_path / "bank" / first), np.load(tmp_path / "again" / first))


def test_cli_builds_a_procedural_bank_and_renders_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(procedural, "_RANGE", {"struck": (59, 61), "plucked": (59, 61), "sustained": (59, 61)})
    bank = tmp_path / "bank"
    r = runner.invoke(app, ["synth", "--build-oneshots", str(bank), "--procedural", "2", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "2 timbres" in " ".join(r.output.split())
    src = notes_to_midi(NoteArray.from_lists([(0.2, 0.6, 60, 90), (0.7, 1.0, 59, 70)]), tmp_path / "m.mid")
    r = runner.invoke(
        app,
        ["synth", str(src), "-o", str(tmp_path / "ds"), "--renderer", "oneshot", "--oneshots", str(bank)]
        + ["--excerpt-s", "0", "--augment", "none"],
    )
    assert r.exit_code == 0, r.output
    for args, words in (
        (["--procedural", "2"], "give --build-oneshots"),
        (["--build-oneshots", str(tmp_path / "b2"), "--procedural", "2", "--programs", "piano"], "no --soundfont"),
    ):
        r = runner.invoke(app, ["synth", *args])
        assert r.exit_code == 2 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output
