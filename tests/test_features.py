import numpy as np
import pytest
import torch
from conftest import sine

from amtcli.audio.features import CQTFrontEnd, compute_features, cqt_kernels, get_front_end, n_frames_for
from amtcli.config import FeatureConfig
from amtcli.errors import BadInput


def test_shape_and_peak_at_the_right_key():
    cfg = FeatureConfig()
    x = sine(440.0, 2.0)  # A4 = MIDI 69
    f = compute_features(x, config=cfg)
    assert f.shape == (n_frames_for(len(x), cfg), cfg.n_bins)
    peak_bin = int(np.argmax(f[30]))
    assert peak_bin // cfg.bins_per_semitone == 69 - cfg.fmin_midi


def test_chunked_equals_whole(rng):
    cfg = FeatureConfig()
    x = (0.1 * rng.standard_normal(16000 * 12)).astype(np.float32)
    chunked = compute_features(x, config=cfg, chunk_s=3.0)
    whole = get_front_end(cfg)(torch.from_numpy(x))[0].T.numpy()
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_no_kernels_in_state_dict():
    assert len(get_front_end(FeatureConfig()).state_dict()) == 0


def test_short_audio():
    f = compute_features(np.zeros(100, np.float32), config=FeatureConfig())
    assert f.shape == (1, 176)


def _nnaudio_cqt(cfg):
    import warnings

    nnaudio = pytest.importorskip("nnAudio.features")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nnaudio.CQT1992v2(
            sr=cfg.sample_rate,
            hop_length=cfg.hop_length,
            fmin=cfg.fmin_hz,
            n_bins=cfg.n_bins,
            bins_per_octave=cfg.bins_per_octave,
            filter_scale=cfg.filter_scale,
            output_format="Magnitude",
            center=True,
            pad_mode="constant",
            verbose=False,
        )


CONFIGS = [
    FeatureConfig(),
    FeatureConfig(bins_per_semitone=1, filter_scale=1.0),
    FeatureConfig(hop_length=320, n_keys=60),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "1-bin-per-key", "hop-320"])
def test_kernels_are_nnaudios(cfg):
    ref = _nnaudio_cqt(cfg)
    kernels, lengths = cqt_kernels(cfg)
    assert kernels.shape == (cfg.n_bins, ref.kernel_width)
    np.testing.assert_array_equal(kernels.real, ref.cqt_kernels_real[:, 0].numpy())
    np.testing.assert_array_equal(kernels.imag, ref.cqt_kernels_imag[:, 0].numpy())
    np.testing.assert_array_equal(lengths, ref.lenghts.numpy())


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "1-bin-per-key", "hop-320"])
@pytest.mark.parametrize("n_samples", [1, 700, 16000 * 3 + 123])
def test_band_wise_cqt_equals_nnaudios(cfg, n_samples, rng):
    """The band-wise convolution gives nnAudio's CQT1992v2 (float32 rounding apart)."""
    x = torch.from_numpy((0.1 * rng.standard_normal((2, n_samples))).astype(np.float32))
    x[1, n_samples // 2 :] = 0  # a silent stretch: log(0 + offset) on both sides
    with torch.inference_mode():
        ref = _nnaudio_cqt(cfg)(x)
        ours = CQTFrontEnd(cfg).magnitude(x)
    assert ours.shape == ref.shape == (2, cfg.n_bins, n_frames_for(n_samples, cfg))
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-4, atol=1e-7)
    logs = torch.log(ours + cfg.log_offset) - torch.log(ref + cfg.log_offset)
    assert float(logs.abs().max()) < 1e-5


def test_top_bin_above_nyquist_is_one_clear_error():
    with pytest.raises(BadInput, match="Nyquist"):
        cqt_kernels(FeatureConfig(sample_rate=4000))
