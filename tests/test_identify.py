"""`amt identify`: votes and offsets, the cached library index, errors, and an end-to-end identification."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_embedding import TINY, random_piece
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.inference.identify import LibraryIndex, index_library, rank_pieces

runner = CliRunner()


def test_votes_and_offset_by_hand():
    emb = np.eye(4, dtype=np.float32)  # 4 library snippets: a@0, a@16, b@0, b@16 (frames)
    index = LibraryIndex(
        root=Path("."),
        files=["a.mid", "b.mid"],
        embeddings=emb,
        file_index=np.array([0, 0, 1, 1], np.int32),
        start_frame=np.array([0, 16, 0, 16]),
        frame_rate=32.0,
    )
    # queries at 0, 16, 32 frames; the first two look like b@0, b@16 (offset 0), the third like a@16
    q = np.array([[0, 0, 1, 0.1], [0, 0, 0.2, 1], [0, 1, 0, 0]], np.float32)
    matches = rank_pieces(q, np.array([0, 16, 32]), index, hop_frames=16, top=5)
    assert [m.file for m in matches] == ["b.mid", "a.mid"]
    assert (matches[0].votes, matches[0].in_time, matches[0].offset_s) == (2, 2, 0.0)
    assert (matches[1].votes, matches[1].offset_s) == (1, (16 - 32) / 32.0)
    assert rank_pieces(q, np.array([0, 16, 32]), index, hop_frames=16, top=1)[0].file == "b.mid"


@pytest.fixture
def tiny_model():
    from amtcli.nets import build_model

    torch.manual_seed(0)
    return build_model("embedding", TINY).eval()


@pytest.fixture
def library(tmp_path):
    from amtcli.notes import notes_to_midi

    lib = tmp_path / "lib"
    for i in range(3):
        notes_to_midi(random_piece(100 + i, duration_s=4.0), lib / f"piece{i}.mid", program=0)
    return lib


def test_index_is_cached_and_refreshed(tiny_model, library, tmp_path):
    from amtcli.notes import notes_to_midi

    cache = tmp_path / "cache"
    first = index_library(library, tiny_model, cache_dir=cache)
    assert first.n_embedded == 3 and first.files == ["piece0.mid", "piece1.mid", "piece2.mid"]
    assert len(list(cache.glob("library-*.npz"))) == 1
    again = index_library(library, tiny_model, cache_dir=cache)
    assert again.n_embedded == 0
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    np.testing.assert_array_equal(again.start_frame, first.start_frame)

    # a changed file is embedded again, a removed one leaves, a new one (and a broken one) come in
    notes_to_midi(random_piece(7, duration_s=6.0), library / "piece1.mid", program=0)
    (library / "piece2.mid").unlink()
    notes_to_midi(random_piece(8, duration_s=3.0), library / "sub" / "new.mid", program=0)
    (library / "broken.mid").write_bytes(b"not midi")
    third = index_library(library, tiny_model, cache_dir=cache)
    assert third.n_embedded == 3  # piece1, new, broken
    assert third.files == ["piece0.mid", "piece1.mid", "sub/new.mid"]
    assert [f for f, _ in third.skipped] == ["broken.mid"]
    keep = first.file_index == 0
    np.testing.assert_array_equal(third.embeddings[third.file_index == 0], first.embeddings[keep])
    assert (third.file_index == 1).sum() > (first.file_index == 1).sum()  # the longer piece1
    assert index_library(library, tiny_model, cache_dir=cache).n_embedded == 0

    # another model does not reuse this model's index
    from amtcli.nets import build_model

    torch.manual_seed(1)
    other = build_model("embedding", TINY).eval()
    assert index_library(library, other, cache_dir=cache).n_embedded == 4


def test_damaged_cache_is_rebuilt(tiny_model, library, tmp_path):
    cache = tmp_path / "cache"
    index_library(library, tiny_model, cache_dir=cache)
    (path,) = cache.glob("library-*.npz")
    path.write_bytes(b"garbage")
    assert index_library(library, tiny_model, cache_dir=cache).n_embedded == 3


@pytest.fixture
def tiny_release(tiny_model, tmp_path):
    from amtcli.zoo.release import save_release

    return save_release(tiny_model, tmp_path / "tiny-embedding", card="# tiny\n")


def _one_error_line(result, code, text):
    assert result.exit_code == code, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and text in lines[0], result.output
    assert "Traceback" not in result.output


def test_cli_bad_inputs(tiny_release, library, tmp_path, three_note_midi):
    from conftest import sine

    from amtcli.audio.io import save_audio

    wav = save_audio(tmp_path / "rec.wav", sine(440.0, 3.0), sample_rate=16000)
    base = ["identify", str(wav), "--model", str(tiny_release), "--cache-dir", str(tmp_path / "c")]
    _one_error_line(runner.invoke(app, base + ["--library", str(tmp_path / "nope")]), 2, "no such library folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_error_line(runner.invoke(app, base + ["--library", str(empty)]), 2, "no MIDI files")
    _one_error_line(runner.invoke(app, base + ["--library", str(library), "--top", "0"]), 2, "--top")
    missing = ["identify", str(tmp_path / "missing.wav"), "--library", str(library), "--model", str(tiny_release)]
    _one_error_line(runner.invoke(app, missing), 2, "no such recording")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....nonsense")
    bad = ["identify", str(tmp_path / "bad.wav"), "--library", str(library), "--model", str(tiny_release)]
    _one_error_line(runner.invoke(app, bad + ["--cache-dir", str(tmp_path / "c")]), 1, "not a readable audio file")
    nomodel = base + ["--library", str(library)]
    nomodel[nomodel.index(str(tiny_release))] = str(tmp_path / "no-model")
    _one_error_line(runner.invoke(app, nomodel), 1, "no-model")
    # a transcription model is not an embedding model
    from amtcli.nets import build_model
    from amtcli.zoo.release import save_release

    unet = save_release(build_model("unet-bilstm"), tmp_path / "unet")
    wrong = base + ["--library", str(library), "--method", "embedding"]
    wrong[wrong.index(str(tiny_release))] = str(unet)
    _one_error_line(runner.invoke(app, wrong), 2, "needs an embedding model")


def test_cli_lists_matches(tiny_release, library, tmp_path):
    from test_embedding import additive_render

    from amtcli.audio.io import save_audio

    wav = save_audio(tmp_path / "rec.flac", additive_render(random_piece(101, duration_s=4.0)), sample_rate=16000)
    args = ["identify", str(wav), "--library", str(library), "--model", str(tiny_release), "--top", "2"]
    result = runner.invoke(app, args + ["--cache-dir", str(tmp_path / "c")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3 file(s) embedded now, 0 from the cache" in result.output
    assert sum(f"piece{i}.mid" in result.output for i in range(3)) <= 2  # --top 2
    result = runner.invoke(app, args + ["--cache-dir", str(tmp_path / "c")], env={"COLUMNS": "200"})
    assert "0 file(s) embedded now, 3 from the cache" in result.output


# ----------------------------------------------------------------------------------- end to end


def _fluidsynth_render(midi: Path, out: Path, soundfont: Path) -> np.ndarray:
    from amtcli.audio.io import load_audio

    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", "16000", "-F", str(out), str(soundfont), str(midi)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return load_audio(out, sample_rate=16000)


@pytest.mark.slow
def test_identify_finds_the_right_piece_with_a_tiny_trained_model(tmp_path):
    """Four pieces (in different registers) rendered with FluidSynth; a tiny model trained on them for
    a few seconds names the piece each 4-second excerpt comes from. (It is too small to place the
    excerpt reliably within the piece: the offset arithmetic is checked by hand above.)"""
    import json

    import pretty_midi

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import save_audio
    from amtcli.config import FeatureConfig
    from amtcli.inference.identify import identify_recording
    from amtcli.notes import notes_to_midi
    from amtcli.training.embedding import EmbeddingTrainConfig, model_from_checkpoint, train_embedding
    from amtcli.zoo.release import save_release

    if shutil.which("fluidsynth") is None:
        pytest.skip("needs the fluidsynth program")
    soundfont = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    fc = FeatureConfig()
    data, lib = tmp_path / "data", tmp_path / "lib"
    lines, renders = [], {}
    for p in range(4):
        notes = random_piece(300 + p, duration_s=8.0, low=36 + 10 * p, high=60 + 10 * p)
        midi = notes_to_midi(notes, lib / f"piece{p}.mid", program=0)
        audio = _fluidsynth_render(midi, tmp_path / f"r{p}.wav", soundfont)
        renders[p] = audio
        save_audio(data / "audio" / f"p{p}.flac", audio, sample_rate=16000)
        shutil.copy(midi, data / f"p{p}.mid")
        np.save(data / f"p{p}.npy", compute_features(audio, config=fc))
        lines.append(
            {
                "id": f"p{p}",
                "audio": f"audio/p{p}.flac",
                "label": f"p{p}.mid",
                "features": f"p{p}.npy",
                "split": "train",
                "duration_s": len(audio) / 16000,
            }
        )
    (data / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    torch.set_num_threads(1)
    train_embedding(
        data,
        out_dir=tmp_path / "run",
        steps=150,
        batch_size=8,
        lr=5e-3,
        seed=0,
        model_config={"channels": (8, 8, 16, 16), "embed_dim": 16, "snippet_frames": 32},
        train_config=EmbeddingTrainConfig(max_transpose=0, max_gain_db=6.0, checkpoint_every=150, precision="fp32"),
    )
    model = model_from_checkpoint(tmp_path / "run")
    release = save_release(model, tmp_path / "model")

    excerpts = {p: renders[p][3 * 16000 : 7 * 16000] for p in range(4)}  # 4 s from 3.0 s on
    save_audio(tmp_path / "query.flac", excerpts[2], sample_rate=16000)
    result = runner.invoke(
        app,
        [
            "identify",
            str(tmp_path / "query.flac"),
            "--library",
            str(lib),
            "--model",
            str(release),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "piece" in line and ".mid" in line]
    assert "piece2.mid" in rows[0], result.output

    for p, excerpt in excerpts.items():
        ident = identify_recording(excerpt, lib, model=model, cache_dir=tmp_path / "cache")
        best = ident.matches[0]
        assert best.file == f"piece{p}.mid", ident.matches
        runner_up = ident.matches[1].votes if len(ident.matches) > 1 else 0
        assert best.votes > ident.n_queries / 2 and best.votes > runner_up
        assert best.in_time >= 1 and -4.0 <= best.offset_s <= 8.0
