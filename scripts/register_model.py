"""Add or refresh a zoo registry entry from a release folder; sha256s and sizes are computed, never typed.

    # a model bundled in the package (models/NAME/ is copied into the wheel):
    .venv/bin/python scripts/register_model.py NAME --folder models/NAME --bundled --description "..."
    # a model on the Hugging Face Hub, pinned to the commit that holds exactly these files:
    .venv/bin/python scripts/register_model.py NAME --folder path/to/release --repo-id OWNER/REPO \\
        --revision <40-hex commit> --description "..." --metric note_f1=0.81
    # check that every bundled model still matches its registry entry:
    .venv/bin/python scripts/register_model.py --check

A folder's ``model.onnx`` (U-Net models) is registered with the other files, and refused when it was
not exported from the ``model.safetensors`` beside it (``amt models onnx FOLDER --overwrite`` first).
After new weights land in ``models/synthetic``, one command does both::

    .venv/bin/python scripts/register_model.py synthetic --folder models/synthetic --bundled --onnx
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


def onnx_problem(folder: Path) -> str | None:
    """Why ``folder/model.onnx`` cannot be used with the weights beside it, or ``None`` (also when absent)."""
    from amtcli.errors import AmtError
    from amtcli.inference.backends import OnnxTranscriber
    from amtcli.zoo.release import ONNX_NAME

    if not (folder / ONNX_NAME).is_file():
        return None
    try:
        OnnxTranscriber(folder)
    except AmtError as exc:
        return str(exc)
    return None


def check(registry_path: Path) -> int:
    from amtcli.zoo.registry import load_registry, sha256_file
    from amtcli.zoo.release import ONNX_NAME

    bad = 0
    for entry in load_registry(registry_path).values():
        if entry.bundled is None:
            continue
        folder = ROOT / "models" / entry.bundled
        if (folder / ONNX_NAME).is_file() and ONNX_NAME not in entry.files:
            print(f"{entry.name}: {folder / ONNX_NAME} is not in the registry (re-run this script to add it)")
            bad += 1
        problem = onnx_problem(folder)
        if problem:
            print(f"{entry.name}: {problem}")
            bad += 1
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
    parser.add_argument(
        "--onnx", action="store_true", help="(re)write the folder's model.onnx from its weights first (U-Net models)"
    )
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
    if args.onnx:
        from amtcli.zoo.export import write_onnx

        made = write_onnx(args.folder, overwrite=True)
        print(f"{made.path}: written (onnxruntime vs torch: largest difference {made.max_difference:.1e})")
    problem = onnx_problem(args.folder)
    if problem:
        parser.error(f"{problem} (or pass --onnx)")
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
