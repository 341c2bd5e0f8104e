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
