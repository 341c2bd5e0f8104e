#!/usr/bin/env bash
# Everything amt needs on a fresh Debian machine, idempotent: Debian packages (FluidSynth and
# soundfonts), a virtual environment in .venv, the pinned CPU torch wheel first (a plain `torch`
# requirement would pull a multi-GB CUDA build), then amt itself in editable mode with test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v fluidsynth >/dev/null 2>&1 || need_apt+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)
# MuseScore General: a sampled Steinway the default model never trains on (validation suite).
[ -f /usr/share/sounds/sf3/MuseScore_General.sf3 ] || need_apt+=(musescore-general-soundfont-small)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.amt-setup-stamp
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q "torch==2.13.0" >&2
  .venv/bin/python -m pip install -q -e ".[test]" >&2
  echo "$want" > "$stamp"
fi
