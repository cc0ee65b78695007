"""Every example script runs and prints what its docstring promises."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = {**os.environ, "GATEGRAPH_QUICK": "1"}  # examples that train do it briefly here
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_mgu_example_prints_its_equations():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "mgu.py")], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("f_t = σ(W_f · [h_{t-1}, x_t] + b_f)")
