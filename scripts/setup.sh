#!/usr/bin/env bash
# Set up gategraph on a fresh Debian/Ubuntu machine: Graphviz and TeX from the system, the rest in .venv.
# Usage: bash scripts/setup.sh          (run from the repository; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Graphviz draws the graphs; pdflatex (TeX Live) and pdftoppm check that every formula is valid LaTeX
tools=() tex=()
command -v dot >/dev/null 2>&1 || tools+=(graphviz)
command -v pdftoppm >/dev/null 2>&1 || tools+=(poppler-utils)
command -v pdflatex >/dev/null 2>&1 || tex+=(texlive-latex-base texlive-latex-recommended texlive-fonts-recommended
                                             texlive-pictures)
if [ ${#tools[@]} -gt 0 ] || [ ${#tex[@]} -gt 0 ]; then
  echo "== installing ${tools[*]} ${tex[*]} (Debian packages; TeX takes a few minutes the first time)"
  as_root apt-get update -qq
  [ ${#tools[@]} -eq 0 ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tools[@]}" >/dev/null
  [ ${#tex[@]} -eq 0 ] || as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${tex[@]}" >/dev/null
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
