"""The event codec: exact token ids, notes -> tokens -> notes on the time grid, tolerant decoding."""

import numpy as np
import pytest

from amtcli.notes import NoteArray
from amtcli.tokens import (
    EOS,
    PAD,
    START,
    TIE,
    Codec,
    decode_tokens,
    notes_to_tokens,
    quantize_notes,
    tokens_to_notes,
)

STEP = 1 / 31.25  # one step of the default codec (one CQT frame)


def _steps(x, sps=31.25):
    return np.rint(np.asarray(x) * sps).astype(int).tolist()


def assert_same_notes(a: NoteArray, b: NoteArray, sps=31.25):
    assert len(a) == len(b)
    a, b = a.sorted(), b.sorted()
    assert _steps(a.onset_s, sps) == _steps(b.onset_s, sps)
    assert _steps(a.offset_s, sps) == _steps(b.offset_s, sps)
    np.testing.assert_allclose(a.onset_s, b.onset_s, atol=1e-9)
    np.testing.assert_allclose(a.offset_s, b.offset_s, atol=1e-9)
    assert a.pitch.tolist() == b.pitch.tolist()
    assert a.velocity.tolist() == b.velocity.tolist()


def test_vocabulary_layout():
    c = Codec()
    assert (PAD, START, EOS, TIE) == (0, 1, 2, 3)
    assert c.vocab_size == 4 + 125 + 16 + 88 + 88 == 321
    assert c.encode_event("shift", 1) == 4
    assert c.encode_event("shift", 125) == 128
    assert c.encode_event("velocity", 0) == 129
    assert c.encode_event("note_on", 21) == 145
    assert c.encode_event("note_on", 108) == 232
    assert c.encode_event("note_off", 21) == 233
    assert c.encode_event("note_off", 108) == 320
    for tok in range(c.vocab_size):
        kind, value = c.decode_event(tok)
        assert c.encode_event(kind, value) == tok
    assert c.decode_event(321) is None and c.decode_event(-1) is None
    with pytest.raises(ValueError):
        c.encode_event("note_on", 20)
    # a smaller codec is a different table
    small = Codec(max_shift_steps=10, n_velocity_bins=4)
    assert small.vocab_size == 4 + 10 + 4 + 88 + 88
    assert small.encode_event("note_on", 60) == 4 + 10 + 4 + 39


def test_velocity_bins_map_back_into_themselves():
    for bins in (1, 4, 16, 127):
        c = Codec(n_velocity_bins=bins)
        seen = {c.velocity_to_bin(v) for v in range(1, 128)}
        assert seen == set(range(bins))
        for v in range(1, 128):
            b = c.velocity_to_bin(v)
            assert c.velocity_to_bin(c.bin_to_velocity(b)) == b


def test_exact_token_ids_of_a_hand_made_example():
    c = Codec()
    notes = NoteArray.from_lists(
        [
            (2 * STEP, 10 * STEP, 60, 100),  # bin (99 * 16) // 127 = 12
            (2 * STEP, 5 * STEP, 64, 100),
            (5 * STEP, 200 * STEP, 67, 40),  # bin (39 * 16) // 127 = 4; sounds past the 4 s segment
        ]
    )
    first = notes_to_tokens(notes, c, start_s=0.0, segment_s=4.0)
    assert first.tolist() == [
        3,  # tie (no notes carried in)
        5,  # shift 2: time 2 steps
        141,  # velocity bin 12
        184,  # note_on 60
        188,  # note_on 64
        8,  # shift 5: time 5 (times count from the segment start)
        276,  # note_off 64
        133,  # velocity bin 4
        191,  # note_on 67
        13,  # shift 10: time 10
        272,  # note_off 60
        2,  # eos (67 is still sounding: no note_off here)
    ]
    second = notes_to_tokens(notes, c, start_s=4.0, segment_s=4.0)
    assert second.tolist() == [191, 3, 78, 279, 2]  # tie 67 | time 75, note_off 67, eos
    third = notes_to_tokens(notes, c, start_s=8.0, segment_s=4.0)
    assert third.tolist() == [TIE, EOS]
    got, invalid = tokens_to_notes([first, second, third], c, starts_s=[0.0, 4.0, 8.0], end_s=12.0)
    assert invalid == 0
    assert_same_notes(got, quantize_notes(notes, c))
    assert got.velocity.tolist() == [c.bin_to_velocity(12), c.bin_to_velocity(12), c.bin_to_velocity(4)]


def test_late_times_use_a_run_of_shifts():
    c = Codec(max_shift_steps=10)
    notes = NoteArray.from_lists([(25 * STEP, 26 * STEP, 60, 64), (26 * STEP, 27 * STEP, 62, 64)])
    toks = notes_to_tokens(notes, c)

    def shift(n):
        return c.encode_event("shift", n)

    vel, on, off = (
        c.encode_event("velocity", c.velocity_to_bin(64)),
        c.encode_event("note_on", 60),
        c.encode_event("note_off", 60),
    )
    assert toks.tolist()[:7] == [TIE, shift(10), shift(10), shift(5), vel, on, shift(10)]
    assert toks.tolist()[7:10] == [shift(10), shift(6), off]  # time 26 is the run 10 + 10 + 6
    d = decode_tokens(toks, c)
    assert_same_notes(d.notes, quantize_notes(notes, c))


def _random_grid_notes(rng, n, *, duration_steps, sps=31.25):
    rows = []
    for _ in range(n):
        on = int(rng.integers(0, duration_steps - 2))
        off = on + int(rng.integers(1, 150))
        rows.append((on / sps, off / sps, int(rng.integers(21, 109)), int(rng.integers(1, 128))))
    return NoteArray.from_lists(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_through_segments_is_exact_on_the_grid(seed):
    rng = np.random.default_rng(seed)
    c = Codec()
    notes = _random_grid_notes(rng, 80, duration_steps=375)  # 12 s, many notes crossing segments
    # notes that end exactly on a segment boundary, and one that spans three segments
    notes = NoteArray.from_lists(
        list(zip(notes.onset_s, notes.offset_s, notes.pitch, notes.velocity))
        + [(100 * STEP, 125 * STEP, 30, 50), (125 * STEP, 250 * STEP, 31, 60), (10 * STEP, 300 * STEP, 32, 70)]
    )
    q = quantize_notes(notes, c)
    starts = [0.0, 4.0, 8.0, 12.0, 16.0]
    segs = [notes_to_tokens(notes, c, start_s=s, segment_s=4.0) for s in starts]
    assert all(s[-1] == EOS for s in segs)
    got, invalid = tokens_to_notes(segs, c, starts_s=starts, end_s=20.0)
    assert invalid == 0
    assert_same_notes(got, q)


def test_quantize_resolves_overlaps_and_zero_lengths():
    c = Codec()
    notes = NoteArray.from_lists(
        [
            (0.0, 0.5, 60, 80),
            (0.2, 0.4, 60, 80),  # restrike while sounding: the first one ends at 0.2
            (0.2, 0.3, 60, 80),  # the same key struck twice at once: keep the longest
            (1.0, 1.001, 62, 80),  # shorter than a step: one step long
            (1.0, 2.0, 120, 80),  # outside the codec's pitch range
        ]
    )
    q = quantize_notes(notes, c)
    assert q.pitch.tolist() == [60, 60, 62]
    assert _steps(q.onset_s) == [0, 6, 31]
    assert _steps(q.offset_s) == [6, 12, 32]
    d = decode_tokens(notes_to_tokens(notes, c), c)
    assert d.invalid == 0
    assert_same_notes(d.notes, q)


def test_invalid_tokens_are_skipped_and_counted():
    c = Codec()
    on, off, sh, vel = (
        (lambda p: c.encode_event("note_on", p)),
        (lambda p: c.encode_event("note_off", p)),
        (lambda n: c.encode_event("shift", n)),
        (lambda b: c.encode_event("velocity", b)),
    )
    tokens = [
        on(50),  # a tie for a pitch nobody carried in: invalid
        TIE,
        vel(8),
        on(60),
        sh(10),
        999,  # outside the vocabulary: invalid
        off(61),  # 61 is not sounding: invalid
        PAD,  # padding inside the events: invalid
        TIE,  # a second tie: invalid
        START,  # invalid
        off(60),
        sh(5),
        -3,  # invalid
        EOS,
        on(70),
        sh(3),
        off(70),  # after eos: not read
    ]
    d = decode_tokens(tokens, c, start_s=1.0)
    assert d.invalid == 7
    assert d.notes.pitch.tolist() == [60]
    assert _steps(d.notes.onset_s) == [round(1.0 * 31.25)]
    assert _steps(d.notes.offset_s) == [round(1.0 * 31.25) + 10]
    assert d.notes.velocity.tolist() == [c.bin_to_velocity(8)]
    assert d.open == {}


def test_carried_notes_end_when_the_tie_section_drops_them():
    c = Codec()
    on, off, sh = (
        (lambda p: c.encode_event("note_on", p)),
        (lambda p: c.encode_event("note_off", p)),
        (lambda n: c.encode_event("shift", n)),
    )
    first = [TIE, on(60), on(64), EOS]  # both still sounding at the end of segment 1
    second = [on(64), TIE, sh(2), off(64), EOS]  # only 64 carries on
    notes, invalid = tokens_to_notes([first, second], c, starts_s=[0.0, 4.0], end_s=8.0)
    assert invalid == 0
    by_pitch = {int(p): (a, b) for a, b, p in zip(notes.onset_s, notes.offset_s, notes.pitch)}
    assert by_pitch[60] == pytest.approx((0.0, 4.0))
    assert by_pitch[64] == pytest.approx((0.0, 4.0 + 2 * STEP))
    # a segment that never closes a note: it lasts to the end of the audio
    notes, _ = tokens_to_notes([[TIE, on(60), EOS], [on(60), TIE, EOS]], c, starts_s=[0.0, 4.0], end_s=6.5)
    assert notes.offset_s.tolist() == pytest.approx([6.5])


def test_garbage_never_raises(rng):
    c = Codec()
    for _ in range(50):
        toks = rng.integers(-5, c.vocab_size + 5, size=int(rng.integers(0, 200)))
        notes, invalid = tokens_to_notes([toks, toks[::-1]], c, starts_s=[0.0, 4.0], end_s=8.0)
        assert invalid >= 0
        assert np.all(notes.offset_s > notes.onset_s)
        assert np.all((notes.pitch >= 21) & (notes.pitch <= 108))


def test_shifts_past_the_segment_end_are_clamped_and_counted():
    c = Codec()
    on, off, sh = (
        (lambda p: c.encode_event("note_on", p)),
        (lambda p: c.encode_event("note_off", p)),
        (lambda n: c.encode_event("shift", n)),
    )
    # segments of 10 steps; the first overruns its end by a 125-step shift
    first = [TIE, on(60), sh(4), off(60), sh(125), on(62), EOS]
    second = [on(62), TIE, sh(100), sh(100), off(62), on(64), EOS]
    starts = [0.0, 10 * STEP]
    notes, invalid = tokens_to_notes([first, second], c, starts_s=starts, end_s=15 * STEP, segment_s=10 * STEP)
    assert invalid == 3  # three shifts ran past their segment's end
    assert notes.pitch.tolist() == [60, 62]  # 64 began at the end of the audio: nothing of it is left
    assert _steps(notes.onset_s) == [0, 10]
    assert _steps(notes.offset_s) == [4, 15]  # 62 cut at the end of the audio
    assert notes.offset_s.max() <= 15 * STEP + 1e-9
