"""The kernel's plan in the cache: a warm start reads it instead of deriving and lowering the cell again, a
changed cell or a damaged file is never taken for it, and the start loads no more than it needs."""

import json
import os
import subprocess
import sys

import numpy as np

from gategraph import plan
from gategraph.kernel import cache_dir, compile
from gategraph.spec import CellBuilder, concat, tanh


def scaled_rnn(scale: float):
    """h_t = scale · tanh(W [h_{t-1}, x_t] + b): one cell per constant, all of them named alike."""
    b = CellBuilder("scaled", "a simple RNN with a constant factor")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, c = b.param("W", (H, H + X)), b.param("b", H)
    b.let("h", scale * tanh(W @ concat(h, x) + c))
    return b.cell()


def test_cells_that_differ_in_the_last_bit_of_a_constant_have_different_plans():
    assert plan.key(scaled_rnn(0.3), "float64") != plan.key(scaled_rnn(0.30000000000000004), "float64")
    assert plan.key(scaled_rnn(0.3), "float64") == plan.key(scaled_rnn(0.3), "float64")
    assert plan.key(scaled_rnn(0.3), "float64") != plan.key(scaled_rnn(0.3), "float32")


def test_a_changed_cell_of_the_same_name_runs_its_own_kernel():
    x = np.random.default_rng(0).normal(size=(1, 2, 3))
    outs = {}
    for scale in (1.0, 0.5):
        k = compile(scaled_rnn(scale), 3, 4, "float64")
        outs[scale] = k.forward(k.init(0), x)[0]
    np.testing.assert_allclose(outs[0.5], 0.5 * outs[1.0], rtol=1e-12)


def test_a_damaged_plan_or_an_edited_module_is_lowered_again():
    cell = scaled_rnn(0.25)
    k = compile(cell, 3, 4, "float64")
    x = np.random.default_rng(1).normal(size=(4, 2, 3))
    want = k.forward(k.init(0), x)[0]
    path = cache_dir() / f"plan_{plan.key(cell, 'float64')}.json"
    module = cache_dir() / f"{k.plan.module}.py"
    good = path.read_text()
    damaged = [good[: len(good) // 2], "[]", good.replace('"_T"', "7"), good.replace(k.plan.module, "../escape")]
    for text in damaged:
        path.write_text(text)
        assert plan.read(path) is None, text[:80]
    path.write_text(good)
    module.write_text(module.read_text() + "\nraise SystemExit('edited')\n")
    assert plan.read(path) is None
    again = subprocess.run([sys.executable, "-c", "from tests.test_plan import rerun; rerun()"], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=300)
    assert again.returncode == 0, again.stderr
    np.testing.assert_allclose(np.array(json.loads(again.stdout)), want, rtol=1e-12)
    assert plan.read(path) is not None and "edited" not in module.read_text()


def rerun():
    """The forward pass of `scaled_rnn(0.25)` in a fresh process (the damaged-cache test's second start)."""
    k = compile(scaled_rnn(0.25), 3, 4, "float64")
    x = np.random.default_rng(1).normal(size=(4, 2, 3))
    print(json.dumps(k.forward(k.init(0), x)[0].tolist()))


WARM = """
import sys
import numpy as np
from gategraph import cells
from gategraph.kernel import compile

k = compile(cells.lstm(), 3, 4, "float32")
x = np.ones((5, 2, 3), np.float32)
out, _, tape = k.forward(k.init(0), x)
grads = k.backward(k.init(0), x, out, tape=tape)
print("numbers", out.sum(), *(grads[name].sum() for name in sorted(grads)))
print(sorted(m for m in ("gategraph.derive", "gategraph.lower", "scipy.linalg", SETUP) if m in sys.modules))
"""
SETUP = "numba.np.polynomial.polynomial_core"  # imported when Numba sets up its whole compiler, never to load


def test_a_warm_start_neither_derives_nor_lowers_nor_loads_scipy_linalg_nor_sets_up_numbas_compiler(tmp_path):
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    cold, warm = (subprocess.run([sys.executable, "-c", WARM.replace("SETUP", repr(SETUP))], capture_output=True,
                                 text=True, env=env, timeout=300) for _ in range(2))
    assert cold.returncode == 0 and warm.returncode == 0, cold.stderr + warm.stderr
    assert cold.stdout.splitlines()[-1] == f"['gategraph.derive', 'gategraph.lower', '{SETUP}']", cold.stdout[-300:]
    assert warm.stdout.splitlines()[-1] == "[]", warm.stdout[-300:]
    numbers = [[line for line in run.stdout.splitlines() if line.startswith("numbers")] for run in (cold, warm)]
    assert numbers[0] == numbers[1] and len(numbers[0]) == 1, numbers
    loaded = " ".join(line for line in warm.stdout.splitlines() if line.startswith("[cache] data loaded from"))
    assert ".forward-" in loaded and ".backward-" in loaded and "data saved" not in warm.stdout, warm.stdout
