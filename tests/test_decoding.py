import numpy as np
import pytest

from amtcli.config import DecodeConfig
from amtcli.inference.chunking import chunk_spans, run_chunked
from amtcli.inference.decoding import decode_frames
from amtcli.notes import NoteArray, notes_to_rolls

FR = 31.25


def test_hand_made_posteriors():
    onset = np.zeros((100, 88), np.float32)
    frame = np.zeros_like(onset)
    offset = np.zeros_like(onset)
    vel = np.zeros_like(onset)
    k = 60 - 21
    onset[10, k] = 0.9
    frame[10:30, k] = 0.8
    vel[10, k] = 100 / 127
    # second note: frame stays on but an offset peak ends it at 55
    onset[40:42, k + 4] = 0.7
    frame[40:70, k + 4] = 0.9
    offset[55, k + 4] = 0.8
    # a weak onset below threshold: no note
    onset[80, k + 7] = 0.3
    frame[80:90, k + 7] = 0.9
    notes = decode_frames(onset, frame, offset=offset, velocity=vel, frame_rate=FR)
    assert notes.pitch.tolist() == [60, 64]
    np.testing.assert_allclose(notes.onset_s, [10 / FR, 40 / FR])
    np.testing.assert_allclose(notes.offset_s, [30 / FR, 55 / FR])
    assert notes.velocity[0] == 100
    # without the offset head the second note runs until the frame drops
    no_off = decode_frames(onset, frame, offset=offset, frame_rate=FR, config=DecodeConfig(use_offset=False))
    assert no_off.offset_s[1] == pytest.approx(70 / FR)


def test_restrike_splits_note():
    onset = np.zeros((60, 88), np.float32)
    frame = np.zeros_like(onset)
    onset[[5, 25], 30] = 1
    frame[5:50, 30] = 1
    notes = decode_frames(onset, frame, frame_rate=FR)
    np.testing.assert_allclose(notes.onset_s, [5 / FR, 25 / FR])
    np.testing.assert_allclose(notes.offset_s, [25 / FR, 50 / FR])


def test_min_note_length():
    onset = np.zeros((20, 88), np.float32)
    frame = np.zeros_like(onset)
    onset[3, 10] = 1  # one frame: 32 ms
    notes = decode_frames(onset, frame, frame_rate=FR, config=DecodeConfig(min_note_s=0.05))
    assert len(notes) == 0
    notes = decode_frames(onset, frame, frame_rate=FR, config=DecodeConfig(min_note_s=0.0))
    assert len(notes) == 1


def test_notes_rolls_notes_round_trip(rng):
    rows = []
    for p in range(30, 100, 7):
        t = float(rng.uniform(0, 0.5))
        for _ in range(3):
            d = float(rng.uniform(0.1, 0.6))
            rows.append((t, t + d, p, int(rng.integers(1, 128))))
            t += d + float(rng.uniform(0.1, 0.3))
    notes = NoteArray.from_lists(rows)
    n_frames = int(np.ceil(notes.end_s * FR)) + 5
    r = notes_to_rolls(notes, n_frames=n_frames, frame_rate=FR)
    back = decode_frames(
        r["onset"],
        r["frame"],
        offset=r["offset"],
        velocity=r["velocity"],
        frame_rate=FR,
        config=DecodeConfig(min_note_s=0.0),
    )
    assert len(back) == len(notes)
    a = notes[np.lexsort((notes.onset_s, notes.pitch))]
    b = back[np.lexsort((back.onset_s, back.pitch))]
    assert b.pitch.tolist() == a.pitch.tolist()
    np.testing.assert_allclose(b.onset_s, a.onset_s, atol=0.5 / FR + 1e-9)
    np.testing.assert_allclose(b.offset_s, a.offset_s, atol=0.5 / FR + 1e-9)
    np.testing.assert_allclose(b.velocity, a.velocity, atol=1)


@pytest.mark.parametrize("n", [1, 37, 100, 101])
def test_chunk_spans_tile(n):
    spans = list(chunk_spans(n, chunk_frames=25, margin_frames=7))
    kept = np.concatenate([np.arange(ks, ke) for _, _, ks, ke in spans])
    assert kept.tolist() == list(range(n))
    for s, e, ks, ke in spans:
        assert s <= ks and ke <= e and e - s <= 25 + 14


def test_stitching_equals_whole_for_a_local_function(rng):
    x = rng.standard_normal((203, 5)).astype(np.float32)

    def fn(batch):  # a function with 3 frames of context each side
        k = np.ones(7, np.float32) / 7
        out = np.stack([np.stack([np.convolve(b[:, j], k, mode="same") for j in range(b.shape[1])], 1) for b in batch])
        return {"y": out}

    whole = fn(x[None])["y"][0]
    stitched = run_chunked(x, fn, chunk_frames=40, margin_frames=3, batch_size=3)["y"]
    inner = slice(3, -3)  # the signal's own edges are padded differently
    np.testing.assert_allclose(stitched[inner], whole[inner], atol=1e-5)
