"""The token Transformer: gradient reversal, greedy decoding with and without the KV cache, a tiny
model that learns a segment, training steps with and without unlabeled audio, export and transcribe."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import sine
from typer.testing import CliRunner

from amtcli.config import FeatureConfig, TrainConfig
from amtcli.errors import BadInput, OutputExists
from amtcli.nets import build_model
from amtcli.nets.transformer import DomainDiscriminator, grad_reverse
from amtcli.tokens import EOS, notes_to_tokens
from amtcli.training.checkpoints import load_checkpoint
from amtcli.training.seq2seq import (
    DomainConfig,
    Seq2SeqSpec,
    decoder_inputs,
    domain_lambda,
    domain_loss,
    train_seq2seq,
)

TINY = {
    "conv_channels": [4, 4],
    "d_model": 32,
    "n_heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "ff_dim": 64,
    "dropout": 0.0,
    "segment_frames": 32,
    "max_tokens": 24,
    "disc_hidden": 16,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: one thread is ~10x faster than two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cached_dataset(sine_dataset, tmp_path_factory):
    """The sine dataset with its features cached beside it (as `amt synth --features` writes them)."""
    import shutil

    from conftest import store_features

    root = tmp_path_factory.mktemp("cached") / "sines"
    shutil.copytree(sine_dataset, root)
    return store_features(root)


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("transformer", {**TINY, **kw}, FeatureConfig())


def _features(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 176, generator=g) - 4.0


def test_gradient_reversal_flips_the_encoders_gradient_only():
    model = _tiny()
    disc = DomainDiscriminator(32, 16)
    xs, xr = _features(2, 32, 1), _features(2, 32, 2) + 1.0

    def grads(scale):
        model.zero_grad()
        disc.zero_grad()
        ms, mr = model.encode(xs), model.encode(xr)
        if scale is None:  # plain backprop: the encoder helps the discriminator
            logits = disc(torch.cat([ms, mr]))
            labels = torch.cat([torch.zeros(2, 32), torch.ones(2, 32)])
            F.binary_cross_entropy_with_logits(logits, labels).backward()
        else:
            loss, _ = domain_loss(disc, ms, mr, scale=scale)
            loss.backward()
        enc = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if p.grad is not None])
        dis = torch.cat([p.grad.flatten() for p in disc.parameters()])
        return enc, dis

    enc_plain, dis_plain = grads(None)
    enc_rev, dis_rev = grads(1.0)
    enc_half, dis_half = grads(0.5)
    assert enc_plain.abs().sum() > 0
    torch.testing.assert_close(enc_rev, -enc_plain)
    torch.testing.assert_close(enc_half, -0.5 * enc_plain)
    torch.testing.assert_close(dis_rev, dis_plain)  # the discriminator still descends its loss
    torch.testing.assert_close(dis_half, dis_plain)
    # the decoder gets nothing from the domain loss
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("layers.", "head.", "embed.")))


def test_grad_reverse_is_identity_forward():
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_reverse(x, 2.0)
    torch.testing.assert_close(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, -2.0))


def test_domain_lambda_warms_up():
    cfg = DomainConfig(weight=0.4, warmup_steps=100)
    assert domain_lambda(0, cfg) == 0.0
    assert domain_lambda(50, cfg) == pytest.approx(0.2)
    assert domain_lambda(500, cfg) == pytest.approx(0.4)
    assert domain_lambda(0, DomainConfig(weight=0.4, warmup_steps=0)) == pytest.approx(0.4)


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_decoding_with_and_without_cache_agree(seed):
    model = _tiny(seed).eval()
    x = _features(3, 32, seed)
    cached = model.generate(x, max_tokens=20, use_cache=True)
    plain = model.generate(x, max_tokens=20, use_cache=False)
    assert len(cached) == 3
    assert any(len(c) > 1 for c in cached)
    for a, b in zip(cached, plain):
        assert a.tolist() == b.tolist()
        assert 0 not in a.tolist() and 1 not in a.tolist()  # never pad or start


def test_incremental_decoding_matches_teacher_forcing():
    model = _tiny(3).eval()
    x = _features(2, 32, 3)
    tokens = torch.randint(4, model.codec.vocab_size, (2, 12))
    with torch.no_grad():
        full = model(x, tokens)
        memory = model.encode(x)
        kvs = model.memory_kv(memory)
        caches = [{} for _ in model.layers]
        steps = []
        for i in range(12):
            h = model._embed(tokens[:, i : i + 1], start=i)
            for layer, kv, cache in zip(model.layers, kvs, caches):
                h = layer(h, kv, cache)
            steps.append(model.head(model.out_norm(h)))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def test_a_tiny_model_learns_to_write_a_segment():
    """Teacher forcing and greedy decoding agree on the alignment: a memorised segment comes back exactly."""
    from amtcli.notes import NoteArray

    torch.manual_seed(0)
    model = _tiny(0, max_tokens=16)
    notes = NoteArray.from_lists([(0.064, 0.32, 60, 100), (0.16, 0.48, 64, 50)])
    target = torch.from_numpy(notes_to_tokens(notes, model.codec, segment_s=32 / 31.25))[None]
    x = _features(1, 32, 5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        logits = model(x, decoder_inputs(target))
        loss = F.cross_entropy(logits[0], target[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = model.generate(x)[0]
    assert out.tolist() == target[0].tolist()
    assert out[-1] == EOS


# ------------------------------------------------------------------------------- training loop


@pytest.fixture(scope="module")
def unlabeled_dir(tmp_path_factory):
    """'Real' audio: noisy sines of another timbre, no labels."""
    from amtcli.audio.io import save_audio

    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(7)
    for i in range(2):
        audio = sine(220.0 * (i + 1), 3.0, amp=0.3) + 0.02 * rng.standard_normal(48000).astype(np.float32)
        save_audio(root / f"take{i}.wav", audio, sample_rate=16000)
    return root


def _spec(ds, steps, unlabeled=(), **kw):
    tc = TrainConfig(
        steps=steps,
        batch_size=2,
        val_every=1000,
        val_items=1,
        checkpoint_every=2,
        warmup_steps=2,
        lr=3e-3,
        precision="fp32",
        threads=1,
        **kw,
    )
    return Seq2SeqSpec(
        "transformer",
        dict(TINY),
        FeatureConfig(),
        tc,
        data=[str(ds)],
        unlabeled=[str(u) for u in unlabeled],
        domain_config=DomainConfig(weight=0.5, warmup_steps=2),
    )


def _records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_with_and_without_unlabeled_audio(cached_dataset, unlabeled_dir, tmp_path):
    plain = tmp_path / "plain"
    train_seq2seq(_spec(cached_dataset, 10), out_dir=plain)
    steps = [r for r in _records(plain) if "loss" in r]
    assert steps and all(np.isfinite(r["token_loss"]) for r in steps)
    assert not any("domain_loss" in r for r in steps)
    assert not any("frame_loss" in r for r in steps)  # the auxiliary loss is off by default
    assert all(r["tokens_per_s"] > 0 for r in steps)
    val = [r for r in _records(plain) if "val" in r]
    assert val and {"note_f1", "invalid_tokens_per_item"} <= set(val[-1]["val"])
    ck = load_checkpoint(plain / "checkpoints" / "last.pt")
    assert ck["step"] == 10 and "discriminator" in ck

    adv = tmp_path / "adv"
    train_seq2seq(_spec(cached_dataset, 10, unlabeled=[unlabeled_dir]), out_dir=adv)
    steps = [r for r in _records(adv) if "loss" in r]
    assert all(np.isfinite(r["domain_loss"]) and 0.0 <= r["disc_acc"] <= 1.0 for r in steps)
    assert steps[-1]["domain_lambda"] == pytest.approx(0.5)
    ck_adv = load_checkpoint(adv / "checkpoints" / "last.pt")
    # the discriminator trained only when there was real audio to tell apart
    untouched = all(torch.equal(ck["discriminator"][k], v) for k, v in ck_adv["discriminator"].items())
    assert not untouched
    cfg = json.loads((adv / "config.json").read_text())
    assert cfg["unlabeled"] == [str(unlabeled_dir)] and cfg["domain_config"]["weight"] == 0.5


def test_resume_continues_exactly_with_domain_confusion(cached_dataset, unlabeled_dir, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_seq2seq(_spec(cached_dataset, 4, unlabeled=[unlabeled_dir]), out_dir=straight)
    train_seq2seq(_spec(cached_dataset, 2, unlabeled=[unlabeled_dir]), out_dir=split)
    train_seq2seq(_spec(cached_dataset, 4, unlabeled=[unlabeled_dir]), out_dir=split, resume=True)
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (straight, split))
    for part in ("model", "discriminator"):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0)
    with pytest.raises(OutputExists, match="already there"):
        train_seq2seq(_spec(cached_dataset, 4), out_dir=straight)
    other = Seq2SeqSpec(
        **{**_spec(cached_dataset, 6, unlabeled=[unlabeled_dir]).__dict__, "domain_config": DomainConfig(weight=0.9)}
    )
    with pytest.raises(BadInput, match="different --unlabeled"):
        train_seq2seq(other, out_dir=split, resume=True)


@pytest.mark.slow
def test_cli_train_export_transcribe(cached_dataset, unlabeled_dir, tmp_path):
    from amtcli.cli import app
    from amtcli.notes import midi_to_notes

    runner = CliRunner()
    toml = tmp_path / "tiny.toml"
    toml.write_text(
        "[model]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items())
        + '[train]\nval_items = 1\nthreads = 1\nprecision = "fp32"\n'
    )
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "--model",
            "transformer",
            "--data",
            str(cached_dataset),
            "--unlabeled",
            str(unlabeled_dir),
            "--config",
            str(toml),
            "--steps",
            "3",
            "--batch-size",
            "2",
            "--domain-warmup",
            "1",
            "--out",
            str(run),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "discriminator accuracy" in res.output
    rel = tmp_path / "release"
    res = runner.invoke(app, ["models", "export", str(run), "-o", str(rel)])
    assert res.exit_code == 0, res.output
    assert json.loads((rel / "config.json").read_text())["architecture"] == "transformer"
    card = (rel / "README.md").read_text()  # the card says how the domain gap was handled
    assert "gradient-reversal" in card and "from 0 to 0.3 over 1 steps" in card and str(unlabeled_dir) in card
    wav = tmp_path / "a.wav"
    from amtcli.audio.io import save_audio

    save_audio(wav, sine(440.0, 5.0), sample_rate=16000)  # two segments
    res = runner.invoke(
        app, ["transcribe", str(wav), "--model", str(rel), "-o", str(tmp_path / "a.mid"), "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert "invalid token" in res.output  # token models say how many tokens were skipped
    notes = midi_to_notes(tmp_path / "a.mid")
    assert np.all(notes.offset_s <= 5.0 + 1 / 31.25 + 1e-6)  # nothing past the last frame


def test_cli_refuses_domain_options_for_other_models(sine_dataset, tmp_path):
    from amtcli.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app, ["train", "--data", str(sine_dataset), "--unlabeled", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    assert res.exit_code != 0 and "for --model transformer" in res.output
    res = runner.invoke(
        app,
        [
            "train",
            "--model",
            "transformer",
            "--data",
            str(sine_dataset),
            "--unlabeled",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code != 0 and "no such folder" in res.output
    assert "Traceback" not in res.output


def test_frame_head_is_optional_and_shaped(cached_dataset, tmp_path):
    with_head = _tiny(frame_loss_weight=1.0)
    assert with_head.frame_logits(with_head.encode(_features(2, 32))).shape == (2, 32, 2, 88)
    without = _tiny()
    assert not any(k.startswith("frame_head") for k in without.state_dict())
    with pytest.raises(Exception, match="no frame head"):
        without.frame_logits(torch.zeros(1, 4, 32))
    spec = _spec(cached_dataset, 2)
    spec.model_config = {**spec.model_config, "frame_loss_weight": 1.0}
    train_seq2seq(spec, out_dir=tmp_path / "run")
    steps = [r for r in _records(tmp_path / "run") if "loss" in r]
    assert steps and all(np.isfinite(r["frame_loss"]) and r["frame_loss"] > 0 for r in steps)
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert any(k.startswith("frame_head") for k in ck["model"])


# ------------------------------------------------------------------------------- several processes


def _average_on_two_ranks(root: str) -> None:
    from pathlib import Path

    from amtcli.training import distributed as ddp

    rank = ddp.context().rank
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(rank + 1))
    unused = torch.nn.Parameter(torch.zeros(2))  # no gradient: left alone
    (loss,) = ddp.average_gradients([p, unused], 10.0 * (rank + 1))
    Path(root, f"rank{rank}.json").write_text(
        json.dumps({"grad": p.grad.tolist(), "loss": loss, "unused": unused.grad is None})
    )


def _ddp_runs(ds: str, real: str, root: str) -> None:
    """In every process: 4 steps straight, and 2 steps resumed to 4, both with domain confusion."""
    from pathlib import Path

    root = Path(root)
    train_seq2seq(_spec(ds, 4, unlabeled=[real]), out_dir=root / "straight")
    train_seq2seq(_spec(ds, 2, unlabeled=[real]), out_dir=root / "split")
    train_seq2seq(_spec(ds, 4, unlabeled=[real]), out_dir=root / "split", resume=True)


@pytest.mark.slow
def test_gradients_are_averaged_over_processes(tmp_path):
    from amtcli.training import distributed as ddp

    ddp.launch(_average_on_two_ranks, (str(tmp_path),), nproc=2, device="cpu")
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == {"grad": [1.5, 1.5, 1.5], "loss": 15.0, "unused": True}


@pytest.mark.slow
def test_two_processes_train_one_transformer_and_resume_exactly(cached_dataset, unlabeled_dir, tmp_path):
    from amtcli.training import distributed as ddp

    ddp.launch(_ddp_runs, (str(cached_dataset), str(unlabeled_dir), str(tmp_path)), nproc=2, device="cpu")
    straight = tmp_path / "straight"
    (replicas,) = [r["replicas"] for r in _records(straight) if "replicas" in r]
    assert [r["rank"] for r in replicas] == [0, 1]
    assert replicas[0]["weights_sha256"] == replicas[1]["weights_sha256"]  # one model ...
    assert replicas[0]["data_crc32"] != replicas[1]["data_crc32"]  # ... from different batches
    assert sorted(p.name for p in straight.iterdir()) == ["checkpoints", "config.json", "metrics.jsonl"]  # rank 0 wrote
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (straight, tmp_path / "split"))
    assert a["step"] == b["step"] == 4 and len(a["rng_ranks"]) == 2
    for part in ("model", "discriminator"):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0)


def test_bundled_synthetic_transformer_transcribes_the_example(monkeypatch):
    """The shipped token model loads from the bundled copy with no network and writes notes in the
    piano's range for the bundled example (its accuracy is on its model card, measured elsewhere)."""
    from pathlib import Path

    import amtcli
    from amtcli.audio.io import load_audio

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, _release = amtcli.load_model("synthetic-transformer", device="cpu")
    assert getattr(model, "output_kind", None) == "tokens"
    audio = load_audio(Path(__file__).resolve().parents[1] / "examples" / "piano.flac", sample_rate=16000)[: 16000 * 8]
    notes = amtcli.transcribe(audio, model=model, device="cpu")
    assert len(notes) > 5
    assert 40 <= notes.pitch.min() and notes.pitch.max() <= 90  # BWV 846 bars 1-3 lie in C3..E5
    assert (notes.offset_s > notes.onset_s).all() and notes.offset_s.max() <= 8.0 + 1e-6
