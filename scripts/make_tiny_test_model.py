"""Write the bundled ``tiny-test`` model: a tiny, randomly initialised (seeded) U-Net+BiLSTM.

It transcribes nothing useful; it lets every CLI test and a fresh install run without trained
weights. Re-running this script writes identical files and refreshes the registry entry
(sha256s and sizes are computed, never typed).

    .venv/bin/python scripts/make_tiny_test_model.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny-test"
SEED = 0
MODEL_CONFIG = {"harmonics": (1.0, 2.0), "channels": (2, 4, 4), "lstm_hidden": 4, "dropout": 0.0}
DESCRIPTION = "Tiny random, untrained U-Net+BiLSTM so tests and fresh installs run; useless output."

CARD = """# tiny-test

A tiny **randomly initialised** U-Net+BiLSTM (`unet-bilstm`, harmonics 1 and 2, channels 2/4/4,
BiLSTM hidden size 4). Seeded with `torch.manual_seed({seed})`; **never trained**. Its output is
noise: it exists so that the `amt` command line and the test suite run without trained weights.

- Training data: none.
- Training steps: 0.
- Metrics: none measured (an untrained model; expect a note F1 near 0).
- Made by: `.venv/bin/python scripts/make_tiny_test_model.py`
- License: MIT (same as amt).
"""


def main() -> int:
    import torch

    from amtcli.config import FeatureConfig
    from amtcli.nets import build_model, model_config_class
    from amtcli.zoo import save_release
    from amtcli.zoo.registry import REGISTRY_PATH, entry_from_folder, load_registry, save_registry

    model_config_class("unet-bilstm")  # import the architecture (and nnAudio) before seeding
    torch.manual_seed(SEED)
    model = build_model("unet-bilstm", dict(MODEL_CONFIG), FeatureConfig())
    folder = save_release(
        model, ROOT / "models" / NAME, card=CARD.format(seed=SEED), extra={"name": NAME, "trained": False}
    )
    entries = load_registry(REGISTRY_PATH)
    entries[NAME] = entry_from_folder(NAME, folder, description=DESCRIPTION, bundled=NAME)
    save_registry(entries, REGISTRY_PATH)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{folder}: {n_params} parameters, {entries[NAME].size} bytes; registry entry {NAME!r} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
