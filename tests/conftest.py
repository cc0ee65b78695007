import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# compiled kernels go to a fresh cache per test session (subprocesses inherit it), never the user's
os.environ.setdefault("GATEGRAPH_CACHE_DIR", tempfile.mkdtemp(prefix="gategraph-test-kernels-"))

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # CI installs it (the dev extra) and never skips
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif((CHROMIUM is None or sync_playwright is None) and not os.environ.get("CI"),
                                   reason="Debian's chromium or Playwright is missing (CI has both and never skips)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def deck_pages():
    """Headless Chromium (the system's, driven by Playwright): `with deck_pages() as open_deck:`, then
    `open_deck(index.html, width, height)` is a page showing the deck at that size once the deck's own
    self-check has run (its counts in `document.body.dataset`)."""

    def open_deck(path, width=1280, height=720):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-checked='1']", timeout=60_000)
        return page

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield open_deck
        finally:
            browser.close()


needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not __import__("os").environ.get("CI"),
                               reason="Graphviz `dot` is not installed (CI installs it and never skips)")


def run_cli(*args, cwd=None, check=True):
    """Run `gategraph ARGS` as a user would: a separate process."""
    proc = subprocess.run([sys.executable, "-m", "gategraph.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"gategraph {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


SLIDES = "lstm gru examples/mgu.py:mgu"  # `gategraph slides` for two built-in cells and a user's


def build(out, *args):
    """`gategraph ARGS -o out --format html,beamer` as a user runs it; the folder."""
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", *args, "-o", str(out), "--format", "html,beamer"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def trained_lecture(tmp_path_factory):
    """The whole lecture as a user builds it, trained models included: built once for every test that reads it
    (what the command said while it built, in build.log beside the deck's folder)."""
    out = tmp_path_factory.mktemp("trained-lecture")
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "lecture", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600)
    assert done.returncode == 0, done.stderr
    (out.parent / f"{out.name}-build.log").write_text(done.stderr)
    return out


class Decks(dict):
    """Decks built when a test first asks for them, once per session: the whole lecture with its trained results
    and without them, and `gategraph slides` decks for the cells named."""

    def __init__(self, request, tmp_path_factory):
        super().__init__()
        self.request, self.tmp = request, tmp_path_factory

    def __missing__(self, name):
        if name == "trained lecture":
            self[name] = self.request.getfixturevalue("trained_lecture")
        elif name == "lecture":
            self[name] = build(self.tmp.mktemp("lecture"), "lecture", "--no-train")
        else:
            self[name] = build(self.tmp.mktemp("slides"), "slides", *name.split())
        return self[name]


@pytest.fixture(scope="session")
def decks(request, tmp_path_factory):
    return Decks(request, tmp_path_factory)
