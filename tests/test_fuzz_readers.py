"""Fuzz the readers of everything a user hands amt: audio, MIDI, JAMS, MAPS text, release config.json,
run.toml, the registry and the dataset manifest. Random bytes, valid files cut short at many points,
and valid files with bytes flipped: each read either works or raises one AmtError with a one-line
message; through the CLI, never a traceback and never exit 70 (an internal error).

Seeded, so a failure reproduces; ``AMT_FUZZ_CASES`` raises the number of cases per reader.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.errors import AmtError

N = int(os.environ.get("AMT_FUZZ_CASES", "24"))
runner = CliRunner()


def variants(valid: bytes, seed: int, n: int = N) -> list[bytes]:
    """``n`` damaged versions of ``valid``: cut short, bytes flipped, random junk, and the empty file."""
    rng = np.random.default_rng(seed)
    out = [b"", valid[:1], valid[: len(valid) // 2]]
    while len(out) < n:
        kind = len(out) % 3
        if kind == 0:  # truncated at a random point
            out.append(valid[: int(rng.integers(1, max(2, len(valid))))])
        elif kind == 1:  # a few bytes flipped
            data = bytearray(valid)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 9))):
                data[pos] ^= int(rng.integers(1, 256))
            out.append(bytes(data))
        else:  # random bytes, sometimes behind the valid header
            junk = rng.integers(0, 256, size=int(rng.integers(1, 2048)), dtype=np.uint8).tobytes()
            out.append(valid[: int(rng.integers(0, 64))] + junk)
    return out


ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "x",
    "../../etc/passwd",
    [],
    [1, "a"],
    {},
    {"a": 1},
]


def json_variants(doc, seed: int, n: int = N) -> list[bytes]:
    """``n`` versions of a JSON document with one value replaced by an odd one, or one key deleted:
    well-formed files that are wrong inside, which byte damage rarely produces."""
    rng = np.random.default_rng(seed)

    def slots(node, path=()):
        yield path
        if isinstance(node, dict):
            for k, v in node.items():
                yield from slots(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from slots(v, path + (i,))

    all_slots = [p for p in slots(doc) if p]
    out = []
    for _ in range(n):
        d = json.loads(json.dumps(doc))
        path = all_slots[int(rng.integers(len(all_slots)))]
        parent = d
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.25:
            del parent[path[-1]]
        else:
            parent[path[-1]] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        out.append(json.dumps(d).encode())
    return out


def check_reader(read, path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read(path)
    except AmtError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{len(data)} bytes: error message {message!r}"
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{type(exc).__name__} on {len(data)} damaged bytes ({data[:24]!r}...): {exc}")


# --------------------------------------------------------------------------------------- valid files


def _wav(tmp_path, name="v.wav", **kw):
    from amtcli.audio.io import save_audio

    return save_audio(
        tmp_path / name, (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), sample_rate=16000
    ).read_bytes()


def _midi(tmp_path):
    from amtcli.notes import NoteArray, notes_to_midi

    notes = NoteArray.from_lists([(0.1, 0.5, 60, 90), (0.6, 1.0, 64, 70), (1.1, 1.5, 67, 50)])
    return notes_to_midi(notes, tmp_path / "v.mid").read_bytes()


def _jams():
    data = [{"time": 0.1 * k, "duration": 0.2, "value": 60 + k, "confidence": None} for k in range(4)]
    return json.dumps(
        {"annotations": [{"namespace": "note_midi", "data": data}], "file_metadata": {"duration": 1.0}}
    ).encode()


# ------------------------------------------------------------------------------------- library level


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_audio_reader(tmp_path, suffix):
    from amtcli.audio.io import audio_info, load_audio

    valid = _wav(tmp_path, name=f"v{suffix}")
    for i, data in enumerate(variants(valid, seed=len(suffix))):
        check_reader(load_audio, tmp_path / f"f{i}{suffix}", data)
        check_reader(audio_info, tmp_path / f"g{i}{suffix}", data)


def test_midi_reader(tmp_path):
    from amtcli.notes import midi_to_notes

    for i, data in enumerate(variants(_midi(tmp_path), seed=2)):
        check_reader(lambda p: midi_to_notes(p, sustain=True), tmp_path / f"f{i}.mid", data)


def test_jams_and_maps_text_readers(tmp_path):
    from amtcli.datasets.base import read_jams_notes, read_maps_txt

    for i, data in enumerate(variants(_jams(), seed=3) + json_variants(json.loads(_jams()), seed=3, n=3 * N)):
        check_reader(read_jams_notes, tmp_path / f"f{i}.jams", data)
    text = b"OnsetTime\tOffsetTime\tMidiPitch\r\n0.5\t1.0\t60\r\n1.0\t1.5\t62\r\n"
    for i, data in enumerate(variants(text, seed=4)):
        check_reader(read_maps_txt, tmp_path / f"f{i}.txt", data)


def test_release_config_reader(tmp_path):
    from pathlib import Path

    from amtcli.zoo import load_model

    valid = (Path(__file__).resolve().parents[1] / "models" / "tiny-test" / "config.json").read_bytes()
    weights = (Path(__file__).resolve().parents[1] / "models" / "tiny-test" / "model.safetensors").read_bytes()
    folder = tmp_path / "rel"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(weights)
    for data in variants(valid, seed=5) + json_variants(json.loads(valid), seed=5, n=3 * N):
        check_reader(lambda p: load_model(str(p.parent)), folder / "config.json", data)
    (folder / "config.json").write_bytes(valid)
    for data in variants(weights, seed=6, n=12):
        check_reader(lambda p: load_model(str(p.parent)), folder / "model.safetensors", data)


def test_registry_reader(tmp_path, monkeypatch):
    from amtcli.zoo import registry

    valid = registry.REGISTRY_PATH.read_bytes()
    path = tmp_path / "registry.json"
    monkeypatch.setenv("AMT_REGISTRY", str(path))
    for data in variants(valid, seed=7) + json_variants(json.loads(valid), seed=7, n=3 * N):
        check_reader(lambda p: registry.load_registry(), path, data)


def test_manifest_reader(tmp_path):
    from amtcli.datasets import load_dataset

    rows = [
        {"id": f"i{k}", "audio": f"audio/i{k}.flac", "label": f"labels/i{k}.mid", "split": "test", "duration_s": 1.0}
        for k in range(3)
    ]
    valid = "".join(json.dumps(r) + "\n" for r in rows).encode()
    root = tmp_path / "ds"
    root.mkdir()
    lines = [json.dumps(r).encode() for r in rows]
    inside = [b"\n".join(lines[:1] + [v] + lines[2:]) + b"\n" for v in json_variants(rows[1], seed=8, n=2 * N)]
    for data in variants(valid, seed=8) + inside:
        check_reader(lambda p: load_dataset("synthetic", root=root, split="all"), root / "manifest.jsonl", data)


def test_toml_config_reader(tmp_path):
    from amtcli.cli.train import load_toml_config

    valid = b"[train]\nsteps = 10\nlr = 0.001\n\n[features]\nhop_length = 512\n\n[decode]\nonset_threshold = 0.4\n"
    for i, data in enumerate(variants(valid, seed=9)):
        check_reader(load_toml_config, tmp_path / f"f{i}.toml", data)


def test_toml_config_values_reach_the_configs_checked(tmp_path):
    """A run.toml that parses but holds wrong types or values is refused naming the field."""
    from amtcli.config import DecodeConfig, FeatureConfig, TrainConfig, from_dict

    for cls, table in (
        (FeatureConfig, {"hop_length": 0}),
        (FeatureConfig, {"hop_length": "x"}),
        (DecodeConfig, {"onset_threshold": 2.0}),
        (TrainConfig, {"steps": "many"}),
    ):
        with pytest.raises(AmtError, match=next(iter(table))):
            from_dict(cls, table)


# ----------------------------------------------------------------------------------------- CLI level


def _no_traceback(result) -> None:
    assert result.exit_code != 70, result.output
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def test_transcribe_on_damaged_audio(tmp_path):
    valid = _wav(tmp_path)
    for i, data in enumerate(variants(valid, seed=10, n=10)):
        path = tmp_path / f"f{i}.wav"
        path.write_bytes(data)
        result = runner.invoke(
            app, ["transcribe", str(path), "-o", str(tmp_path / f"f{i}.mid"), "-m", "tiny-test", "--device", "cpu"]
        )
        _no_traceback(result)


def test_evaluate_on_damaged_references_and_predictions(tmp_path):
    from dataset_fixtures import write_pairs

    root = write_pairs(tmp_path / "takes", ["t1", "t2"])
    preds = tmp_path / "preds"
    preds.mkdir()
    valid = (root / "t1.mid").read_bytes()
    for i, data in enumerate(variants(valid, seed=11, n=8)):
        (root / "t1.mid").write_bytes(data)
        (preds / "t1.mid").write_bytes(data)
        (preds / "t2.mid").write_bytes(valid if i % 2 else data)
        _no_traceback(runner.invoke(app, ["evaluate", "--root", str(root), "-p", str(preds)]))


def test_models_info_on_damaged_release_config(tmp_path):
    import shutil
    from pathlib import Path

    folder = tmp_path / "rel"
    shutil.copytree(Path(__file__).resolve().parents[1] / "models" / "tiny-test", folder)
    valid = (folder / "config.json").read_bytes()
    for data in variants(valid, seed=12, n=10):
        (folder / "config.json").write_bytes(data)
        _no_traceback(runner.invoke(app, ["models", "info", str(folder)]))
