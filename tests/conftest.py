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


def build(out, *args):
    """`gategraph ARGS -o out --format html,beamer` as a user runs it; the folder."""
    done = subprocess.run([sys.executable, "-m", "gategraph.cli", *args, "-o", str(out), "--format", "html,beamer"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def decks(tmp_path_factory):
    """The whole lecture (without its training runs) and a deck for two built-in cells and a user's cell, built
    once for the tests that walk them, measure their figures and compile them."""
    return {"lecture": build(tmp_path_factory.mktemp("lecture"), "lecture", "--no-train"),
            "lstm gru": build(tmp_path_factory.mktemp("slides"), "slides", "lstm", "gru", "examples/mgu.py:mgu")}
