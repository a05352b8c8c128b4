#!/usr/bin/env bash
# The lock: exact versions, with hashes, of everything the README installs, from pyproject.toml's
# ranges, resolved by uv for every platform and Python >= 3.11 (markers pick a platform's wheels).
#   base.txt  `pip install -e .`           test.txt  `.[test]` (postgres, dashboard, dev included)
#   gpu.txt   `.[gpu]` (CUDA wheels, Linux)
# Re-lock after changing a dependency, or to take newer releases within the ranges:
#   bash requirements/lock.sh              # keeps every pin that still fits
#   bash requirements/lock.sh --upgrade    # the newest releases the ranges allow
# then run the suite on the new lock and commit requirements/*.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=(uv)
command -v uv >/dev/null || uv=(.venv/bin/uv)  # `pip install -e '.[test]'` installs it into the venv
for lock in base test gpu; do
  extra=()
  [ "$lock" != base ] && extra=(--extra "$lock")
  "${uv[@]}" pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet \
    "${extra[@]}" "$@" -o "requirements/$lock.txt"
done
echo "wrote requirements/{base,test,gpu}.txt"
