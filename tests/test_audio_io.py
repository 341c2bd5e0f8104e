import numpy as np
import pytest
import soundfile as sf
from conftest import sine

from amtcli.audio.io import audio_info, load_audio, save_audio
from amtcli.errors import AmtWarning, BadAudio


def test_stereo_44k_to_mono_16k(tmp_path):
    x = sine(440, 2.0, 44100)
    stereo = np.stack([x, 0.5 * x], axis=1)
    p = tmp_path / "a.wav"
    sf.write(p, stereo, 44100)
    y = load_audio(p, sample_rate=16000)
    assert y.dtype == np.float32
    assert abs(len(y) - 32000) <= 2
    # the mono mix has amplitude 0.75 * 0.5 and the pitch survives resampling
    assert 0.35 < np.abs(y[1000:-1000]).max() < 0.39
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / len(y) - 440) < 2


@pytest.mark.parametrize("ext", [".flac", ".ogg", ".wav"])
def test_formats_round_trip(tmp_path, ext):
    x = sine(220, 1.0)
    p = save_audio(tmp_path / f"x{ext}", x, sample_rate=16000)
    y = load_audio(p, sample_rate=16000)
    assert abs(len(y) - len(x)) < 200
    assert np.corrcoef(x[2000:14000], y[2000:14000])[0, 1] > 0.95
    assert audio_info(p)[0] == 16000


def test_offset_and_duration(tmp_path):
    x = np.arange(16000, dtype=np.float32) / 16000
    p = tmp_path / "ramp.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    y = load_audio(p, sample_rate=16000, offset_s=0.5, duration_s=0.25)
    assert len(y) == 4000
    assert y[0] == pytest.approx(0.5, abs=1e-4)


def test_bad_files(tmp_path):
    with pytest.raises(BadAudio, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(BadAudio, match="empty"):
        load_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all" * 10)
    with pytest.raises(BadAudio, match="not a readable audio file"):
        load_audio(text)
    with pytest.raises(BadAudio, match="folder"):
        load_audio(tmp_path)


def test_truncated_file(tmp_path):
    p = tmp_path / "t.wav"
    sf.write(p, sine(440, 1.0), 16000)
    data = p.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    # a truncated WAV decodes what is there, with a warning saying so
    with pytest.warns(AmtWarning, match="truncated"):
        y = load_audio(cut)
    assert 0 < len(y) <= 16000


def test_save_never_leaves_partial(tmp_path):
    p = save_audio(tmp_path / "o.flac", sine(100, 0.1), sample_rate=16000)
    assert p.exists() and not list(tmp_path.glob(".*.tmp"))
