"""Copy a dataset written by `amt synth` as a `pairs` folder of lossy-compressed audio.

    .venv/bin/python scripts/make_lossy_copy.py work/data/asap-steinway-test work/data/asap-steinway-ogg --quality 0.1

Each item's audio is written as Ogg Vorbis at the given quality (0 = smallest files, 1 = best) with
its label MIDI beside it under the same stem, so `amt evaluate -d pairs --root DST` scores a model on
audio that went through a lossy codec. Only items of --split (default: test) are copied.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import soundfile as sf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument(
        "--quality", type=float, default=0.1, help="Vorbis quality 0..1 (libsndfile's compression_level is 1 - quality)"
    )
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    rows = [json.loads(line) for line in (args.src / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == args.split]
    if not rows:
        raise SystemExit(f"error: no {args.split} items in {args.src}")
    args.dst.mkdir(parents=True, exist_ok=True)
    in_bytes = out_bytes = 0
    for r in rows:
        audio, sr = sf.read(args.src / r["audio"], dtype="float32")
        out = args.dst / f"{r['id']}.ogg"
        sf.write(out, audio, sr, format="OGG", subtype="VORBIS", compression_level=1.0 - args.quality)
        shutil.copyfile(args.src / r["label"], args.dst / f"{r['id']}.mid")
        in_bytes += (args.src / r["audio"]).stat().st_size
        out_bytes += out.stat().st_size
    seconds = sum(float(r.get("duration_s", 0)) for r in rows)
    print(
        f"{len(rows)} items -> {args.dst}: {out_bytes * 8 / max(seconds, 1e-9) / 1000:.0f} kbit/s Ogg Vorbis (FLAC was {in_bytes * 8 / max(seconds, 1e-9) / 1000:.0f} kbit/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
