"""Symbolic fingerprints, the note index of a library (cached per file) and identification by
transcription (`amt identify --method transcription`)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_embedding import additive_render, random_piece
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.fingerprint import FingerprintIndex, bag_of_codes, note_codes, notes_features, subsequence_match
from amtcli.notes import NoteArray, notes_to_midi, notes_to_rolls

runner = CliRunner()
FRAME_RATE = 16000 / 512


def warp(notes: NoteArray, *, factor: float, start_s: float = 0.0, end_s: float | None = None) -> NoteArray:
    """The notes with onsets in [start_s, end_s), moved to start at 0 and played ``factor`` times slower."""
    end_s = notes.end_s + 1 if end_s is None else end_s
    keep = (notes.onset_s >= start_s) & (notes.onset_s < end_s)
    n = notes[keep]
    return NoteArray((n.onset_s - start_s) * factor, (n.offset_s - start_s) * factor, n.pitch, n.velocity, n.program)


def corrupt(notes: NoteArray, rng, *, drop: float = 0.1, jitter_s: float = 0.02) -> NoteArray:
    """A transcription's kind of errors: notes missed, onsets off by a few tens of ms."""
    keep = rng.random(len(notes)) >= drop
    n = notes[keep]
    shift = rng.normal(0, jitter_s, len(n))
    return NoteArray(np.maximum(n.onset_s + shift, 0), n.offset_s + shift, n.pitch, n.velocity, n.program)


def test_codes_survive_a_tempo_change_but_not_a_transposition():
    piece = random_piece(1, duration_s=20.0)
    codes = set(note_codes(piece)[0].tolist())
    slower = set(note_codes(warp(piece, factor=1.3))[0].tolist())
    up = NoteArray(piece.onset_s, piece.offset_s, piece.pitch + 2, piece.velocity, piece.program)
    assert len(codes) > 50
    assert len(codes & slower) / len(codes) > 0.9
    assert len(codes & set(note_codes(up)[0].tolist())) / len(codes) < 0.05
    assert len(note_codes(NoteArray.empty())[0]) == 0


def test_search_ranks_the_played_piece_first(rng):
    pieces = [random_piece(s, duration_s=30.0) for s in range(40)]
    index = FingerprintIndex.build([bag_of_codes(note_codes(p)[0]) for p in pieces])
    assert index.n_pieces == 40
    for target in (3, 17, 31):
        query = corrupt(warp(pieces[target], factor=0.85, start_s=8.0, end_s=18.0), rng)
        scores = index.search(note_codes(query)[0])
        assert int(np.argmax(scores)) == target
    assert not index.search(np.zeros(0, np.int64)).any()


def _posteriors(notes: NoteArray, duration_s: float) -> dict:
    rolls = notes_to_rolls(notes, n_frames=int(duration_s * FRAME_RATE), frame_rate=FRAME_RATE)
    return {"onset": rolls["onset"], "frame": rolls["frame"]}


def test_subsequence_match_finds_where_an_excerpt_starts(rng):
    piece = random_piece(7, duration_s=40.0)
    other = random_piece(8, duration_s=40.0)
    query = corrupt(warp(piece, factor=1.2, start_s=12.0, end_s=24.0), rng)
    post = _posteriors(query, 12.0 * 1.2 + 1)
    from amtcli.align import performance_features
    from amtcli.fingerprint import pool_frames

    q = pool_frames(performance_features(post["onset"], post["frame"]), 4)
    right = subsequence_match(q, notes_features(piece, frame_rate=FRAME_RATE, pool=4), frame_rate=FRAME_RATE / 4)
    wrong = subsequence_match(q, notes_features(other, frame_rate=FRAME_RATE, pool=4), frame_rate=FRAME_RATE / 4)
    assert right.cost < wrong.cost
    assert abs(right.offset_s - 12.0) < 1.0
    assert abs(right.end_s - 24.0) < 1.5


@pytest.fixture
def midi_library(tmp_path):
    lib = tmp_path / "lib"
    for i in range(6):
        notes_to_midi(random_piece(200 + i, duration_s=24.0), lib / f"piece{i}.mid", program=0)
    (lib / "sub").mkdir()
    notes_to_midi(random_piece(300, duration_s=24.0), lib / "sub" / "other.midi", program=0)
    (lib / "broken.mid").write_bytes(b"MThd nonsense")
    return lib


def test_note_index_is_cached_and_refreshed_per_file(midi_library, tmp_path):
    from amtcli.inference.note_index import index_notes

    cache = tmp_path / "cache"
    first = index_notes(midi_library, cache_dir=cache)
    assert first.n_indexed == 8 and len(first.files) == 7
    assert [f for f, _ in first.skipped] == ["broken.mid"]
    assert first.cache_path.is_file()
    again = index_notes(midi_library, cache_dir=cache)
    assert again.n_indexed == 0 and again.files == first.files
    np.testing.assert_array_equal(again.index.codes, first.index.codes)
    np.testing.assert_array_equal(again.notes(2).pitch, first.notes(2).pitch)
    # touched (new mtime, same bytes): not read again; changed bytes: read again; a new file: read
    p0 = midi_library / "piece0.mid"
    os.utime(p0, ns=(p0.stat().st_atime_ns, p0.stat().st_mtime_ns + 10**9))
    assert index_notes(midi_library, cache_dir=cache).n_indexed == 0
    notes_to_midi(random_piece(999, duration_s=24.0), midi_library / "piece1.mid", program=0)
    notes_to_midi(random_piece(998, duration_s=24.0), midi_library / "new.mid", program=0)
    third = index_notes(midi_library, cache_dir=cache)
    assert third.n_indexed == 2 and len(third.files) == 8
    assert not np.array_equal(third.notes(third.files.index("piece1.mid")).pitch, first.notes(1).pitch)
    # two worker processes read the same index; a damaged cache is rebuilt
    third.cache_path.write_bytes(b"garbage")
    fourth = index_notes(midi_library, cache_dir=cache, jobs=2)
    assert fourth.n_indexed == 9
    np.testing.assert_array_equal(fourth.index.codes, third.index.codes)
    assert index_notes(midi_library, cache_dir=cache, use_cache=True).n_indexed == 0


def test_rank_by_notes_from_posteriors(midi_library, tmp_path, rng):
    from amtcli.inference.identify_notes import rank_by_notes
    from amtcli.inference.note_index import index_notes
    from amtcli.notes import midi_to_notes

    lib = index_notes(midi_library, cache_dir=tmp_path / "cache")
    piece = midi_to_notes(midi_library / "piece4.mid")
    query = corrupt(warp(piece, factor=0.9, start_s=6.0, end_s=18.0), rng)
    found = rank_by_notes(query, _posteriors(query, 12 * 0.9 + 1), lib, frame_rate=FRAME_RATE, top=3, shortlist=4)
    assert len(found) == 3
    assert found[0].file == "piece4.mid"
    assert abs(found[0].offset_s - 6.0) < 1.0
    assert found[0].cost < found[1].cost


def _one_error_line(result, code, text):
    assert result.exit_code == code, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and text in lines[0], result.output
    assert "Traceback" not in result.output


def test_cli_identifies_a_rendered_excerpt_with_a_tempo_change(midi_library, tmp_path):
    """The bundled model transcribes 10 s of an additive rendering of piece 2, 15 % faster, from 8 s."""
    from amtcli.audio.io import save_audio
    from amtcli.notes import midi_to_notes

    piece = midi_to_notes(midi_library / "piece2.mid")
    wav = save_audio(
        tmp_path / "q.wav", additive_render(warp(piece, factor=1 / 1.15, start_s=8.0, end_s=19.5)), sample_rate=16000
    )
    args = ["identify", str(wav), "--library", str(midi_library), "--cache-dir", str(tmp_path / "c"), "--device", "cpu"]
    result = runner.invoke(app, args + ["--top", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "8 file(s) read now" in result.output and "skipped 1 file(s)" in result.output
    rows = [line for line in result.output.splitlines() if ".mid" in line and "│" in line]
    assert len(rows) == 3 and "piece2.mid" in rows[0], result.output
    start = rows[0].split("│")[5].strip()  # m:ss.s
    minutes, secs = start.split(":")
    assert abs(int(minutes) * 60 + float(secs) - 8.0) < 1.0, result.output
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert "0 file(s) read now, 8 from the cache" in again.output


def test_cli_bad_inputs(midi_library, tmp_path):
    from conftest import sine

    from amtcli.audio.io import save_audio

    wav = save_audio(tmp_path / "rec.wav", sine(440.0, 2.0), sample_rate=16000)
    base = ["identify", str(wav), "--library", str(midi_library), "--cache-dir", str(tmp_path / "c")]
    _one_error_line(runner.invoke(app, base + ["--method", "bogus"]), 2, "--method must be one of")
    _one_error_line(runner.invoke(app, base + ["--shortlist", "0"]), 2, "--shortlist")
    _one_error_line(
        runner.invoke(app, base + ["--method", "transcription", "-m", "embedding"]), 2, "needs a frame model"
    )
    (tmp_path / "bad.wav").write_bytes(b"RIFF....nonsense")
    bad = ["identify", str(tmp_path / "bad.wav"), "--library", str(midi_library), "--cache-dir", str(tmp_path / "c")]
    _one_error_line(runner.invoke(app, bad), 1, "not a readable audio file")
