"""A step's product u · S of a batch with a stacked weight matrix runs as (Sᵀ · uᵀ)ᵀ where S is large
(gategraph.helpers: faster so with OpenBLAS, in float32) and SciPy's BLAS makes it (a pass on several threads):
the kernels give the same outputs and gradients either way, and as the step BLAS gives them."""

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from gategraph import blas, helpers
from gategraph.kernel import _helpers, compile
from tests.conftest import ROOT

CASES = [("lstm", "float32"), ("gru", "float32"), ("lstm", "float64")]
T, B, X, H = 5, 3, 4, 6

# every step's product through SciPy's BLAS (SMALL 0, and SciPy's BLAS left on two threads: the products of a pass
# on one thread are the step BLAS's), flipped (FLIP_AT 0, any batch, any length) or never (FLIP_AT 2^62, where the
# LSTM's forward pass adds its products through a buffer of `_flipped`'s), in a process of its own with an empty
# kernel cache (a changed helper module is a module of another name, and so is every kernel that imports it); the
# same passes in this process go through the step BLAS
FLIPPED = """
import sys
import numpy as np
from threadpoolctl import threadpool_limits
from gategraph import blas, helpers
from gategraph.kernel import cache_dir, compile
from tests.test_step_product import CASES, X, H, run

flip = int(sys.argv[2])
helpers.FLIP_AT, helpers.FLIP_ROWS, helpers.FLIP_STEPS = {"float32": flip, "float64": flip}, (1, 1 << 30), 1
helpers.SMALL = 0
helpers.source.cache_clear()
helpers.name.cache_clear()
blas.threads = lambda batch, weights: None  # every pass on the caller's two threads
for cell, dtype in CASES:
    k = compile(cell, X, H, dtype)
    arrays = cache_dir() / (helpers.name(dtype, "arrays") + ".py")
    assert f"not scipys or s.size < {flip} or b < 1 or" in arrays.read_text()
    with threadpool_limits(2, user_api="blas"), blas.serial():
        assert blas.KERNEL_BLAS.threads() == 2
        out, grads = run(k, dtype)
        assert blas.KERNEL_BLAS.threads() == 2
    np.savez(f"{sys.argv[1]}/{cell}-{dtype}.npz", **{"out_" + n: v for n, v in out.items()},
             **{"grad_" + n: v for n, v in grads.items()})
"""


def run(k, dtype):
    """({output or final state: value}, {gradient: value}) of a forward and a backward pass on fixed random
    numbers."""
    rng = np.random.default_rng(0)
    p = k.init(0)
    x = rng.normal(size=(T, B, X)).astype(dtype)
    out, final, tape = k.forward(p, x)
    grads = k.backward(p, x, rng.normal(size=out.shape).astype(dtype), tape=tape)
    return {"h": out, **{f"final {n}": v for n, v in final.items()}}, grads


@pytest.mark.parametrize("flip", [0, 1 << 62], ids=["flipped", "as it is"])
def test_step_products_through_scipys_blas_give_the_same_outputs_and_gradients(tmp_path, flip):
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", FLIPPED, str(tmp_path), str(flip)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr
    for cell, dtype in CASES:
        out, grads = run(compile(cell, X, H, dtype), dtype)
        flipped = np.load(tmp_path / f"{cell}-{dtype}.npz")
        assert sorted(flipped.files) == sorted([f"out_{n}" for n in out] + [f"grad_{n}" for n in grads])
        tol = 1e-5 if dtype == "float32" else 1e-12
        for n in flipped.files:
            expected = out[n[4:]] if n.startswith("out_") else grads[n[5:]]
            np.testing.assert_allclose(flipped[n], expected, rtol=tol, atol=tol, err_msg=f"{cell} {dtype} {n}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_rule_flips_large_weights_for_middle_batches_over_enough_steps_in_float32_only(dtype):
    """SMALL multiply-adds or more (SciPy's BLAS), FLIP_AT entries of S or more, FLIP_ROWS rows, FLIP_STEPS steps
    or more (benchmarks/bench_step_product.py)."""
    flipped = _helpers(dtype)["arrays"]._flipped
    f32 = dtype == "float32"
    with threadpool_limits(1, user_api="blas"):  # SciPy's BLAS on one thread: the step BLAS's products, never flipped
        assert [a.shape for a in flipped(np.zeros((1024, 1024), dtype), 64, 100, False)] == [(0, 0), (0, 0)]
    with threadpool_limits(2, user_api="blas"):
        if blas.KERNEL_BLAS.threads() != 2:
            pytest.skip("the BLAS runs on one thread here (one core)")
        _flips_as_the_rule_says(flipped, dtype, f32)


def _flips_as_the_rule_says(flipped, dtype, f32):
    """`_flipped` gives Sᵀ and its buffer exactly where the rule says (SciPy's BLAS on two threads)."""
    assert helpers.SMALL == blas.ONE_THREAD_BELOW == 1 << 24  # the products one thread serves best
    assert helpers.FLIP_AT["float32"] == 1 << 18 and helpers.FLIP_ROWS == (8, 64)
    cases = {((1024, 1024), 16, helpers.FLIP_STEPS): f32,  # 2^20 entries, 2^24 multiply-adds
             ((1024, 1024), 64, 100): f32,
             ((1024, 1024), 15, 100): False,  # fewer multiply-adds than SMALL: the step BLAS's
             ((1024, 1024), 65, 100): False,  # more rows than FLIP_ROWS
             ((1024, 1024), 32, helpers.FLIP_STEPS - 1): False,
             ((512, 512), 64, 100): f32,  # FLIP_AT entries
             ((511, 512), 64, 100): False}
    for (shape, b, t), flips in cases.items():
        st, f = flipped(np.zeros(shape, dtype), b, t, False)
        want = (((shape[1], shape[0]), (shape[1], b)) if flips else ((0, 0), (0, 0)))
        assert (st.shape, f.shape) == want, (shape, b, t)
