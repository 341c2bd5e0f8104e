"""`amt transcribe` on many files: nothing lost, every file tried, --jobs, --skip-existing, -o rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import render_sines
from typer.testing import CliRunner

from amtcli.audio.io import save_audio
from amtcli.cli import app

runner = CliRunner()


def _take(path, seed: int, seconds: float = 2.0):
    from amtcli.notes import NoteArray

    rng = np.random.default_rng(seed)
    rows = [(0.1 + 0.4 * k, 0.4 + 0.4 * k, int(rng.integers(48, 80)), 90) for k in range(int(seconds / 0.4) - 1)]
    return save_audio(path, render_sines(NoteArray.from_lists(rows), duration_s=seconds), sample_rate=16000)


@pytest.fixture
def takes(tmp_path):
    """takes/a.wav, takes/b.flac, takes/sub/c.wav, takes/sub/d.wav: four short recordings."""
    src = tmp_path / "takes"
    (src / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.wav", "b.flac", "sub/c.wav", "sub/d.wav"]):
        _take(src / name, seed=i)
    return src


def _run(*args):
    return runner.invoke(app, ["transcribe", *map(str, args), "--model", "tiny-test", "--device", "cpu"])


def _outputs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- item 4: every file tried


def test_a_write_error_does_not_end_the_batch(takes, tmp_path, monkeypatch):
    """An OSError while writing one output (disk full, permissions) is that file's failure, not the batch's."""
    from amtcli import outputs

    real = outputs.write_notes

    def flaky(notes, path, **kwargs):
        if path.name == "b.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(notes, path, **kwargs)

    monkeypatch.setattr(outputs, "write_notes", flaky)
    r = _run(takes, "-o", tmp_path / "out", "--format", "csv")
    assert r.exit_code == 1, r.output
    assert sorted(_outputs(tmp_path / "out")) == ["a.csv", "sub/c.csv", "sub/d.csv"]
    assert "3 of 4 files transcribed" in r.output
    assert "b.csv: Permission denied" in r.output and "Traceback" not in r.output


def test_an_unwritable_output_folder_is_refused_before_any_work(takes, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the sub-folder should go")
    r = _run(takes, "-o", out)
    assert r.exit_code not in (0, 70), r.output
    assert "sub" in r.output and "Traceback" not in r.output
    assert sorted(_outputs(out)) == ["sub"]  # nothing was transcribed


def test_existing_outputs_are_refused_up_front_and_skip_existing_does_the_rest(takes, tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "c.mid").write_bytes(b"precious")
    r = _run(takes, "-o", out)
    assert r.exit_code != 0 and "--skip-existing" in r.output, r.output
    assert sorted(_outputs(out)) == ["sub/c.mid"]  # refused before any work
    r = _run(takes, "-o", out, "--skip-existing")
    assert r.exit_code == 0, r.output
    assert (out / "sub" / "c.mid").read_bytes() == b"precious"
    assert sorted(_outputs(out)) == ["a.mid", "b.mid", "sub/c.mid", "sub/d.mid"]
    assert "1 skipped" in r.output
    r = _run(takes, "-o", out, "--skip-existing", "--overwrite")
    assert r.exit_code == 2 and "--skip-existing" in r.output


def test_an_output_that_is_an_input_is_refused(tmp_path):
    """A WAV file named take.json: `-o take.json --overwrite` would have replaced the recording."""
    wav = _take(tmp_path / "take.wav", seed=1)
    disguised = tmp_path / "take.json"
    disguised.write_bytes(wav.read_bytes())
    r = _run(disguised, "-o", disguised, "--overwrite")
    assert r.exit_code != 0 and "also an input" in r.output, r.output
    assert disguised.read_bytes() == wav.read_bytes()


def test_two_inputs_writing_one_output_are_refused(tmp_path):
    _take(tmp_path / "x.wav", seed=1)
    _take(tmp_path / "x.flac", seed=2)
    (tmp_path / "out").mkdir()
    r = _run(tmp_path / "x.wav", tmp_path / "x.flac", "-o", tmp_path / "out", "--overwrite")
    assert r.exit_code != 0 and "both write" in r.output, r.output
    assert not (tmp_path / "out" / "x.mid").exists()


# ----------------------------------------------------------------------------- issue 13 item 4: --jobs


def test_jobs_give_the_same_files_as_one_by_one_and_go_on_past_a_bad_file(takes, tmp_path):
    (takes / "sub" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    # thresholds inside the untrained tiny model's narrow range of probabilities, so notes come out
    # and the smallest numerical difference between the runs would show
    decode = ["--onset-threshold", "0.465", "--frame-threshold", "0.505"]
    one = _run(takes, "-o", tmp_path / "one", "--format", "json", *decode)
    assert one.exit_code == 1 and "broken.wav" in one.output, one.output
    many = _run(takes, "-o", tmp_path / "many", "--format", "json", "--jobs", "2", *decode)
    assert many.exit_code == 1, many.output
    assert "broken.wav" in many.output and "4 of 5 files transcribed" in many.output
    assert "Traceback" not in many.output
    a, b = _outputs(tmp_path / "one"), _outputs(tmp_path / "many")
    assert sorted(a) == ["a.json", "b.json", "sub/c.json", "sub/d.json"]
    assert a == b  # byte for byte
    assert any(json.loads(v)["notes"] for v in a.values())  # not trivially equal: notes were found


def test_jobs_must_be_positive(takes, tmp_path):
    r = _run(takes, "-o", tmp_path / "o", "--jobs", "0")
    assert r.exit_code == 2 and "Invalid value" in r.output and "--jobs" in r.output, r.output


# ------------------------------------------------------------------- item 10: what -o means


@pytest.mark.parametrize("name", ["song.txt", "song.xyz", "v1.2"])
def test_an_unknown_output_suffix_is_an_error_naming_the_formats(tmp_path, name):
    from amtcli.outputs import FORMATS

    wav = _take(tmp_path / "song.wav", seed=0)
    r = _run(wav, "-o", tmp_path / name)
    assert r.exit_code == 2, r.output
    assert all(suffix in r.output for suffix in FORMATS)
    assert not (tmp_path / name).exists()


def test_a_trailing_slash_or_no_suffix_means_a_folder(tmp_path):
    wav = _take(tmp_path / "song.wav", seed=0)
    r = _run(wav, "-o", f"{tmp_path / 'midi.v2'}/")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "midi.v2" / "song.mid").is_file()
    r = _run(wav, "-o", tmp_path / "plain")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plain" / "song.mid").is_file()


def test_one_file_name_for_many_inputs_is_an_error(takes, tmp_path):
    r = _run(takes, "-o", tmp_path / "all.mid")
    assert r.exit_code == 2 and "give a folder" in r.output, r.output
    assert not (tmp_path / "all.mid").exists()


def test_formats_come_from_the_one_table(tmp_path, monkeypatch):
    """A format added to amtcli.outputs.FORMATS joins the error messages without touching the command."""
    from amtcli import outputs

    monkeypatch.setitem(outputs.FORMATS, ".abc", "abc")
    wav = _take(tmp_path / "song.wav", seed=0)
    r = _run(wav, "-o", tmp_path / "song.txt")
    assert r.exit_code == 2 and ".abc" in r.output, r.output
    r = _run(wav, "--format", "txt", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "abc" in r.output and "csv" in r.output, r.output


def test_an_existing_plot_is_not_overwritten_without_overwrite(tmp_path):
    wav = _take(tmp_path / "song.wav", seed=0)
    (tmp_path / "song.png").write_bytes(b"my drawing")
    r = _run(wav, "--plot")
    assert r.exit_code != 0 and "song.png" in r.output, r.output
    assert (tmp_path / "song.png").read_bytes() == b"my drawing" and not (tmp_path / "song.mid").exists()
    r = _run(wav, "--plot", "--overwrite")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "song.png").read_bytes()[:4] == b"\x89PNG"
