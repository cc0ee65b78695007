#!/usr/bin/env bash
# Set up gategraph on a fresh Debian/Ubuntu machine: Graphviz and TeX from the system, the rest in .venv.
# Usage: bash scripts/setup.sh          (run from the repository; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Graphviz draws the graphs; pdflatex (TeX Live) compiles every formula and the Beamer decks, pdftoppm
# rasterises them. What is missing is looked for file by file, not by `pdflatex` alone: a TeX Live without
# lmodern (Debian leaves it out with --no-install-recommends) has pdflatex and still cannot build the PDF.
# Each entry is FILE:DEBIAN-PACKAGE; tests/test_setup.py checks that every file the LaTeX templates load is here.
programs=(dot:graphviz pdftoppm:poppler-utils pdfinfo:poppler-utils pdftotext:poppler-utils pdflatex:texlive-latex-base
          kpsewhich:texlive-binaries)
tex_files=(article.cls:texlive-latex-base beamer.cls:texlive-latex-recommended pgf.sty:texlive-pictures
           beamerfontthemeserif.sty:texlive-latex-recommended lmodern.sty:lmodern t1lmr.fd:lmodern
           amsmath.sty:texlive-latex-base amssymb.sty:texlive-base
           geometry.sty:texlive-latex-base graphicx.sty:texlive-latex-base fontenc.sty:texlive-latex-base
           t1enc.def:texlive-latex-base inputenc.sty:texlive-latex-base utf8.def:texlive-latex-base
           array.sty:texlive-latex-base)
tools=() tex=()
for entry in "${programs[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || case "${entry#*:}" in texlive-*) tex+=("${entry#*:}") ;;
                                                                      *) tools+=("${entry#*:}") ;; esac
done
for entry in "${tex_files[@]}"; do
  [ -n "$(kpsewhich "${entry%%:*}" 2>/dev/null)" ] || tex+=("${entry#*:}")
done
if [ ${#tools[@]} -gt 0 ] || [ ${#tex[@]} -gt 0 ]; then
  mapfile -t tools < <(printf '%s\n' "${tools[@]}" | sort -u | grep .)
  mapfile -t tex < <(printf '%s\n' "${tex[@]}" | sort -u | grep .)
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
.venv/bin/python -m pip install -q -e '.[dev,fast]'
echo "== ready: .venv/bin/gategraph --help"
