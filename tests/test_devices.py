"""Device and precision choice: auto follows the hardware, measured, cached, never assumed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from amtcli import devices
from amtcli.errors import BadInput


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _fake_cpu(monkeypatch, *, native: bool, speedup: float):
    calls = []
    monkeypatch.setattr(devices, "cpu_bf16_native", lambda: native)

    def measure(**_):
        calls.append(1)
        return speedup

    monkeypatch.setattr(devices, "measure_cpu_bf16_speedup", measure)
    return calls


def test_cpu_without_native_bf16_runs_fp32_without_measuring(cache_home, monkeypatch):
    calls = _fake_cpu(monkeypatch, native=False, speedup=5.0)
    p = devices.resolve_precision("auto", "cpu")
    assert p.name == "fp32" and p.dtype is None and "no native bf16" in p.reason
    assert not calls


def test_native_bf16_is_chosen_only_when_measured_faster(cache_home, monkeypatch):
    calls = _fake_cpu(monkeypatch, native=True, speedup=1.8)
    p = devices.resolve_precision("auto", "cpu")
    assert p.name == "bf16" and p.dtype is torch.bfloat16 and "1.80x" in p.reason
    # the verdict is cached per machine: a second resolution does not measure again
    assert devices.resolve_precision(None, "cpu").name == "bf16"
    assert len(calls) == 1
    cached = json.loads((cache_home / "amt" / "precision.json").read_text())
    assert [v["speedup"] for v in cached.values()] == [1.8]


def test_native_bf16_that_measures_slower_stays_fp32(cache_home, monkeypatch):
    _fake_cpu(monkeypatch, native=True, speedup=0.7)
    assert devices.resolve_precision("auto", "cpu").name == "fp32"


def test_a_corrupt_cache_is_measured_again(cache_home, monkeypatch):
    calls = _fake_cpu(monkeypatch, native=True, speedup=1.5)
    (cache_home / "amt").mkdir()
    (cache_home / "amt" / "precision.json").write_text("{not json")
    assert devices.resolve_precision("auto", "cpu").name == "bf16"
    assert len(calls) == 1


def test_explicit_choices_win_and_bad_ones_are_refused(cache_home, monkeypatch):
    calls = _fake_cpu(monkeypatch, native=False, speedup=1.0)
    assert devices.resolve_precision("bf16", "cpu").dtype is torch.bfloat16
    assert devices.resolve_precision("FP32", "cpu").dtype is None
    with pytest.raises(BadInput, match="needs CUDA"):
        devices.resolve_precision("fp16", "cpu")
    with pytest.raises(BadInput, match="expected one of"):
        devices.resolve_precision("int8", "cpu")
    assert not calls


def test_the_micro_benchmark_returns_a_ratio():
    ratio = devices.measure_cpu_bf16_speedup(repeats=1)
    # a finite ratio of two measured times; 0.0 where this oneDNN has no bf16 kernel for a layer
    assert math.isfinite(ratio) and ratio >= 0.0


def test_autocast_context_follows_the_choice():
    x = torch.ones(4, 4)
    with devices.Precision("bf16", torch.bfloat16, "test").autocast("cpu"):
        assert (x @ x).dtype == torch.bfloat16
    with devices.Precision("fp32", None, "test").autocast("cpu"):
        assert (x @ x).dtype == torch.float32


def test_amt_info_prints_the_choice(cache_home, monkeypatch):
    from typer.testing import CliRunner

    from amtcli.cli import app

    _fake_cpu(monkeypatch, native=False, speedup=1.0)
    result = CliRunner().invoke(app, ["info", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "precision auto -> fp32" in result.output


def test_transcribe_refuses_a_bad_precision_in_one_line(tmp_path):
    from conftest import sine
    from typer.testing import CliRunner

    from amtcli.audio.io import save_audio
    from amtcli.cli import app

    src = save_audio(tmp_path / "a.wav", sine(440, 0.5), sample_rate=16000)
    result = CliRunner().invoke(app, ["transcribe", str(src), "--precision", "int8", "--model", "tiny-test"])
    assert result.exit_code == 2
    assert "expected one of" in result.output and "Traceback" not in result.output
