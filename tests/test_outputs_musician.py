"""write_transcription: tempo maps, quantization, pedal, confidence, MusicXML, and the API around them."""

import csv
import json

import numpy as np
import pytest

from amtcli.config import DECODE_HELP, DecodeConfig
from amtcli.errors import BadInput
from amtcli.inference.decoding import explain_decoding
from amtcli.notes import NoteArray, load_pretty_midi, midi_to_notes
from amtcli.outputs import FORMATS, OutputOptions, velocity_from_confidence, write_notes, write_transcription


def played(n_beats=24, period=0.6, start=0.4):
    """A 3/4 waltz at 100 BPM: bass on the downbeat, chords on beats 2 and 3, a melody, confidences."""
    rows = []
    for i in range(n_beats):
        t = start + i * period
        if i % 3 == 0:
            rows.append((t, t + 0.5, 43 + (i // 3) % 3 * 2, 100))
        else:
            rows += [(t, t + 0.3, 55, 60), (t, t + 0.3, 59, 60)]
        rows.append((t, t + 0.55, 67 + (i % 5), 80))
    notes = NoteArray.from_lists(rows)
    rng = np.random.default_rng(0)
    return NoteArray(
        notes.onset_s,
        notes.offset_s,
        notes.pitch,
        notes.velocity,
        notes.program,
        confidence=rng.uniform(0.3, 1.0, len(notes)),
    )


def test_formats_table_has_musicxml():
    assert FORMATS[".musicxml"] == "musicxml"


def test_midi_gets_the_tracked_tempo_and_meter_and_keeps_times(tmp_path):
    notes = played()
    report = write_transcription(notes, tmp_path / "w.mid")
    pm = load_pretty_midi(tmp_path / "w.mid")
    assert report.grid.beats_per_bar == 3
    assert report.grid.tempo_bpm == pytest.approx(100, rel=0.02)
    _, tempi = pm.get_tempo_changes()
    assert tempi[-1] == pytest.approx(100, rel=0.02)  # (the first tempo is the lead-in before the first beat)
    assert pm.time_signature_changes[-1].numerator == 3
    # bar lines on the bass notes
    down = pm.get_downbeats()
    bass = notes.onset_s[notes.pitch < 50]
    assert np.min(np.abs(down[:, None] - bass[None, :]), axis=0).max() < 0.02
    back = midi_to_notes(tmp_path / "w.mid")
    np.testing.assert_allclose(back.onset_s, notes.sorted().onset_s, atol=2e-3)


def test_fixed_tempo_and_no_beats(tmp_path):
    notes = played()
    rep = write_transcription(notes, tmp_path / "t.mid", options=OutputOptions(tempo_bpm=72.0))
    _, tempi = load_pretty_midi(tmp_path / "t.mid").get_tempo_changes()
    assert not rep.grid.tracked and tempi[-1] == pytest.approx(72.0, abs=0.01)
    rep = write_transcription(notes, tmp_path / "n.mid", options=OutputOptions(beats=False))
    assert rep.grid is None
    _, tempi = load_pretty_midi(tmp_path / "n.mid").get_tempo_changes()
    np.testing.assert_allclose(tempi, [120.0])


def test_quantize_report_and_json_beats(tmp_path):
    notes = played()
    rng = np.random.default_rng(1)
    jitter = rng.uniform(-0.03, 0.03, len(notes))
    sloppy = NoteArray(
        notes.onset_s + jitter, notes.offset_s + jitter, notes.pitch, notes.velocity, notes.program, notes.confidence
    )
    rep = write_transcription(sloppy, tmp_path / "q.json", options=OutputOptions(quantize="1/8", tempo_bpm=100.0))
    data = json.loads((tmp_path / "q.json").read_text())
    assert data["time_signature"] == rep.grid.time_signature and len(data["beats_s"]) == len(rep.grid.beats_s)
    assert rep.quantize.onset_max_ms <= 31 and rep.quantize.n_notes == len(data["notes"])
    ons = np.array([n["onset_s"] for n in data["notes"]])
    pos = rep.grid.to_beats(ons) * 2
    np.testing.assert_allclose(pos, np.rint(pos), atol=1e-3)
    assert {"confidence", "release_s"} <= set(data["notes"][0])


def test_csv_has_confidence_and_release(tmp_path):
    notes = played()
    write_notes(notes, tmp_path / "c.csv")
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert list(rows[0]) == ["onset_s", "offset_s", "pitch", "velocity", "confidence", "release_s"]
    np.testing.assert_allclose([float(r["confidence"]) for r in rows], notes.sorted().confidence, atol=1e-3)
    write_notes(NoteArray.from_lists([(0, 1, 60)]), tmp_path / "u.csv")  # unknown confidence: empty cell
    assert next(csv.DictReader((tmp_path / "u.csv").open()))["confidence"] == ""


def test_velocity_from_confidence(tmp_path):
    notes = played()
    v = velocity_from_confidence(notes)
    np.testing.assert_array_equal(v.velocity, np.clip(np.rint(notes.confidence * 127), 1, 127))
    write_transcription(notes, tmp_path / "v.mid", options=OutputOptions(velocity_from="confidence"))
    back = midi_to_notes(tmp_path / "v.mid")
    np.testing.assert_array_equal(back.velocity, v.sorted().velocity)
    with pytest.raises(BadInput):
        OutputOptions(velocity_from="loudness")
    with pytest.raises(BadInput):
        OutputOptions(quantize="1/7")


def test_pedal_goes_to_midi_as_cc64(tmp_path):
    rows = []
    for bar in range(4):
        t0 = 0.5 + 2 * bar
        rows += [(t0 + 0.25 * k, t0 + 1.9, 48 + 4 * k, 70) for k in range(6)]  # arpeggio held to the pedal release
    rep = write_transcription(NoteArray.from_lists(rows), tmp_path / "p.mid", options=OutputOptions(pedal=True))
    assert rep.n_pedal == 4
    pm = load_pretty_midi(tmp_path / "p.mid")
    cc = [c for c in pm.instruments[0].control_changes if c.number == 64]
    assert len(cc) == 8
    # notes end at their key releases (all but the last of each arpeggio earlier than the sounding end)
    early = [n for n in pm.instruments[0].notes if n.end < (n.start - 0.5) // 2 * 2 + 0.5 + 1.8]
    assert len(early) == 20


def test_musicxml_from_a_notearray(tmp_path):
    from music21 import converter

    notes = played()
    rep = write_transcription(notes, tmp_path / "s.musicxml")
    assert rep.key is not None and any(line.startswith("key ") for line in rep.lines)
    score = converter.parse(str(tmp_path / "s.musicxml"))
    pitches = sorted(p.midi for part in score.parts for n in part.stripTies().flatten().notes for p in n.pitches)
    assert pitches == sorted(notes.pitch.tolist())
    assert score.parts[0].recurse().getElementsByClass("TimeSignature")[0].ratioString == "3/4"


def test_decode_help_is_the_one_meaning():
    assert set(DECODE_HELP) == {"onset_threshold", "frame_threshold", "offset_threshold", "min_note_s"}
    rows = explain_decoding(DecodeConfig(onset_threshold=0.3), model_default=DecodeConfig())
    assert rows[0][:3] == ("--onset-threshold", "0.3", "set (model's: 0.5)")
    assert rows[1][2] == "model's" and rows[3][1] == "0.05 s"
    assert [r[3] for r in rows] == list(DECODE_HELP.values())
    tokens = explain_decoding(DecodeConfig(), tokens_model=True)
    assert [r[1] for r in tokens] == ["not used", "not used", "not used", "0.05 s"]


def test_api_threshold_keywords_override_the_model(tmp_path):
    import amtcli

    t = np.arange(16000 * 2) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 261.6 * t) * np.exp(-2 * t)).astype(np.float32)
    loose = amtcli.transcribe_full(audio, model="tiny-test", device="cpu", onset_threshold=0.0, min_note_s=0.0)
    strict = amtcli.transcribe_full(audio, model="tiny-test", device="cpu", onset_threshold=1.0)
    assert loose.decode.onset_threshold == 0.0 and strict.decode.onset_threshold == 1.0
    assert len(loose.notes) > len(strict.notes)
    assert loose.onset_strength.shape == (len(loose.posteriors["onset"]),)
    rep = loose.to_midi(tmp_path / "api.mid", tempo_bpm=90)
    assert rep.path.exists() and rep.grid.tempo_bpm == pytest.approx(90)
