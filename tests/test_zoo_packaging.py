"""Bundled models reach users who `pip install` the wheel, not only editable installs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from amtcli.zoo import registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_bundled_models_and_they_resolve_from_the_installed_package(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    shutil.copytree(ROOT / "amtcli", src / "amtcli", ignore=ignore)
    shutil.copytree(ROOT / "models", src / "models", ignore=ignore)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(src),
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = (tmp_path / "dist").glob("amtcli-*.whl")
    entries = registry.load_registry(registry.REGISTRY_PATH)
    bundled = [e for e in entries.values() if e.bundled]
    assert bundled, "the registry should bundle at least tiny-test"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "amtcli/zoo/registry.json" in names
        for entry in bundled:
            for fname, info in entry.files.items():
                data = zf.read(f"amtcli/_models/{entry.bundled}/{fname}")
                assert hashlib.sha256(data).hexdigest() == info.sha256
        zf.extractall(tmp_path / "site")

    # A fresh interpreter importing amtcli from the unpacked wheel finds tiny-test inside the package.
    probe = (
        "import json, amtcli, amtcli.zoo as z; r = z.resolve_spec('tiny-test'); "
        "print(json.dumps({'file': amtcli.__file__, 'path': str(r.path), 'source': r.source}))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1"}
    env.pop("AMT_REGISTRY", None)
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    site = str(tmp_path / "site")
    assert found["file"].startswith(site), found  # not the editable checkout
    assert found["source"] == "bundled"
    assert found["path"] == str(tmp_path / "site" / "amtcli" / "_models" / "tiny-test")
