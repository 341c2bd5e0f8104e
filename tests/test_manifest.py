"""The `amt synth` dataset format has one owner (amtcli.datasets.manifest): every reader and the
writer see a torn last line, and a damaged line in the middle, the same way."""

from __future__ import annotations

import shutil

import pytest
from conftest import store_features, write_sine_dataset

from amtcli.config import FeatureConfig
from amtcli.errors import DatasetNotFound

N_ITEMS = 4  # write_sine_dataset: items 0..2 train, item 3 validation
TORN = '{"id": "item004", "audio": "audio/item004.fl'  # a line cut short by a killed `amt synth`


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = write_sine_dataset(tmp_path_factory.mktemp("manifest") / "ds", n_items=N_ITEMS, duration_s=2.0)
    return store_features(root)  # stored features, so the embedding's reader need not compute them


def _copy(clean, tmp_path, *, tail: str = "", head: str = ""):
    root = tmp_path / "ds"
    shutil.copytree(clean, root)
    manifest = root / "manifest.jsonl"
    manifest.write_text(head + manifest.read_text() + tail)
    return root


def _what_every_reader_sees(root) -> dict[str, list[str]]:
    from amtcli.datasets import load_dataset
    from amtcli.datasets.embedding_pairs import load_pair_items
    from amtcli.datasets.manifest import read_manifest
    from amtcli.training.data import load_examples
    from amtcli.training.seq2seq import load_unlabeled

    fc = FeatureConfig()
    return {
        "manifest": sorted(r["id"] for r in read_manifest(root)),
        "evaluate": sorted(it.id for it in load_dataset("synthetic", root=root, split="all")),
        "train": sorted(
            e.id.split("/")[-1]
            for s in ("train", "validation")
            for e in load_examples([root], split=s, feature_config=fc)
        ),
        "embedding": sorted(it.id for it in load_pair_items([root], feature_config=fc)),
        "unlabeled": [str(len(load_unlabeled([root], feature_config=fc)))],
    }


def test_a_torn_last_line_is_skipped_by_every_reader(clean, tmp_path):
    from amtcli.datasets import load_dataset
    from amtcli.datasets.manifest import read_manifest

    root = _copy(clean, tmp_path, tail=TORN)
    seen = _what_every_reader_sees(root)
    ids = [f"item{i:03d}" for i in range(N_ITEMS)]
    assert seen == {"manifest": ids, "evaluate": ids, "train": ids, "embedding": ids, "unlabeled": ["3"]}
    assert read_manifest(root).torn == f"{root / 'manifest.jsonl'}:{N_ITEMS + 1}"
    assert "torn" in load_dataset("synthetic", root=root, split="all").skipped[0][1]


def test_a_damaged_line_in_the_middle_is_one_error_naming_it_everywhere(clean, tmp_path):
    from amtcli.datasets import load_dataset
    from amtcli.datasets.embedding_pairs import load_pair_items
    from amtcli.datasets.manifest import read_manifest
    from amtcli.training.data import load_examples
    from amtcli.training.seq2seq import load_unlabeled

    fc = FeatureConfig()
    for head in ("{not json\n", '{"id": "x", "audio": "a.flac"}\n', "[1, 2]\n"):
        root = _copy(clean, tmp_path / str(len(head)), head=head)
        readers = [
            (read_manifest, (root,), {}),
            (load_dataset, ("synthetic",), {"root": root, "split": "all"}),
            (load_examples, ([root],), {"split": "train", "feature_config": fc}),
            (load_pair_items, ([root],), {"feature_config": fc}),
            (load_unlabeled, ([root],), {"feature_config": fc}),
        ]
        for read, args, kwargs in readers:
            with pytest.raises(DatasetNotFound, match=r"manifest\.jsonl:1: not a manifest line"):
                read(*args, **kwargs)


def test_the_writer_repairs_a_torn_manifest_when_it_continues(clean, tmp_path):
    from amtcli.datasets.manifest import read_manifest
    from amtcli.synth.dataset import SynthConfig, open_dataset

    root = tmp_path / "ds"
    open_dataset(root, SynthConfig(), overwrite=False, sources=[])  # dataset.json of an empty dataset
    for name in ("audio", "labels", "features"):
        shutil.copytree(clean / name, root / name)
    (root / "manifest.jsonl").write_text((clean / "manifest.jsonl").read_text() + TORN)
    done = open_dataset(root, SynthConfig(), overwrite=False, sources=[])
    assert sorted(done) == [f"item{i:03d}" for i in range(N_ITEMS)]
    again = read_manifest(root)
    assert again.torn is None and [r["id"] for r in again] == sorted(done)
