"""A new kernel's backward pass compiled by a second process while the first compiles forward: the first loads
what the child wrote, gets the right gradients, and a child that fails or is killed costs only the time, never a
wrong or broken kernel."""

import json
import os
import subprocess
import sys

import pytest

from gategraph import precompile
from tests.test_kernel import _assert_agrees_with_the_reference
from tests.test_plan import scaled_rnn

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a child compiles only beside a second core")

# a new kernel in a fresh process: its gradients, and what Numba's cache says it loaded and saved
COLD = """
import json
import numpy as np
from tests.test_plan import scaled_rnn
from gategraph.kernel import compile

k = compile(scaled_rnn(0.375), 3, 4, "float64")
params = k.init(0)
x = np.random.default_rng(2).normal(size=(5, 2, 3))
out, _, tape = k.forward(params, x)
grads = k.backward(params, x, np.ones_like(out), tape=tape)
print("grads", json.dumps({name: g.tolist() for name, g in sorted(grads.items())}))
"""


def _run(cache) -> tuple[dict, str]:
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("grads "))
    return json.loads(line.removeprefix("grads ")), done.stdout


def test_the_backward_pass_a_child_compiled_is_loaded_and_the_next_process_loads_both(tmp_path):
    cold, log = _run(tmp_path)
    saved = [line for line in log.splitlines() if line.startswith("[cache] data saved to")]
    loaded = [line for line in log.splitlines() if line.startswith("[cache] data loaded from")]
    assert any(".forward-" in line for line in saved), log[-2000:]
    assert not any(".backward-" in line for line in saved), "backward was compiled here, not by the child"
    assert any(".backward-" in line for line in loaded), log[-2000:]
    warm, log = _run(tmp_path)
    assert "[cache] data saved to" not in log
    assert warm == cold


@pytest.mark.parametrize("how", ["fails", "is killed"])
def test_a_child_that_fails_or_is_killed_leaves_this_process_to_compile_backward(how, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEGRAPH_CACHE_DIR", str(tmp_path))
    started, real = [], precompile.start

    def start(path, function, signature, hold=None):
        if how == "fails":
            child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        else:
            child = real(path, function, signature, hold)
            child.kill()
        started.append(child)
        return child

    monkeypatch.setattr(precompile, "start", start)
    k = _assert_agrees_with_the_reference(scaled_rnn(0.625 if how == "fails" else 0.875), "float64")
    assert started and started[0].returncode != 0
    assert sum(k._backward.stats.cache_misses.values()) == 1  # compiled here
    assert not list((tmp_path / "__pycache__").glob("*.tmp.*"))  # no half-written entry left
