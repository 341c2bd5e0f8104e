"""Imports point one way (STYLE.md): cli -> inference / training / evaluation -> nets / synth /
datasets -> audio / notes / tokens -> config. Read from the source (function-level imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "amtcli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every amtcli module ``path`` imports, anywhere in the file, as absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # `from . import x` imports module x
    return {m for m in found if m == "amtcli" or m.startswith("amtcli.")}


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _offenders(importers: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for module, imported in MODULES.items():
        if module == importers or module.startswith(importers + "."):
            bad = sorted(m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden))
            if bad:
                out[module] = bad
    return out


def test_the_modules_were_found():
    assert {"amtcli.cli.train", "amtcli.nets.transformer", "amtcli.tokens", "amtcli.training.solver"} <= set(MODULES)
    assert "amtcli.tokens" in MODULES["amtcli.nets.transformer"]  # the reader sees function-level imports


def test_nothing_below_cli_imports_cli():
    offenders = {m: bad for m, bad in _offenders("amtcli", ("amtcli.cli",)).items() if not m.startswith("amtcli.cli")}
    assert offenders == {}


@pytest.mark.parametrize(
    "importers, forbidden",
    [
        ("amtcli.nets", ("amtcli.inference", "amtcli.training", "amtcli.evaluation", "amtcli.zoo", "amtcli.cli")),
        ("amtcli.inference", ("amtcli.evaluation", "amtcli.training")),
        ("amtcli.tokens", ("amtcli.inference", "amtcli.nets", "amtcli.training", "amtcli.evaluation")),
        (
            "amtcli.notes",
            (
                "amtcli.inference",
                "amtcli.nets",
                "amtcli.training",
                "amtcli.evaluation",
                "amtcli.synth",
                "amtcli.datasets",
            ),
        ),
        ("amtcli.datasets", ("amtcli.synth", "amtcli.training", "amtcli.inference", "amtcli.evaluation")),
        ("amtcli.synth", ("amtcli.training", "amtcli.inference", "amtcli.evaluation")),
        ("amtcli.config", ("amtcli.audio", "amtcli.notes", "amtcli.nets", "amtcli.training", "amtcli.inference")),
    ],
)
def test_imports_point_down(importers, forbidden):
    assert _offenders(importers, forbidden) == {}


def test_one_module_reads_and_writes_the_synth_manifest():
    """Only amtcli.datasets.manifest opens manifest.jsonl; everything else calls it."""
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _module_name(path) == "amtcli.datasets.manifest":
            continue
        text = path.read_text()
        if '"manifest.jsonl"' in text or "'manifest.jsonl'" in text:
            readers.append(_module_name(path))
    assert readers == []
