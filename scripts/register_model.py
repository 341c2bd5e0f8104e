"""Add or refresh a zoo registry entry from a release folder; sha256s and sizes are computed, never typed.

    # a model bundled in the package (models/NAME/ is copied into the wheel):
    .venv/bin/python scripts/register_model.py NAME --folder models/NAME --bundled --description "..."
    # a model on the Hugging Face Hub, pinned to the commit that holds exactly these files:
    .venv/bin/python scripts/register_model.py NAME --folder path/to/release --repo-id OWNER/REPO \\
        --revision <40-hex commit> --description "..." --metric note_f1=0.81
    # check that every bundled model still matches its registry entry:
    .venv/bin/python scripts/register_model.py --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _metric(text: str) -> tuple[str, float | str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, float(value)
    except ValueError:
        return key, value


def check(registry_path: Path) -> int:
    from amtcli.zoo.registry import load_registry, sha256_file

    bad = 0
    for entry in load_registry(registry_path).values():
        if entry.bundled is None:
            continue
        folder = ROOT / "models" / entry.bundled
        for fname, info in entry.files.items():
            path = folder / fname
            if not path.is_file():
                print(f"{entry.name}: {path} is missing")
                bad += 1
            elif sha256_file(path) != info.sha256 or path.stat().st_size != info.size:
                print(f"{entry.name}: {path} does not match the registry (re-run this script to refresh it)")
                bad += 1
    print("registry and bundled models agree" if not bad else f"{bad} problem(s)")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    from amtcli.zoo.registry import REGISTRY_PATH, entry_from_folder, load_registry, save_registry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="zoo name (lower case, digits, . _ -)")
    parser.add_argument("--folder", type=Path, help="release folder holding config.json, model.safetensors, README.md")
    parser.add_argument("--description", help="one line for `amt models list` (kept from the old entry if omitted)")
    parser.add_argument("--bundled", action="store_true", help="the folder is models/NAME, shipped in the wheel")
    parser.add_argument("--repo-id", help="Hugging Face model repo (owner/name)")
    parser.add_argument("--revision", help="the 40-hex commit of that repo holding these files")
    parser.add_argument(
        "--metric",
        type=_metric,
        action="append",
        default=[],
        help="headline metric KEY=VALUE (repeatable; first is shown)",
    )
    parser.add_argument("--registry", type=Path, default=REGISTRY_PATH, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="verify bundled models against the registry and exit")
    args = parser.parse_args(argv)

    if args.check:
        return check(args.registry)
    if not args.name or not args.folder:
        parser.error("NAME and --folder are required (or --check)")
    entries = load_registry(args.registry)
    old = entries.get(args.name)
    description = args.description or (old.description if old else None)
    if not description:
        parser.error("--description is required for a new entry")
    bundled = None
    if args.bundled:
        if args.folder.resolve() != (ROOT / "models" / args.folder.name).resolve():
            parser.error(f"--bundled models live in {ROOT / 'models'}/NAME")
        bundled = args.folder.name
    metrics = dict(args.metric) if args.metric else (dict(old.metrics) if old else {})
    entry = entry_from_folder(
        args.name,
        args.folder,
        description=description,
        bundled=bundled,
        repo_id=args.repo_id,
        revision=args.revision,
        metrics=metrics,
    )
    entries[args.name] = entry
    save_registry(entries, args.registry)
    print(
        f"{args.registry}: {'updated' if old else 'added'} {args.name!r} ({entry.size} bytes, {len(entry.files)} files)"
    )
    return 0


if __name__ == "__main__":
    from amtcli.errors import AmtError

    try:
        sys.exit(main())
    except AmtError as exc:
        sys.exit(f"error: {exc}")
