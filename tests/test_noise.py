import numpy as np
import pytest
from conftest import sine

from amtcli.audio.noise import make_noise, mix_noise
from amtcli.errors import BadInput


@pytest.mark.parametrize("snr", [20.0, 0.0, -5.0])
def test_snr_is_what_was_asked(rng, snr):
    x = sine(440, 1.0)
    y = mix_noise(x, snr_db=snr, kind="pink", rng=rng)
    measured = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert measured == pytest.approx(snr, abs=0.05)


def test_colours_tilt_the_spectrum(rng):
    def slope(kind):
        p = np.abs(np.fft.rfft(make_noise(1 << 16, kind=kind, rng=rng))) ** 2
        lo, hi = p[10:100].mean(), p[10000:20000].mean()
        return 10 * np.log10(lo / hi)

    w, p, b = slope("white"), slope("pink"), slope("brown")
    assert abs(w) < 3 and 15 < p < 30 and 35 < b < 55


def test_unknown_kind(rng):
    with pytest.raises(BadInput):
        make_noise(10, kind="purple", rng=rng)


# ---------------------------------------------------------------------------- noise recordings


@pytest.fixture
def hum(tmp_path):
    """A 1 s 'noise recording': mains hum at 100 Hz with a little white noise."""
    from amtcli.audio.io import save_audio

    t = np.arange(16000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 100 * t) + 0.01 * np.random.default_rng(1).standard_normal(16000)
    return save_audio(tmp_path / "hum.wav", x.astype(np.float32), sample_rate=16000)


@pytest.mark.parametrize("seconds", [0.5, 3.0])  # shorter and longer than the recording (looped)
def test_a_noise_recording_is_mixed_at_the_snr(hum, seconds):
    x = sine(1000, seconds)
    y = mix_noise(x, snr_db=0.0, kind=str(hum), rng=np.random.default_rng(0))
    noise = y - x
    assert 10 * np.log10(np.mean(x**2) / np.mean(noise**2)) == pytest.approx(0.0, abs=0.05)
    spectrum = np.abs(np.fft.rfft(noise))
    assert np.argmax(spectrum) * 16000 / len(noise) == pytest.approx(100, abs=2)  # the hum, not a colour
    again = mix_noise(x, snr_db=0.0, kind=str(hum), rng=np.random.default_rng(0))
    other = mix_noise(x, snr_db=0.0, kind=str(hum), rng=np.random.default_rng(5))
    assert np.array_equal(y, again) and not np.array_equal(y, other)  # the excerpt follows the generator


def test_bad_noise_recordings_are_refused_in_one_line(tmp_path):
    from amtcli.audio.io import save_audio
    from amtcli.audio.noise import check_noise
    from amtcli.errors import AmtError

    assert check_noise("pink") == "pink"
    short = save_audio(tmp_path / "click.wav", np.ones(800, np.float32) * 0.1, sample_rate=16000)
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000, np.float32), sample_rate=16000)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    for path, words in (
        (short, "at least"),
        (silent, "silence"),
        (text, "notes.wav"),
        (tmp_path / "nope.wav", "unknown"),
    ):
        with pytest.raises(AmtError) as err:
            check_noise(str(path))
        assert words in str(err.value) and "\n" not in str(err.value)
