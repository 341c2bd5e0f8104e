"""Serve the bundled tiny-test release as if it were on the Hugging Face Hub, on 127.0.0.1, for demos.

    .venv/bin/python scripts/fake_hub.py --registry /tmp/demo-registry.json [--tamper] &
    HF_ENDPOINT=http://127.0.0.1:PORT AMT_REGISTRY=/tmp/demo-registry.json HF_HUB_CACHE=/tmp/demo-cache \\
        .venv/bin/amt models download tiny-hub

The registry written holds the shipped entries plus ``tiny-hub`` (repo ``amt-demo/tiny-test`` at a
fixed commit, the sha256s of models/tiny-test). ``--tamper`` serves model.safetensors with one byte
flipped (same size, a matching ETag), which only the registry's sha256 can catch. The server is
the one the tests use (tests/fake_hub_server.py, standard library only: pytest is not needed);
it runs until interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

REPO_ID = "amt-demo/tiny-test"
COMMIT = "5eed000000000000000000000000000000000001"


def main() -> int:
    from fake_hub_server import FakeHub

    from amtcli.zoo.registry import REGISTRY_PATH, entry_from_folder, load_registry, save_registry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", type=Path, required=True, help="where to write the demo registry")
    parser.add_argument("--tamper", action="store_true", help="serve a corrupted model.safetensors")
    args = parser.parse_args()

    folder = ROOT / "models" / "tiny-test"
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    hub = FakeHub()
    hub.add(REPO_ID, COMMIT, files)
    if args.tamper:
        hub.tamper(REPO_ID, COMMIT, "model.safetensors")
    entries = load_registry(REGISTRY_PATH)
    entries["tiny-hub"] = entry_from_folder(
        "tiny-hub", folder, description="tiny-test, served by scripts/fake_hub.py", repo_id=REPO_ID, revision=COMMIT
    )
    save_registry(entries, args.registry)
    # Ctrl-C stops it even when it was started with SIGINT ignored (a background job of a shell
    # without job control passes that on), which would leave the server running for ever
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(json.dumps({"HF_ENDPOINT": hub.url, "AMT_REGISTRY": str(args.registry)}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
