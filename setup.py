"""Build hook: ship the bundled release folders in the wheel.

Everything else is declared in pyproject.toml. The team keeps bundled models in the repository's
top-level ``models/NAME/``; this hook copies the files the model registry lists for each bundled
model (``amtcli/zoo/registry.json``: the release files, each with its sha256) into the built package
as ``amtcli/_models/NAME/``, where ``amtcli.zoo`` looks for them in an installed copy (a source
checkout reads ``models/`` directly). ``MANIFEST.in`` puts ``models/`` into the sdist so a wheel
built from the sdist has them too.
"""

import json
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REGISTRY = Path("amtcli") / "zoo" / "registry.json"


def bundled_files() -> dict[str, list[str]]:
    """Bundled folder name -> the release files the registry lists for it."""
    models = json.loads(REGISTRY.read_text())["models"]
    return {entry["bundled"]: sorted(entry["files"]) for entry in models.values() if entry.get("bundled")}


class build_py_with_models(build_py):
    def run(self):
        super().run()
        self._bundled_outputs = []
        source = Path("models")
        if not source.is_dir():
            return
        for name, files in sorted(bundled_files().items()):
            folder, dest = source / name, Path(self.build_lib) / "amtcli" / "_models" / name
            self.mkpath(str(dest))
            for fname in files:
                self.copy_file(str(folder / fname), str(dest / fname))
                self._bundled_outputs.append(str(dest / fname))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + list(getattr(self, "_bundled_outputs", []))


setup(cmdclass={"build_py": build_py_with_models})
