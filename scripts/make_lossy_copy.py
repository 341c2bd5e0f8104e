"""Copy a dataset written by `amt synth` as a `pairs` folder of lossy-compressed or quieter audio.

    .venv/bin/python scripts/make_lossy_copy.py work/data/asap-steinway-test work/data/asap-steinway-ogg --quality 0.1
    .venv/bin/python scripts/make_lossy_copy.py work/data/asap-clean-test work/data/asap-clean-quiet --format wav --gain-db -28

Each item's audio is written as Ogg Vorbis at the given quality (0 = smallest files, 1 = best), or as
16-bit WAV (``--format wav``), after a gain of ``--gain-db`` (a quiet recording, stored as one would be),
with its label MIDI beside it under the same stem, so `amt evaluate -d pairs --root DST` scores a
model on that audio. Only items of --split (default: test) are copied.
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
    ap.add_argument("--format", choices=("ogg", "wav"), default="ogg", help="Ogg Vorbis (lossy) or 16-bit WAV")
    ap.add_argument(
        "--gain-db", type=float, default=0.0, help="gain applied before writing (e.g. -28 for a quiet copy)"
    )
    args = ap.parse_args()
    rows = [json.loads(line) for line in (args.src / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == args.split]
    if not rows:
        raise SystemExit(f"error: no {args.split} items in {args.src}")
    args.dst.mkdir(parents=True, exist_ok=True)
    in_bytes = out_bytes = 0
    for r in rows:
        audio, sr = sf.read(args.src / r["audio"], dtype="float32")
        audio = audio * 10.0 ** (args.gain_db / 20.0)
        out = args.dst / f"{r['id']}.{args.format}"
        if args.format == "ogg":
            sf.write(out, audio, sr, format="OGG", subtype="VORBIS", compression_level=1.0 - args.quality)
        else:
            sf.write(out, audio, sr, subtype="PCM_16")
        shutil.copyfile(args.src / r["label"], args.dst / f"{r['id']}.mid")
        in_bytes += (args.src / r["audio"]).stat().st_size
        out_bytes += out.stat().st_size
    seconds = sum(float(r.get("duration_s", 0)) for r in rows)
    kind = "Ogg Vorbis" if args.format == "ogg" else "16-bit WAV"
    print(
        f"{len(rows)} items -> {args.dst}: {out_bytes * 8 / max(seconds, 1e-9) / 1000:.0f} kbit/s {kind}, "
        f"gain {args.gain_db:+.1f} dB (FLAC was {in_bytes * 8 / max(seconds, 1e-9) / 1000:.0f} kbit/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
