import numpy as np
import torch

from amtcli.audio.features import compute_features, get_front_end, n_frames_for
from amtcli.config import FeatureConfig
from conftest import sine


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
