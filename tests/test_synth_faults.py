"""`amt synth` after a crash: a rerun leaves exactly what the manifest lists; two runs never share a folder."""

from __future__ import annotations

import fcntl
import json

import numpy as np
import pytest

from amtcli.audio.io import save_audio
from amtcli.errors import AmtError
from amtcli.notes import NoteArray, notes_to_midi
from amtcli.synth.augment import augment_preset
from amtcli.synth.dataset import SynthConfig, build_dataset

SR = 16000


@pytest.fixture
def bank(tmp_path):
    d = tmp_path / "bank"
    d.mkdir()
    rows = ["file,pitch,velocity,timbre"]
    t = np.arange(SR) / SR
    for pitch in (57, 69):
        f = 440.0 * 2 ** ((pitch - 69) / 12)
        save_audio(
            d / f"a{pitch}.wav", (0.5 * np.sin(2 * np.pi * f * t) * np.exp(-t / 0.5)).astype(np.float32), sample_rate=SR
        )
        rows.append(f"a{pitch}.wav,{pitch},100,a")
    (d / "oneshots.csv").write_text("\n".join(rows) + "\n")
    return d


@pytest.fixture
def midis(tmp_path):
    src = tmp_path / "midi"
    for k in range(3):
        notes_to_midi(
            NoteArray.from_lists([(0.1 + 0.2 * i, 0.3 + 0.2 * i, 60 + i + k, 90) for i in range(4)]), src / f"p{k}.mid"
        )
    return src


def _config(bank):
    return SynthConfig(
        renderer="oneshot", oneshots=str(bank), excerpt_s=0.0, augment=augment_preset("none"), split=(1.0, 0.0, 0.0)
    )


def _listing(folder):
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != ".amt-synth.lock"
    )


def test_a_rerun_removes_files_no_manifest_lists_and_stale_temp_files(tmp_path, midis, bank):
    out = tmp_path / "ds"
    build_dataset([midis], out, config=_config(bank))
    before = _listing(out)
    manifest = (out / "manifest.jsonl").read_text()
    rec = json.loads(manifest.splitlines()[0])
    # what orphan workers of a killed run leave: rendered items nobody listed, half-written temp files
    stray_id = "zz-0123456789-00"
    (out / "audio" / f"{stray_id}.flac").write_bytes((out / rec["audio"]).read_bytes())
    (out / "labels" / f"{stray_id}.mid").write_bytes((out / rec["label"]).read_bytes())
    (out / "labels" / f".{stray_id}.mid.tmp").write_bytes(b"MThd half")
    (out / "audio" / f".{rec['id']}.flac.tmp").write_bytes(b"fLaC half")
    (out / ".manifest.jsonl.tmp").write_text("{")
    # what is the user's and is left alone
    (out / "audio" / "notes.txt").write_text("mine")
    (out / "labels" / "keep").mkdir()
    summary = build_dataset([midis], out, config=_config(bank))
    assert summary.items_written == 0 and summary.items_skipped == 3
    assert _listing(out) == sorted(before + ["audio/notes.txt"])
    assert (out / "manifest.jsonl").read_text() == manifest
    assert (out / "labels" / "keep").is_dir()


def test_a_second_run_into_the_same_folder_is_refused_while_one_is_working(tmp_path, midis, bank):
    out = tmp_path / "ds"
    build_dataset([midis], out, config=_config(bank))
    with open(out / ".amt-synth.lock", "a") as held:  # as a running `amt synth` (or its workers) holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(AmtError, match="another `amt synth`"):
            build_dataset([midis], out, config=_config(bank), overwrite=True)
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 3  # --overwrite did not touch it
    build_dataset([midis], out, config=_config(bank))  # free again once released


def test_a_failed_check_creates_no_folder(tmp_path, bank):
    out = tmp_path / "ds"
    with pytest.raises(AmtError):
        build_dataset([tmp_path / "nothing-here"], out, config=_config(bank))
    assert not out.exists()
