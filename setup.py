"""Build hook: ship the bundled release folders in the wheel.

Everything else is declared in pyproject.toml. The team keeps bundled models in the repository's
top-level ``models/NAME/`` (config.json, model.safetensors, README.md); this hook copies each
release folder into the built package as ``amtcli/_models/NAME/``, where ``amtcli.zoo`` looks for
them in an installed copy (a source checkout reads ``models/`` directly). ``MANIFEST.in`` puts
``models/`` into the sdist so a wheel built from the sdist has them too.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RELEASE_FILES = ("config.json", "model.safetensors", "README.md")


class build_py_with_models(build_py):
    def run(self):
        super().run()
        self._bundled_outputs = []
        source = Path("models")
        if not source.is_dir():
            return
        for folder in sorted(p for p in source.iterdir() if (p / "config.json").is_file()):
            dest = Path(self.build_lib) / "amtcli" / "_models" / folder.name
            self.mkpath(str(dest))
            for name in RELEASE_FILES:
                if (folder / name).is_file():
                    self.copy_file(str(folder / name), str(dest / name))
                    self._bundled_outputs.append(str(dest / name))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + list(getattr(self, "_bundled_outputs", []))


setup(cmdclass={"build_py": build_py_with_models})
