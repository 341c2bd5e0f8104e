"""The joint audio-score embedding: network, ranking loss, batch construction, training loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from amtcli.config import FeatureConfig, to_dict

TINY = {"channels": (4, 8), "embed_dim": 8, "snippet_frames": 32}


# ------------------------------------------------------------------------------------ fixtures in code


def random_piece(seed: int, *, duration_s: float = 8.0, low: int = 48, high: int = 84):
    """A melody over sustained two-note chords, different for every seed."""
    from amtcli.notes import NoteArray

    rng = np.random.default_rng(seed)
    rows, t = [], 0.0
    while t < duration_s - 0.3:
        d = float(rng.choice([0.2, 0.3, 0.4, 0.6]))
        rows.append((t, t + d * 0.9, int(rng.integers(low + 12, high)), int(rng.integers(60, 110))))
        t += d
    t = 0.0
    while t < duration_s - 0.5:
        root = int(rng.integers(low, low + 12))
        rows += [(t, t + 0.95, root, 70), (t, t + 0.95, root + int(rng.choice([3, 4, 7])), 70)]
        t += 1.0
    return NoteArray.from_lists(rows)


def additive_render(notes, *, timbre: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Notes -> audio with a harmonic tone per note: two timbres stand in for two soundfonts."""
    n = int((notes.end_s + 0.3) * sample_rate)
    out = np.zeros(n, np.float32)
    amps = [1.0 / k for k in range(1, 7)] if timbre == 0 else [1.0 if k % 2 else 0.2 for k in range(1, 7)]
    decay = 3.0 if timbre == 0 else 1.2
    for on, off, p, v in zip(notes.onset_s, notes.offset_s, notes.pitch, notes.velocity):
        a, b = int(on * sample_rate), min(n, int((off + 0.05) * sample_rate))
        t = np.arange(b - a) / sample_rate
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        tone = sum(amp * np.sin(2 * np.pi * k * f0 * t) for k, amp in enumerate(amps, 1) if k * f0 < sample_rate / 2)
        env = np.exp(-decay * t) * np.minimum(1.0, (b - a - np.arange(b - a)) / (0.05 * sample_rate))
        out[a:b] += (v / 127.0) * 0.1 * (tone * env).astype(np.float32)
    return out


def make_pair_dataset(
    root, *, n_pieces: int, seed: int = 0, renders: int = 2, splits=None, features: bool = True, duration_s: float = 5.0
):
    """A dataset folder in the layout `amt synth` writes (manifest.jsonl, audio/, labels/, features/)."""
    from amtcli.audio.features import compute_features
    from amtcli.audio.io import save_audio
    from amtcli.notes import notes_to_midi

    fc = FeatureConfig()
    lines = []
    for p in range(n_pieces):
        notes = random_piece(seed * 1000 + p, duration_s=duration_s)
        split = splits[p] if splits else "train"
        for r in range(renders):
            item_id = f"piece{p:03d}-sf{r}"
            audio = additive_render(notes, timbre=r)
            save_audio(root / "audio" / f"{item_id}.flac", audio, sample_rate=fc.sample_rate)
            notes_to_midi(notes, root / "labels" / f"{item_id}.mid", program=0)
            feat = None
            if features:
                (root / "features").mkdir(parents=True, exist_ok=True)
                np.save(root / "features" / f"{item_id}.npy", compute_features(audio, config=fc))
                feat = f"features/{item_id}.npy"
            lines.append(
                {
                    "id": item_id,
                    "audio": f"audio/{item_id}.flac",
                    "label": f"labels/{item_id}.mid",
                    "features": feat,
                    "split": split,
                    "duration_s": len(audio) / fc.sample_rate,
                    "source": f"piece{p:03d}.mid",
                }
            )
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if features:  # the front end of the stored features, as `amt synth --features` records it
        (root / "dataset.json").write_text(json.dumps({"feature_config": to_dict(fc)}))
    return root


@pytest.fixture(scope="module")
def pair_dataset(tmp_path_factory):
    return make_pair_dataset(tmp_path_factory.mktemp("pairs"), n_pieces=6, renders=2)


# ------------------------------------------------------------------------------------------- network


def test_network_shapes_and_unit_norm():
    from amtcli.nets import build_model

    model = build_model("embedding").eval()
    assert model.arch == "embedding"
    widths = [m.out_channels for m in model.audio_encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [24, 24, 48, 48, 96, 96, 96, 96, 32]  # paired 3x3 convs widening, then 1x1 to 32
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.score_encoder.modules()) == 4
    with torch.no_grad():
        a, s = model(torch.randn(3, 64, 176), (torch.rand(3, 64, 88) > 0.9).float())
    assert a.shape == s.shape == (3, 32)
    np.testing.assert_allclose(a.norm(dim=1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(s.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_wrong_snippet_shape_is_refused():
    from amtcli.errors import ConfigMismatch
    from amtcli.nets import build_model

    model = build_model("embedding", TINY)
    with pytest.raises(ConfigMismatch):
        model.embed_audio(torch.randn(2, 32, 88))  # a roll is not a CQT
    with pytest.raises(ConfigMismatch):
        build_model("embedding", {"channels": (4, 8, 8, 8, 8, 8), "snippet_frames": 32})  # pools below one frame


def test_release_round_trip(tmp_path):
    from amtcli.nets import build_model
    from amtcli.zoo.release import load_release, save_release

    torch.manual_seed(0)
    model = build_model("embedding", TINY).eval()
    save_release(model, tmp_path / "emb", card="# test\n")
    loaded, cfg = load_release(tmp_path / "emb")
    assert cfg.architecture == "embedding" and loaded.config == model.config
    x = torch.randn(2, 32, 176)
    torch.testing.assert_close(loaded.embed_audio(x), model.embed_audio(x))


# ---------------------------------------------------------------------------------------------- loss


def test_loss_is_zero_when_matches_beat_all_others_by_the_margin():
    from amtcli.nets.embedding import ranking_loss

    sim = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.8, 0.05], [0.1, 0.09, 0.8]])
    # every matching pair beats every other entry of its row and column by >= 0.7
    assert ranking_loss(sim, margin=0.7).item() == 0.0
    assert ranking_loss(sim, margin=0.7, symmetric=False).item() == 0.0
    # 0.8 - 0.09 = 0.71 >= 0.7 but < 0.75: a larger margin makes it positive
    assert ranking_loss(sim, margin=0.75).item() > 0.0


def test_loss_hand_checked_value():
    from amtcli.nets.embedding import ranking_loss

    sim = torch.tensor([[0.5, 0.4], [0.9, 0.2]])
    # audio anchors: row 0: max(0, 0.7 - 0.5 + 0.4) = 0.6; row 1: max(0, 0.7 - 0.2 + 0.9) = 1.4 -> mean 1.0
    assert ranking_loss(sim, margin=0.7, symmetric=False).item() == pytest.approx(1.0)
    # score anchors: column 0: max(0, 0.7 - 0.5 + 0.9) = 1.1; column 1: max(0, 0.7 - 0.2 + 0.4) = 0.9 -> mean 1.0
    assert ranking_loss(sim, margin=0.7).item() == pytest.approx(1.0)
    # where the hinge clips, the directions differ:
    sim = torch.tensor([[0.9, 0.0], [0.1, 0.2]])
    # audio: max(0, 0.7 - 0.9 + 0.0) = 0, max(0, 0.7 - 0.2 + 0.1) = 0.6 -> 0.3
    # score: max(0, 0.7 - 0.9 + 0.1) = 0, max(0, 0.7 - 0.2 + 0.0) = 0.5 -> 0.25; symmetric: mean 0.275
    assert ranking_loss(sim, margin=0.7, symmetric=False).item() == pytest.approx(0.3)
    assert ranking_loss(sim, margin=0.7).item() == pytest.approx(0.275)


def test_loss_gradient_pulls_matches_together():
    from amtcli.nets.embedding import cosine_similarity, ranking_loss

    torch.manual_seed(0)
    a = torch.randn(4, 8, requires_grad=True)
    s = torch.randn(4, 8)
    opt = torch.optim.SGD([a], lr=0.5)
    first = None
    for _ in range(50):
        loss = ranking_loss(cosine_similarity(a, s), margin=0.7)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    sim = cosine_similarity(a, s).detach()
    assert loss.item() < 0.2 * first
    assert (sim.argmax(dim=1) == torch.arange(4)).all()


# ------------------------------------------------------------------------------------------- batches


def test_transpose_moves_cqt_and_roll_together():
    from amtcli.datasets.embedding_pairs import transpose_pair

    fc = FeatureConfig()
    feat = np.full((4, fc.n_bins), np.log(fc.log_offset), np.float32)
    roll = np.zeros((4, fc.n_keys), np.float32)
    feat[:, 2 * 40] = feat[:, 2 * 40 + 1] = 1.0  # key 40 lit in the CQT (2 bins per key)
    roll[:, 40] = 1
    f, r = transpose_pair(feat, roll, 3, feature_config=fc)
    assert np.flatnonzero(r[0]).tolist() == [43]
    assert np.flatnonzero(f[0] > 0).tolist() == [86, 87]
    f, r = transpose_pair(feat, roll, -41, feature_config=fc)  # pushed off the keyboard
    assert not r.any() and np.all(f == np.float32(np.log(fc.log_offset)))


def test_batch_is_one_to_one(pair_dataset):
    from amtcli.datasets.embedding_pairs import load_pair_items, sample_batch, transpose_pair

    fc = FeatureConfig()
    items = load_pair_items(pair_dataset, feature_config=fc)
    assert len(items) == 12 and len({it.piece for it in items}) == 6
    rng = np.random.default_rng(0)
    audio, score, keys = sample_batch(
        items, batch_size=10, snippet_frames=32, rng=rng, feature_config=fc, max_transpose=4
    )
    assert audio.shape == (10, 32, fc.n_bins) and score.shape == (10, 32, fc.n_keys) and len(keys) == 10
    # row i of both sides is the same span of the same item after the same transposition
    for i, k in enumerate(keys):
        f, r = transpose_pair(
            items[k.item].features[k.start : k.start + 32],
            items[k.item].roll[k.start : k.start + 32],
            k.semitones,
            feature_config=fc,
        )
        np.testing.assert_array_equal(score[i], r)
        np.testing.assert_allclose(audio[i], f, atol=1e-5)  # max_gain_db=0: untouched
    # no two score snippets are equal; each is non-empty
    assert len({score[i].tobytes() for i in range(10)}) == 10
    assert all(score[i].any() for i in range(10))
    # 6 pieces for 10 slots: every piece used, snippets of one piece never overlap
    by_piece = {}
    for k in keys:
        by_piece.setdefault(items[k.item].piece, []).append(k.start)
    assert len(by_piece) == 6
    for starts in by_piece.values():
        starts.sort()
        assert all(b - a >= 32 for a, b in zip(starts, starts[1:]))


def test_batch_with_fewer_slots_than_pieces_uses_distinct_pieces(pair_dataset):
    from amtcli.datasets.embedding_pairs import load_pair_items, sample_batch

    fc = FeatureConfig()
    items = load_pair_items(pair_dataset, feature_config=fc)
    renders = set()
    for seed in range(5):
        _, _, keys = sample_batch(
            items, batch_size=5, snippet_frames=32, rng=np.random.default_rng(seed), feature_config=fc
        )
        assert len({items[k.item].piece for k in keys}) == 5
        renders |= {items[k.item].id.split("-")[1] for k in keys}
    assert renders == {"sf0", "sf1"}  # both "soundfonts" get drawn


def test_missing_dataset_is_one_clear_error(tmp_path):
    from amtcli.datasets.embedding_pairs import load_pair_items
    from amtcli.errors import DatasetNotFound

    with pytest.raises(DatasetNotFound, match="manifest.jsonl"):
        load_pair_items(tmp_path, feature_config=FeatureConfig())


# ------------------------------------------------------------------------------------------ training


def test_training_writes_checkpoints_and_resumes_exactly(pair_dataset, tmp_path):
    from amtcli.training.embedding import EmbeddingTrainConfig, load_checkpoint, train_embedding

    torch.set_num_threads(1)
    tc = EmbeddingTrainConfig(log_every=1, checkpoint_every=2, max_transpose=2)
    kw = dict(batch_size=6, lr=1e-3, seed=3, model_config=TINY, train_config=tc)
    train_embedding(pair_dataset, out_dir=tmp_path / "a", steps=4, **kw)

    def interrupt(step, total, metrics):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed after the step-2 checkpoint
        train_embedding(pair_dataset, out_dir=tmp_path / "b", steps=4, progress=interrupt, **kw)
    assert load_checkpoint(tmp_path / "b")["step"] == 2
    seen = []
    train_embedding(
        pair_dataset, out_dir=tmp_path / "b", steps=4, resume=True, progress=lambda s, n, m: seen.append((s, n)), **kw
    )
    assert seen == [(3, 4), (4, 4)]
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k])
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert not list((tmp_path / "b" / "checkpoints").glob(".*tmp"))

    # the run folder speaks the transcriber runs' format: `amt models export` turns it into a release
    from amtcli.zoo.export import export_run
    from amtcli.zoo.release import load_release

    export_run(tmp_path / "a", tmp_path / "release", checkpoint="last")
    model, cfg = load_release(tmp_path / "release")
    assert cfg.architecture == "embedding"
    torch.testing.assert_close(
        model.state_dict()["audio_encoder.project.weight"], a["model"]["audio_encoder.project.weight"]
    )


def test_training_refuses_to_overwrite_a_run(pair_dataset, tmp_path):
    from amtcli.errors import BadInput, OutputExists
    from amtcli.training.embedding import train_embedding

    with pytest.raises(BadInput, match="nothing to resume"):
        train_embedding(pair_dataset, out_dir=tmp_path / "r", steps=1, batch_size=4, resume=True, model_config=TINY)
    train_embedding(pair_dataset, out_dir=tmp_path / "r", steps=1, batch_size=4, model_config=TINY)
    with pytest.raises(OutputExists):
        train_embedding(pair_dataset, out_dir=tmp_path / "r", steps=1, batch_size=4, model_config=TINY)


def test_training_validates_on_the_validation_split(tmp_path):
    from amtcli.training.embedding import EmbeddingTrainConfig, train_embedding

    root = make_pair_dataset(
        tmp_path / "ds", n_pieces=4, renders=1, splits=["train", "train", "validation", "validation"], duration_s=4.0
    )
    tc = EmbeddingTrainConfig(valid_every=2, log_every=1)
    last = train_embedding(root, out_dir=tmp_path / "run", steps=2, batch_size=4, model_config=TINY, train_config=tc)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val" in r]
    assert len(val) == 1 and val[0]["step"] == 2
    assert set(val[0]["val"]) == {"R@1", "R@5", "MRR", "MR"} and 0 <= val[0]["val"]["R@1"] <= 1
    assert last["valid_MRR"] == val[0]["val"]["MRR"]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["architecture"], cfg["n_train_pieces"], cfg["n_valid_items"]) == ("embedding", 2, 2)
