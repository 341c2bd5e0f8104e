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
