"""Fixtures made in code: sine audio, a 3-note MIDI, a seeded rng, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(os.environ.get("AMT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def sine(freq_hz: float, duration_s: float, sample_rate: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.fixture
def three_notes():
    from amtcli.notes import NoteArray

    return NoteArray.from_lists([(0.10, 0.60, 60, 90), (0.70, 1.20, 64, 70), (1.30, 1.90, 67, 50)])


@pytest.fixture
def three_note_midi(tmp_path, three_notes):
    from amtcli.notes import notes_to_midi

    return notes_to_midi(three_notes, tmp_path / "three.mid", program=0)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    import torch

    has_cuda = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(pytest.mark.skip(reason="needs ../shared/data"))


def render_sines(notes, *, duration_s: float, sample_rate: int = 16000) -> np.ndarray:
    """Additive harmonic tones with a decaying envelope for each note: a stand-in instrument."""
    n = int(duration_s * sample_rate)
    out = np.zeros(n, np.float32)
    for on, off, p, v in zip(notes.onset_s, notes.offset_s, notes.pitch, notes.velocity):
        a, b = int(on * sample_rate), min(n, int(off * sample_rate))
        if b <= a:
            continue
        t = np.arange(b - a) / sample_rate
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in (1, 2, 3) if h * f0 < sample_rate / 2)
        env = np.exp(-3 * t) * np.minimum(1, t / 0.005) * np.minimum(1, (b - a - np.arange(b - a)) / 80)
        out[a:b] += (v / 127) * 0.2 * tone * env
    return out


def write_sine_dataset(root: Path, *, n_items: int = 6, duration_s: float = 4.0, seed: int = 0) -> Path:
    """A dataset in the `amt synth` layout, rendered with :func:`render_sines` (no FluidSynth needed)."""
    import json

    from amtcli.audio.io import save_audio
    from amtcli.notes import NoteArray, notes_to_midi

    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    rows = []
    for i in range(n_items):
        rows_n = []
        t = 0.1
        while t < duration_s - 0.6:
            p = int(rng.integers(48, 84))
            d = float(rng.uniform(0.2, 0.5))
            rows_n.append((t, t + d, p, int(rng.integers(40, 120))))
            t += float(rng.uniform(0.15, 0.4))
        notes = NoteArray.from_lists(rows_n)
        audio = render_sines(notes, duration_s=duration_s)
        item = f"item{i:03d}"
        save_audio(root / "audio" / f"{item}.flac", audio, sample_rate=16000)
        notes_to_midi(notes, root / "labels" / f"{item}.mid", program=0)
        split = "validation" if i == n_items - 1 else "train"
        rows.append(
            {
                "id": item,
                "audio": f"audio/{item}.flac",
                "label": f"labels/{item}.mid",
                "features": None,
                "split": split,
                "duration_s": duration_s,
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def store_features(root: Path, *, feature_config=None, gain: float = 1.0) -> Path:
    """Give every item of the dataset in ``root`` stored features, as `amt synth --features` does:
    ``features/<id>.npy`` and the front end in ``dataset.json`` (readers use stored features only when
    it is theirs). ``gain`` scales the audio first (features made at another level on purpose)."""
    import json

    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import FeatureConfig, to_dict

    fc = feature_config or FeatureConfig()
    (root / "features").mkdir(exist_ok=True)
    rows = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        audio = load_audio(root / r["audio"], sample_rate=fc.sample_rate) * np.float32(gain)
        np.save(root / "features" / f"{r['id']}.npy", compute_features(audio, config=fc))
        r["features"] = f"features/{r['id']}.npy"
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta_path = root / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta_path.write_text(json.dumps({**meta, "feature_config": to_dict(fc)}))
    return root


@pytest.fixture(scope="session")
def sine_dataset(tmp_path_factory):
    return write_sine_dataset(tmp_path_factory.mktemp("sines"))
