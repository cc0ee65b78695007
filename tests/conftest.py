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
    """The whole lecture as a user builds it, trained models included: built once for every test that reads it."""
    out = tmp_path_factory.mktemp("trained-lecture")
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", "lecture", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600)
    assert done.returncode == 0, done.stderr
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
