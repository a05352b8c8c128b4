#!/usr/bin/env bash
# System packages the tests need beyond PyPI: Debian's Chromium for the MLflow UI browser test
# (Playwright drives this binary; it never downloads a browser of its own), and Debian's
# PostgreSQL server programs, which tests/test_scale_out.py starts on loopback for itself.
set -euo pipefail
packages=()
command -v chromium >/dev/null || packages+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "error: missing Debian packages ${packages[*]} and no root or sudo to install them" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
