#!/usr/bin/env bash
# Make .venv and install the project into it from the lock (requirements/lock.sh made it):
#   bash requirements/install.sh base    # what `dvc repro` needs
#   bash requirements/install.sh test    # and the tests' and a contributor's tools (ruff, uv)
#   bash requirements/install.sh gpu     # and TensorFlow's CUDA wheels (Linux with an NVIDIA driver)
# Every package at the locked version, checked against its hash; then the project itself, which
# adds nothing (--no-deps), so `pip freeze` in .venv is the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
lock="requirements/${1:?which lock: base, test or gpu}.txt"
[ -f "$lock" ] || { echo "error: no $lock: say base, test or gpu" >&2; exit 2; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --require-hashes -r "$lock"
.venv/bin/pip install -q --no-deps -e .
