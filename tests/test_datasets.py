"""Dataset readers on fixture folders built in code, splits, and the missing-data message."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
from dataset_fixtures import (
    MAESTRO_RECORDS,
    guitarset_notes,
    guitarset_stems,
    notes_for,
    write_guitarset,
    write_maestro,
    write_maps,
    write_pairs,
    write_synthetic,
)

from amtcli.datasets import SplitPlan, load_dataset, split_pieces
from amtcli.datasets.base import read_maps_txt
from amtcli.datasets.guitarset import piece_of
from amtcli.datasets.maps import parse_name
from amtcli.errors import BadInput, DatasetNotFound

# --------------------------------------------------------------------------------------- splits


def test_split_pieces_is_deterministic_disjoint_and_80_10_10():
    pieces = [f"p{i:03d}" for i in range(100)]
    a = split_pieces(pieces, seed=0)
    b = split_pieces(list(reversed(pieces)), seed=0)  # order of discovery does not matter
    assert a == b
    assert set(a) == set(pieces)  # every piece in exactly one split
    assert Counter(a.values()) == {"train": 80, "validation": 10, "test": 10}
    c = split_pieces(pieces, seed=1)
    assert c != a and Counter(c.values()) == Counter(a.values())


def test_split_pieces_small_sets():
    assert set(split_pieces(["a", "b", "c"], seed=0).values()) == {"train"}
    counts = Counter(split_pieces([str(i) for i in range(7)], seed=3).values())
    assert counts == {"train": 5, "validation": 1, "test": 1}
    with pytest.raises(BadInput):
        split_pieces(["a"], fractions=(0.5, 0.2, 0.2))


def _disklavier_maps(tmp_path):
    """The shape of the real validation set: ENSTDkCl and ENSTDkAm takes, one piece played on both."""
    return write_maps(
        tmp_path / "maps",
        {"ENSTDkCl": ["alb_se2", "mz_311_1", "scn15_11", "scn16_3"], "ENSTDkAm": ["chpn_p14", "scn15_11", "grieg"]},
        mid=False,
    )


def test_folds_by_piece_test_every_recording_once_and_keep_takes_together(tmp_path):
    root = _disklavier_maps(tmp_path)
    assert {it.split for it in load_dataset("maps", root=root, split="all")} == {"test"}  # the official split
    tested: list[str] = []
    for fold in range(3):
        plan = SplitPlan(folds=3, fold=fold)
        assert plan.by == "piece"
        items = load_dataset("maps", root=root, split="all", plan=plan)
        assert len(items) == 7
        by_split = {s: {it.id for it in items if it.split == s} for s in ("train", "validation", "test")}
        assert all(by_split.values()), (fold, by_split)  # none empty: 6 pieces, 3 folds
        assert sum(map(len, by_split.values())) == 7  # each item in exactly one split
        both = {it.split for it in items if it.piece == "scn15_11"}
        assert len(both) == 1  # the Cl and Am takes of one piece stay together
        test = load_dataset("maps", root=root, split="test", plan=plan)
        assert {it.id for it in test} == by_split["test"]
        tested += [it.id for it in test]
    assert sorted(tested) == sorted(it.id for it in load_dataset("maps", root=root, split="all"))  # once each

    # deterministic for a seed, another seed deals other folds
    def deal(seed):
        return [
            {it.id for it in load_dataset("maps", root=root, split="test", plan=SplitPlan(folds=3, fold=f, seed=seed))}
            for f in range(3)
        ]

    assert deal(0) == deal(0) and deal(0) != deal(5)
    assert sorted(x for fold in deal(5) for x in fold) == sorted(tested)


def test_split_by_piece_makes_five_takes_usable(tmp_path):
    root = write_pairs(tmp_path / "takes", [f"take{i}" for i in range(5)])
    own = load_dataset("pairs", root=root, split="all")
    assert Counter(it.split for it in own) == {"train": 5}  # 80/10/10 of 5 pieces: nothing held out
    resplit = load_dataset("pairs", root=root, split="all", plan=SplitPlan(by="piece"))
    assert Counter(it.split for it in resplit) == {"train": 3, "validation": 1, "test": 1}
    folds = [load_dataset("pairs", root=root, split="all", plan=SplitPlan(folds=5, fold=f)) for f in range(5)]
    assert [Counter(it.split for it in items) for items in folds] == [{"train": 3, "validation": 1, "test": 1}] * 5
    assert sorted(next(it.id for it in items if it.split == "test") for items in folds) == [it.id for it in own]
    two = load_dataset(
        "pairs", root=write_pairs(tmp_path / "two", ["a", "b"]), split="all", plan=SplitPlan(folds=2, fold=1)
    )
    assert Counter(it.split for it in two) == {"train": 1, "test": 1}  # one piece left: no validation


def test_split_plan_errors_name_the_empty_fold(tmp_path):
    root = write_pairs(tmp_path / "takes", [f"take{i}" for i in range(3)])
    with pytest.raises(BadInput, match="only 3 piece"):
        load_dataset("pairs", root=root, plan=SplitPlan(folds=4, fold=0))
    with pytest.raises(BadInput, match="only 1 piece"):
        load_dataset("pairs", root=write_pairs(tmp_path / "one", ["a"]), plan=SplitPlan(folds=2, fold=0))
    with pytest.raises(BadInput, match="--fold 0..2"):
        load_dataset("pairs", root=root, plan=SplitPlan(folds=3))
    for kwargs, message in [
        ({"folds": 3, "fold": 3}, "0..2"),
        ({"fold": 1}, "needs --folds"),
        ({"folds": 1}, "at least 2"),
        ({"by": "file"}, "--split-by file"),
    ]:
        with pytest.raises(BadInput, match=message):
            SplitPlan(**kwargs)
    assert SplitPlan.from_dict(SplitPlan(folds=3, fold=2, seed=4).to_dict()) == SplitPlan(folds=3, fold=2, seed=4)


# ----------------------------------------------------------------------------------------- MAPS


def test_maps_name_parsing():
    assert parse_name("MAPS_MUS-chpn_op7_1_ENSTDkAm") == ("chpn_op7_1", "ENSTDkAm")
    assert parse_name("MAPS_MUS-alb_se3_AkPnBcht") == ("alb_se3", "AkPnBcht")
    with pytest.raises(BadInput):
        parse_name("MAPS_ISOL_NO_F_S0_M21_AkPnBcht")


def test_maps_reader_splits_and_labels(tmp_path):
    root = write_maps(
        tmp_path / "MAPS",
        {
            "ENSTDkCl": ["alb_se3", "chpn_op7_1"],
            "ENSTDkAm": ["alb_se3", "bk_xmas1"],
            "AkPnBcht": ["alb_se3", "mz_331_3", "grieg_butterfly"],
            "SptkBGCl": [
                "liz_et6",
                "scn15_7",
                "deb_clai",
                "mz_331_3",
                "ty_maerz",
                "bor_ps6",
                "pathetique_1",
                "muss_1",
                "br_im2",
            ],
        },
        nest="MAPS_ENSTDkCl_2",  # archives unpack one level deeper; the reader searches recursively
    )
    test = load_dataset("maps", root=root)
    assert [it.id for it in test] == [
        "MAPS_MUS-alb_se3_ENSTDkAm",
        "MAPS_MUS-alb_se3_ENSTDkCl",
        "MAPS_MUS-bk_xmas1_ENSTDkAm",
        "MAPS_MUS-chpn_op7_1_ENSTDkCl",
    ]
    everything = load_dataset("maps", root=root, split="all")
    assert len(everything) == 4 + 3 + 9
    by_id = {it.id: it for it in everything}
    # a piece of the test set is excluded from training (Onsets and Frames convention)
    assert by_id["MAPS_MUS-alb_se3_AkPnBcht"].split == "excluded"
    train_val = [it for it in everything if it.split in ("train", "validation")]
    assert len(train_val) == 3 + 9 - 1
    assert {it.split for it in train_val} == {"train", "validation"}
    # one piece never straddles splits (mz_331_3 is on two synthesized pianos)
    assert len({it.split for it in everything if it.piece == "mz_331_3"}) == 1
    # .mid preferred (velocities), .txt when asked
    item = by_id["MAPS_MUS-chpn_op7_1_ENSTDkCl"]
    assert item.label.suffix == ".mid" and item.has_velocity
    expected = notes_for("chpn_op7_1")
    notes = item.load_notes()
    np.testing.assert_array_equal(notes.pitch, expected.pitch)
    np.testing.assert_array_equal(notes.velocity, expected.velocity)
    txt_items = load_dataset("maps", root=root, annotation="txt")
    assert all(it.label.suffix == ".txt" and not it.has_velocity for it in txt_items)
    notes = {it.id: it for it in txt_items}["MAPS_MUS-chpn_op7_1_ENSTDkCl"].load_notes()
    np.testing.assert_allclose(notes.onset_s, expected.onset_s, atol=1e-6)
    np.testing.assert_allclose(notes.offset_s, expected.offset_s, atol=1e-6)
    np.testing.assert_array_equal(notes.pitch, expected.pitch)


def test_maps_txt_only_and_bad_txt(tmp_path):
    root = write_maps(tmp_path / "maps", {"ENSTDkAm": ["bk_xmas1"]}, mid=False)
    items = load_dataset("maps", root=root)
    assert items[0].label_kind == "maps_txt" and len(items[0].load_notes()) == 4
    with pytest.raises(DatasetNotFound):
        load_dataset("maps", root=root, annotation="mid")
    bad = tmp_path / "bad.txt"
    bad.write_text("OnsetTime\tOffsetTime\tMidiPitch\n0.5\tabc\t60\n")
    with pytest.raises(Exception, match="bad.txt:2"):
        read_maps_txt(bad)


# ------------------------------------------------------------------------------------ GuitarSet


def test_guitarset_reader_notes_variants_and_missing_audio(tmp_path):
    stems = guitarset_stems(1, 2)
    root = write_guitarset(
        tmp_path / "GuitarSet", stems, variants=("mono-mic", "hex-pickup_debleeded"), missing_audio=(stems[-1],)
    )
    items = load_dataset("guitarset", root=root, split="all")
    assert [it.id for it in items] == sorted(stems[:-1])
    assert items.skipped and stems[-1] in items.skipped[0][0]
    item = items[0]
    assert item.audio.name == f"{item.id}_mic.wav" and item.piece == piece_of(item.id) and not item.has_velocity
    notes = item.load_notes()
    obs = [o for string in guitarset_notes(item.id) for o in string]
    assert len(notes) == len(obs) == 8
    np.testing.assert_array_equal(np.sort(notes.pitch), np.sort(np.rint([o[2] for o in obs]).astype(int)))
    np.testing.assert_allclose(np.sort(notes.offset_s - notes.onset_s), 0.2)
    hex_items = load_dataset("guitarset", root=root, split="all", audio_variant="hex_cln")
    assert hex_items[0].audio.parent.name == "audio_hex-pickup_debleeded" and hex_items[0].audio.name.endswith(
        "_hex_cln.wav"
    )
    with pytest.raises(DatasetNotFound, match="no audio"):
        load_dataset("guitarset", root=root, split="all", audio_variant="mono-pickup_mix")
    with pytest.raises(BadInput, match="variant"):
        load_dataset("guitarset", root=root, audio_variant="stereo")


def test_guitarset_dict_format_jams(tmp_path):
    root = write_guitarset(tmp_path / "gs", ["00_BN1-129-Eb_comp"], dict_format=True)
    notes = load_dataset("guitarset", root=root, split="all")[0].load_notes()
    assert len(notes) == 8


def test_guitarset_split_by_player_and_excerpt(tmp_path):
    stems = guitarset_stems(6, 10)  # 60 pieces, 120 takes
    root = write_guitarset(tmp_path / "gs", stems)
    assert piece_of("03_BN3-119-G_solo") == "03_BN3-119-G"
    everything = load_dataset("guitarset", root=root, split="all", split_seed=7)
    by_piece = {}
    for it in everything:
        by_piece.setdefault(it.piece, set()).add(it.split)
    assert len(by_piece) == 60 and all(len(s) == 1 for s in by_piece.values())  # comp and solo stay together
    counts = Counter(it.split for it in everything)
    assert counts == {"train": 96, "validation": 12, "test": 12}
    test_ids = [it.id for it in load_dataset("guitarset", root=root, split="test", split_seed=7)]
    assert test_ids == [it.id for it in load_dataset("guitarset", root=root, split="test", split_seed=7)]
    assert test_ids != [it.id for it in load_dataset("guitarset", root=root, split="test", split_seed=8)]
    train = {it.id for it in load_dataset("guitarset", root=root, split="train", split_seed=7)}
    assert not train & set(test_ids)


# -------------------------------------------------------------------------------------- MAESTRO


@pytest.mark.parametrize("fmt", ["v2json", "v3csv", "v3json"])
def test_maestro_reader_metadata_formats_and_pedal(tmp_path, fmt):
    root = write_maestro(tmp_path / "maestro", fmt=fmt)
    test = load_dataset("maestro", root=root)
    assert len(test) == 2 and {it.piece for it in test} == {"Chopin / Ballade", "Chopin / Nocturne"}
    assert Counter(it.split for it in load_dataset("maestro", root=root, split="all")) == {
        "train": 1,
        "validation": 1,
        "test": 2,
    }
    notes = test[0].load_notes()
    # the first note is released at 0.3 s while the pedal is down (0.2-0.7 s): it sounds until 0.7 s
    np.testing.assert_allclose(notes.offset_s, [0.7, 1.1], atol=2e-3)
    assert test[0].has_velocity and list(notes.velocity) == [70, 90]


def test_maestro_missing_files_are_skipped(tmp_path):
    root = write_maestro(tmp_path / "maestro", fmt="v3csv")
    (root / f"{MAESTRO_RECORDS[2][0]}.wav").unlink()
    items = load_dataset("maestro", root=root)
    assert len(items) == 1 and len(items.skipped) == 1


# ------------------------------------------------------------------------------ synthetic, pairs


def test_synthetic_reader_uses_manifest_splits(tmp_path):
    root = write_synthetic(tmp_path / "synth", 5)
    assert [it.id for it in load_dataset("synthetic", root=root)] == ["item003", "item004"]
    train = load_dataset("synthetic", root=root, split="train")
    assert [it.id for it in train] == ["item000", "item001"] and train[0].piece == "piece0"
    assert len(train[1].load_notes()) == 4
    good = (root / "manifest.jsonl").read_text()
    (root / "manifest.jsonl").write_text(good + '{"id": "item005", "aud')  # torn by an interrupted amt synth
    torn = load_dataset("synthetic", root=root, split="all")
    assert len(torn) == 5 and "torn" in torn.skipped[0][1]
    (root / "manifest.jsonl").write_text("{not json\n" + good)
    with pytest.raises(DatasetNotFound, match="manifest.jsonl:1"):
        load_dataset("synthetic", root=root)


def test_pairs_reader_recursive_and_split(tmp_path):
    stems = [f"set{i % 3}/take{i:02d}" for i in range(20)]
    root = write_pairs(tmp_path / "pairs", stems)
    (root / "set0" / "lonely.wav").write_bytes((root / "set0" / "take00.wav").read_bytes())  # no MIDI
    everything = load_dataset("pairs", root=root, split="all")
    assert sorted(it.id for it in everything) == sorted(stems)
    assert len(everything.skipped) == 1 and "lonely" in everything.skipped[0][0]
    assert Counter(it.split for it in everything) == {"train": 16, "validation": 2, "test": 2}
    item = [it for it in everything if it.id == "set1/take04"][0]
    assert item.label == root / "set1" / "take04.mid"
    np.testing.assert_array_equal(item.load_notes().pitch, notes_for("set1/take04").pitch)


def test_items_pickle(tmp_path):
    items = load_dataset("pairs", root=write_pairs(tmp_path / "p", ["a", "b"]), split="all")
    again = pickle.loads(pickle.dumps(list(items)))
    assert again == list(items) and len(again[0].load_notes()) == 4


# ---------------------------------------------------------------------------------- not found


def test_missing_dataset_messages(tmp_path, monkeypatch):
    monkeypatch.delenv("AMT_DATA", raising=False)
    with pytest.raises(DatasetNotFound) as exc:
        load_dataset("maestro")
    msg = str(exc.value)
    assert "AMT_DATA" in msg and "--root" in msg and "magenta.tensorflow.org/datasets/maestro" in msg
    monkeypatch.setenv("AMT_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFound) as exc:
        load_dataset("guitarset")
    assert str(tmp_path / "guitarset") in str(exc.value) and "zenodo" in str(exc.value)
    with pytest.raises(DatasetNotFound, match="not a folder"):
        load_dataset("maps", root=tmp_path / "nowhere")
    (tmp_path / "maps").mkdir()
    with pytest.raises(DatasetNotFound, match="MAPS_MUS"):
        load_dataset("maps")
    with pytest.raises(BadInput, match="unknown dataset"):
        load_dataset("medley")
    with pytest.raises(BadInput, match="split"):
        load_dataset("maps", split="dev")


def test_amt_data_finds_the_dataset(tmp_path, monkeypatch):
    write_maestro(tmp_path / "maestro-v3.0.0", fmt="v3csv")
    monkeypatch.setenv("AMT_DATA", str(tmp_path))
    assert len(load_dataset("maestro", split="all")) == 4


# ------------------------------------------------------------------------------- real layouts


@pytest.mark.data
def test_real_maestro_layout(shared_data):
    items = load_dataset("maestro", root=shared_data / "real" / "maestro", split="all")
    assert len(items) == 1 and items[0].split == "train" and items[0].piece == "Alban Berg / Sonata Op. 1"
    notes = items[0].load_notes()
    assert len(notes) > 1000 and 21 <= notes.pitch.min() and notes.pitch.max() <= 108
    assert load_dataset("maestro", root=shared_data / "real" / "maestro") == []  # no test recordings in the sample


@pytest.mark.data
def test_real_guitarset_layout(shared_data):
    root = shared_data / "real" / "guitarset"
    items = load_dataset("guitarset", root=root, split="all")
    assert [it.id for it in items] == ["03_BN3-119-G_solo"]  # 00_BN1-129-Eb_comp has no audio in the sample
    assert items[0].piece == "03_BN3-119-G"
    notes = items[0].load_notes()
    assert len(notes) > 0 and set(notes.pitch.tolist()) >= {67, 71}
    for variant, suffix in [
        ("mono-pickup_mix", "_mix.wav"),
        ("hex-pickup_original", "_hex.wav"),
        ("hex-pickup_debleeded", "_hex_cln.wav"),
    ]:
        assert load_dataset("guitarset", root=root, split="all", audio_variant=variant)[0].audio.name.endswith(suffix)
