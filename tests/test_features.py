import numpy as np
import pytest
import torch
from conftest import sine

from amtcli.audio.features import (
    CQTFrontEnd,
    NumpyCQT,
    compute_features,
    cqt_kernels,
    get_front_end,
    n_frames_for,
)
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


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "1-bin-per-key", "hop-320"])
@pytest.mark.parametrize("n_samples", [1, 700, 16000 * 3 + 123])
def test_numpy_cqt_equals_nnaudios(cfg, n_samples, rng):
    """The numpy engine (no torch) gives nnAudio's CQT1992v2 up to float32 rounding: its sums run in
    another order than a convolution's, so the tolerance is that of float32 sums of ~10^4 terms (the
    test below shows it is as close to the exact float64 transform as the torch engine)."""
    x = (0.1 * rng.standard_normal((2, n_samples))).astype(np.float32)
    x[1, n_samples // 2 :] = 0
    with torch.inference_mode():
        ref = _nnaudio_cqt(cfg)(torch.from_numpy(x)).numpy()
    fe = NumpyCQT(cfg)
    for row in range(2):
        ours = fe.magnitude(x[row]).T
        assert ours.shape == ref[row].shape == (cfg.n_bins, n_frames_for(n_samples, cfg))
        np.testing.assert_allclose(ours, ref[row], rtol=1e-3, atol=1e-6)
        logs = np.log(ours + cfg.log_offset) - np.log(ref[row] + cfg.log_offset)
        assert float(np.abs(logs).max()) < 1e-4


def test_numpy_and_torch_engines_are_as_close_to_the_exact_transform(rng):
    cfg = FeatureConfig()
    x = (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32)
    kernels, lengths = cqt_kernels(cfg)
    width, hop = kernels.shape[1], cfg.hop_length
    padded = np.zeros(len(x) + width)
    padded[width // 2 : width // 2 + len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, width)[::hop][: n_frames_for(len(x), cfg)]
    exact = np.abs(frames @ kernels.astype(np.complex128).T) * np.sqrt(lengths)
    with torch.inference_mode():
        by_torch = CQTFrontEnd(cfg).magnitude(torch.from_numpy(x)[None])[0].T.numpy()
    by_numpy = NumpyCQT(cfg).magnitude(x)
    err = {k: np.abs(v - exact) / exact for k, v in (("numpy", by_numpy), ("torch", by_torch))}
    assert np.percentile(err["numpy"], 99) < 1e-5
    assert np.percentile(err["numpy"], 99) <= 2 * np.percentile(err["torch"], 99)


@pytest.mark.parametrize("level_db", [None, -24.0])
def test_compute_features_engines_agree(level_db, rng):
    """The numpy engine (the onnxruntime transcription path) and the torch engine give the same
    features, chunking and level normalisation included."""
    cfg = FeatureConfig(level_db=level_db)
    x = (0.01 * rng.standard_normal(16000 * 7 + 77)).astype(np.float32)
    x[16000 * 2 : 16000 * 3] = 0
    a = compute_features(x, config=cfg, chunk_s=2.0, engine="numpy")
    b = compute_features(x, config=cfg, chunk_s=2.0, engine="torch")
    assert a.shape == b.shape == (n_frames_for(len(x), cfg), cfg.n_bins)
    assert float(np.abs(a - b).max()) < 1e-4
    if level_db is None:  # chunked == one pass over the whole signal
        np.testing.assert_allclose(a, NumpyCQT(cfg)(x), atol=1e-5)


def test_unknown_engine_is_one_clear_error():
    with pytest.raises(BadInput, match="engine"):
        compute_features(np.zeros(100, np.float32), config=FeatureConfig(), engine="tf")


def test_features_module_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from amtcli.audio.features import compute_features; from amtcli.config import FeatureConfig; "
        "compute_features(np.zeros(4000, np.float32), config=FeatureConfig(level_db=-24.0), engine='numpy'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_top_bin_above_nyquist_is_one_clear_error():
    with pytest.raises(BadInput, match="Nyquist"):
        cqt_kernels(FeatureConfig(sample_rate=4000))


def test_variable_q_shortens_the_low_kernels_only():
    cqt, vqt = FeatureConfig(), FeatureConfig(gamma=3.0)
    _, l_cqt = cqt_kernels(cqt)
    kernels, l_vqt = cqt_kernels(vqt)
    assert np.array_equal(cqt_kernels(FeatureConfig(gamma=0.0))[1], l_cqt)  # gamma 0 is the CQT
    assert l_vqt[0] < 0.3 * l_cqt[0]  # A0: the bandwidth grows from ~0.8 Hz to ~3.8 Hz
    assert l_vqt[-1] > 0.95 * l_cqt[-1] - 1  # C8: alpha * f dwarfs gamma
    assert np.all(np.diff(l_vqt) <= 0) and kernels.shape[1] >= l_vqt.max()
    # a bass note's onset: the energy at its key rises within fewer frames
    x = np.zeros(16000 * 3, np.float32)
    t = np.arange(16000 * 2) / 16000
    x[16000:] = np.sin(2 * np.pi * 41.2 * t) * np.exp(-t / 1.5)  # E1 = MIDI 28 from 1.0 s
    key = (28 - cqt.fmin_midi) * cqt.bins_per_semitone

    def rise_frames(cfg):
        e = compute_features(x, config=cfg)[:, key]
        lo, hi = e[5], e[45:55].max()
        above = lambda q: int(np.argmax(e > lo + q * (hi - lo)))  # noqa: E731
        return above(0.9) - above(0.1)

    assert rise_frames(vqt) < 0.5 * rise_frames(cqt)


def test_variable_q_engines_agree(rng):
    cfg = FeatureConfig(gamma=5.0)
    x = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    with torch.inference_mode():
        ours = CQTFrontEnd(cfg).magnitude(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(NumpyCQT(cfg).magnitude(x).T, ours, rtol=1e-3, atol=1e-6)
    with pytest.raises(BadInput):
        FeatureConfig(gamma=-1.0)
