"""Dataset readers: MAPS, GuitarSet, MAESTRO, ``amt synth`` output, folders of audio+MIDI pairs.

``load_dataset(name, root=..., split=...)`` returns :class:`Item` records (audio path, label path,
piece, split); ``item.load_notes()`` reads the reference notes. Evaluation and fine-tuning share
these readers.
"""

from __future__ import annotations

import os

from ..errors import BadInput
from .base import SPLIT_CHOICES, SPLITS, DatasetInfo, Item, ItemList, load_label, resolve_root
from .splits import SPLIT_BY, SplitPlan, apply_plan, check_split, fold_pieces, select_split, split_folds, split_pieces

# name -> (module, reader function); modules are imported on use.
READERS: dict[str, tuple[str, str]] = {
    "maps": ("amtcli.datasets.maps", "read_maps"),
    "guitarset": ("amtcli.datasets.guitarset", "read_guitarset"),
    "maestro": ("amtcli.datasets.maestro", "read_maestro"),
    "synthetic": ("amtcli.datasets.synthetic", "read_synthetic"),
    "pairs": ("amtcli.datasets.pairs", "read_pairs"),
}
DATASET_NAMES = tuple(READERS)


def dataset_info(name: str) -> DatasetInfo:
    import importlib

    if name not in READERS:
        raise BadInput(f"unknown dataset {name!r} (choose from {', '.join(DATASET_NAMES)})")
    return importlib.import_module(READERS[name][0]).INFO


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    split: str = "test",
    split_seed: int = 0,
    audio_variant: str | None = None,
    annotation: str | None = None,
    plan: SplitPlan | None = None,
) -> ItemList:
    """The items of one split of a dataset, sorted by id.

    ``root``: the dataset folder (default ``$AMT_DATA/<name>``). ``split``: ``train``,
    ``validation``, ``test`` or ``all``. ``split_seed`` seeds the 80/10/10 split by piece of
    datasets without an official split (GuitarSet, pairs; MAPS train/validation).
    ``audio_variant``: GuitarSet audio (``mono-mic`` default, ``mono-pickup_mix``,
    ``hex-pickup_original``, ``hex-pickup_debleeded``). ``annotation``: MAPS labels, ``mid``
    (default when present) or ``txt``. ``plan``: a :class:`SplitPlan` that re-splits every
    recording by piece (80/10/10, or fold ``plan.fold`` of ``plan.folds`` as the test split),
    replacing the reader's own split; ``split_seed`` does not apply then (the plan has its seed).

    Raises :class:`~amtcli.errors.DatasetNotFound` (where it looked, how to point amt at the
    data, where to get it) and :class:`~amtcli.errors.BadInput` for unknown names and options.
    """
    import importlib

    check_split(split)
    info = dataset_info(name)
    if audio_variant is not None and name != "guitarset":
        raise BadInput(f"--audio-variant applies to guitarset only, not {name}")
    if annotation is not None and name != "maps":
        raise BadInput(f"--annotation applies to maps only, not {name}")
    folder = resolve_root(info, root)
    module, func = READERS[name]
    reader = getattr(importlib.import_module(module), func)
    kwargs = {"split_seed": split_seed}
    if name == "guitarset":
        kwargs["audio_variant"] = audio_variant
    if name == "maps":
        kwargs["annotation"] = annotation
    everything = reader(folder, **kwargs)
    if plan is not None and not plan.default:
        everything = ItemList(apply_plan(everything, plan), root=everything.root, skipped=everything.skipped)
    chosen = sorted(select_split(everything, split), key=lambda it: it.id)
    return ItemList(chosen, root=everything.root, skipped=everything.skipped)


__all__ = [
    "Item",
    "ItemList",
    "DatasetInfo",
    "load_dataset",
    "load_label",
    "dataset_info",
    "resolve_root",
    "split_pieces",
    "split_folds",
    "fold_pieces",
    "apply_plan",
    "SplitPlan",
    "SPLIT_BY",
    "select_split",
    "SPLITS",
    "SPLIT_CHOICES",
    "DATASET_NAMES",
]
