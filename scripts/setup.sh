#!/usr/bin/env bash
# Set up gategraph on a fresh Debian/Ubuntu machine: Graphviz from the system, everything else in .venv.
# Usage: bash scripts/setup.sh          (run from the repository; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dot >/dev/null 2>&1; then
  echo "== installing Graphviz (the dot program)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "== installing gategraph and its test tools into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
echo "== ready: .venv/bin/gategraph --help"
