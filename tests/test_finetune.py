"""`amt finetune` on a tiny generated pairs folder, training data from any dataset, freezing, curves."""

import json

import numpy as np
import pytest
import torch
from conftest import render_sines
from typer.testing import CliRunner

from amtcli.cli import app
from amtcli.errors import BadInput

runner = CliRunner()


def write_pairs(root, *, n: int = 6, duration_s: float = 3.0, seed: int = 0):
    """``take<i>.flac`` + ``take<i>.mid`` rendered with the sine instrument (6 pairs: 4 train, 1 validation, 1 test)."""
    from amtcli.audio.io import save_audio
    from amtcli.notes import NoteArray, notes_to_midi

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rows, t = [], 0.1
        while t < duration_s - 0.5:
            d = float(rng.uniform(0.2, 0.4))
            rows.append((t, t + d, int(rng.integers(55, 80)), int(rng.integers(50, 110))))
            t += float(rng.uniform(0.2, 0.4))
        notes = NoteArray.from_lists(rows)
        save_audio(root / f"take{i}.flac", render_sines(notes, duration_s=duration_s), sample_rate=16000)
        notes_to_midi(notes, root / f"take{i}.mid", program=0)
    return root


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"))


# ------------------------------------------------------------------------------------- data


def test_load_examples_reads_any_dataset_and_caches_features(pairs, tmp_path):
    from amtcli.audio.features import compute_features
    from amtcli.audio.io import load_audio
    from amtcli.config import FeatureConfig
    from amtcli.datasets import load_dataset
    from amtcli.training.data import dataset_source, load_examples, parse_source

    fc = FeatureConfig()
    src = dataset_source("pairs", pairs)
    assert parse_source(src) == ("pairs", pairs.resolve())
    assert parse_source(str(tmp_path)) == (None, tmp_path)
    items = load_dataset("pairs", root=pairs, split="train")
    train = load_examples([src], split="train", feature_config=fc, cache_dir=tmp_path / "cache")
    assert [e.id for e in train] == [f"pairs/{it.id}" for it in items] and len(train) == 4
    first = items[0]
    np.testing.assert_array_equal(
        train[0].features, compute_features(load_audio(first.audio, sample_rate=fc.sample_rate), config=fc)
    )
    np.testing.assert_array_equal(train[0].notes.pitch, first.load_notes().pitch)
    assert train[0].audio == first.audio
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4
    again = load_examples([src], split="train", feature_config=fc, cache_dir=tmp_path / "cache")
    assert isinstance(again[0].features, np.memmap)  # read back from the cache, not recomputed
    np.testing.assert_array_equal(again[0].features, train[0].features)
    assert len(load_examples([src], split="validation", feature_config=fc)) == 1


def test_freeze_encoder_stops_gradients_before_the_lstm():
    from amtcli.nets import build_model
    from amtcli.training.loop import freeze_modules

    model = build_model("unet-bilstm", {"channels": [4, 8, 8], "lstm_hidden": 8})
    frozen = freeze_modules(model, ["encoder"], architecture="unet-bilstm")
    names = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert names == {"input_norm", "enc0", "to_keys", "enc1", "bottleneck", "dec1"}
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"lstm", "head", "key_bias"}
    assert len(frozen) == 6
    with pytest.raises(BadInput, match="--freeze decoder"):
        freeze_modules(model, ["decoder"], architecture="unet-bilstm")


# -------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_finetune_prints_zero_shot_versus_fine_tuned(pairs, tmp_path):
    from amtcli.datasets import load_dataset
    from amtcli.training.finetune import compare_on
    from amtcli.zoo import load_model

    run, plot = tmp_path / "run", tmp_path / "curve.png"
    args = [
        "finetune",
        "--from",
        "tiny-test",
        "--to",
        "pairs",
        "--root",
        str(pairs),
        "--out",
        str(run),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--crop-s",
        "2",
        "--val-every",
        "2",
        "--freeze",
        "encoder",
        "--lr",
        "3e-3",
        "--plot",
        str(plot),
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "zero-shot: tiny-test" in out and "fine-tuned: run" in out and "change" in out
    assert "Note+Off F1" in out and "test · 1 recording(s)" in out

    # the encoder stayed as it was (BatchNorm statistics too), the rest trained; the release is best.pt
    from amtcli.training.checkpoints import load_checkpoint

    start, _ = load_model("tiny-test")
    s0, s1 = start.state_dict(), load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    for k in s0:
        if k.split(".")[0] in ("input_norm", "enc0", "to_keys", "enc1", "bottleneck", "dec1"):
            assert torch.equal(s0[k], s1[k]), k
    assert not torch.equal(s0["head.weight"], s1["head.weight"])
    tuned, _ = load_model(str(run / "release"))
    best = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    assert all(torch.equal(v, best[k]) for k, v in tuned.state_dict().items())

    # the table's numbers are the two models scored on the test split
    report = json.loads((run / "finetune.json").read_text())
    assert report["split_counts"] == {"train": 4, "validation": 1, "test": 1} and report["test_items"] == 1
    items = load_dataset("pairs", root=pairs, split="test")
    again = compare_on(items, [("a", load_model("tiny-test")), ("b", str(run / "release"))], device="cpu")
    assert report["zero_shot"] == again["a"] and report["fine_tuned"] == again["b"]
    for v in report["fine_tuned"].values():
        assert f"{v:.3f}" in out

    # validation from step 0 on (where the fine-tune starts), then every 2 steps and at the end
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "val" in r] == [0, 2, 3]
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"

    # a second run beside it cannot clobber the release; the curves of both runs plot together
    res = runner.invoke(
        app,
        [
            "finetune",
            "--from",
            "tiny-test",
            "--to",
            "pairs",
            "--root",
            str(pairs),
            "--out",
            str(tmp_path / "other"),
            "--release",
            str(run / "release"),
        ],
    )
    assert res.exit_code != 0 and "already holds" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, ["finetune", "--compare", str(run), "--compare", str(run), "--plot", str(tmp_path / "both.svg")]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "both.svg").read_text().count("from tiny-test") >= 2


def test_finetune_option_errors_are_one_line(pairs, tmp_path):
    cases = [
        (["finetune", "--to", "pairs", "--root", str(pairs), "--out", str(tmp_path / "r")], "needs --from"),
        (["finetune", "--from", "tiny-test", "--to", "nosuch", "--out", str(tmp_path / "r")], "unknown dataset"),
        (
            [
                "finetune",
                "--from",
                "tiny-test",
                "--to",
                "pairs",
                "--root",
                str(pairs),
                "--out",
                str(tmp_path / "r"),
                "--freeze",
                "lstm",
            ],
            "--freeze lstm",
        ),
        (
            [
                "finetune",
                "--from",
                "tiny-test",
                "--to",
                "pairs",
                "--root",
                str(pairs),
                "--out",
                str(tmp_path / "r"),
                "--noise-rounds",
                "1",
                "--noise-target",
                "0.5:0.1",
            ],
            "0 < LOW < HIGH",
        ),
        (
            [
                "finetune",
                "--from",
                "tiny-test",
                "--to",
                "pairs",
                "--root",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "r"),
            ],
            "not a folder",
        ),
        (["finetune", "--plot", str(tmp_path / "p.png")], "--compare"),
        (["finetune", "--compare", str(tmp_path), "--plot", str(tmp_path / "p.png")], "not a training run"),
        (
            ["finetune", "--from", "nosuch-model", "--to", "pairs", "--root", str(pairs), "--out", str(tmp_path / "r")],
            "nosuch-model",
        ),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code != 0, args
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2, res.output
    assert not (tmp_path / "r").exists()  # nothing was trained or written


# ------------------------------------------------------------------------------ small sets, folds


@pytest.fixture(scope="module")
def five_takes(tmp_path_factory):
    """Five takes of one's own playing: the 80/10/10 split holds nothing out."""
    return write_pairs(tmp_path_factory.mktemp("takes"), n=5, duration_s=2.0, seed=1)


def test_small_set_split_errors_are_one_line(five_takes, tmp_path):
    base = ["finetune", "--from", "tiny-test", "--to", "pairs", "--root", str(five_takes), "--out", str(tmp_path / "r")]
    cases = [
        ([], "--folds K"),  # the dataset's own split: all five in train
        (["--folds", "6"], "only 5 piece(s)"),
        (["--folds", "3", "--fold", "3"], "0..2"),
        (["--fold", "1"], "needs --folds"),
        (["--split-by", "take"], "--split-by take"),
        (["--folds", "3", "--release", str(tmp_path / "rel")], "give --fold"),
    ]
    for extra, message in cases:
        res = runner.invoke(app, base + extra)
        assert res.exit_code != 0, extra
        assert message in res.output, (extra, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2, res.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "rel").exists()


@pytest.mark.slow
def test_finetune_folds_test_every_take_once_and_pool_the_counts(five_takes, tmp_path):
    from amtcli.datasets import load_dataset

    run = tmp_path / "run"
    args = ["finetune", "--from", "tiny-test", "--to", "pairs", "--root", str(five_takes), "--out", str(run)]
    args += [
        "--folds",
        "3",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--crop-s",
        "1",
        "--val-every",
        "1",
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "held-out folds · 5 recording(s), each tested once" in res.output
    reports = [json.loads((run / f"fold-{i}" / "finetune.json").read_text()) for i in range(3)]
    tested = [x for r in reports for x in r["test_ids"]]
    assert sorted(tested) == sorted(it.id for it in load_dataset("pairs", root=five_takes, split="all"))
    for i, r in enumerate(reports):
        assert r["split"] == {"by": "piece", "folds": 3, "fold": i, "seed": 0}
        assert r["split_counts"]["train"] >= 2 and r["split_counts"]["validation"] == 1
        assert (run / f"fold-{i}" / "release" / "model.safetensors").is_file()
        spec = json.loads((run / f"fold-{i}" / "config.json").read_text())
        assert spec["split"]["fold"] == i  # the training loop read the same fold
    pooled = json.loads((run / "folds.json").read_text())
    tp, n_ref, n_est = (sum(r["counts"]["fine_tuned"]["note"][k] for r in reports) for k in range(3))
    assert pooled["fine_tuned"]["note_f1"] == pytest.approx(2 * tp / (n_ref + n_est) if n_ref + n_est else 0.0)
    assert pooled["test_items"] == 5

    # --resume reads finished folds back instead of training them again
    again = runner.invoke(app, args + ["--resume"])
    assert again.exit_code == 0, again.output
    assert again.output.count("finished before") == 3
    assert json.loads((run / "folds.json").read_text())["fine_tuned"] == pooled["fine_tuned"]

    # amt evaluate scores a fold's release on exactly that fold's held-out takes
    js = tmp_path / "fold1.json"
    res = runner.invoke(
        app,
        ["evaluate", "-d", "pairs", "--root", str(five_takes), "--folds", "3", "--fold", "1"]
        + ["-m", str(run / "fold-1" / "release"), "--device", "cpu", "--json", str(js)],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    assert sorted(f["id"] for f in doc["runs"][0]["files"]) == sorted(reports[1]["test_ids"])
    assert doc["runs"][0]["aggregate"]["micro"]["note"]["f1"] == pytest.approx(reports[1]["fine_tuned"]["note_f1"])
    res = runner.invoke(app, ["evaluate", "-d", "pairs", "--root", str(five_takes), "--folds", "3"])
    assert res.exit_code != 0 and "--fold 0..2" in res.output and "Traceback" not in res.output


def test_keep_thresholds_exports_the_starting_models_decoding(pairs, tmp_path):
    """--keep-thresholds: no threshold search on the validation split; the release decodes as the start did
    (and the default run does search: calibration.json is written)."""
    from amtcli.zoo import read_release_config, resolve

    common = ["--from", "tiny-test", "--to", "pairs", "--root", str(pairs), "--steps", "2", "--batch-size", "2"]
    common += ["--crop-s", "2", "--val-every", "2", "--device", "cpu"]
    res = runner.invoke(app, ["finetune", *common, "--out", str(tmp_path / "kept"), "--keep-thresholds"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "kept" / "calibration.json").exists()
    start = read_release_config(resolve("tiny-test")).decode_config
    assert read_release_config(tmp_path / "kept" / "release").decode_config == start
    res = runner.invoke(app, ["finetune", *common, "--out", str(tmp_path / "chosen")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "chosen" / "calibration.json").is_file()


def test_pitch_balanced_finetune_starts_from_the_models_own_outputs(pairs, tmp_path, monkeypatch):
    """A release gives probabilities: a pitch-balanced fine-tune starts from its pitch-balanced equivalent,
    so the step-0 validation (the prior removed again) sees exactly the starting model's key biases."""
    import torch

    from amtcli.training import loop
    from amtcli.zoo import load_model

    seen = []
    real_validate = loop.validate
    monkeypatch.setattr(
        loop,
        "validate",
        lambda model, *a, **kw: seen.append(model.key_bias.detach().clone()) or real_validate(model, *a, **kw),
    )
    args = ["finetune", "--from", "tiny-test", "--to", "pairs", "--root", str(pairs), "--steps", "1"]
    args += ["--batch-size", "2", "--crop-s", "2", "--device", "cpu", "--pitch-balanced", "--out", str(tmp_path / "pb")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    start, _ = load_model("tiny-test")
    torch.testing.assert_close(seen[0], start.key_bias.detach(), rtol=0, atol=1e-6)
