"""The generated kernels' own exp, tanh and σ (plain arithmetic that LLVM vectorizes) agree with NumPy's
over the whole range, down to where e^x is subnormal, and LLVM does vectorize the loops that call them; a sum
down a matrix's rows runs along memory."""

import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding
import numpy as np
import pytest
from numba import njit
from scipy.special import expit

from gategraph.kernel import compile

ULPS = 4  # measured: at most 2 (float32) and 3 (float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_tanh_and_sigmoid_agree_with_numpy_to_a_few_ulps(dtype):
    k, dt = compile("rnn", 1, 1, dtype), np.dtype(dtype)
    k.forward(k.init(0), np.zeros((1, 1, 1), dt))  # the helpers as the kernel compiles them (its flags)
    module = sys.modules[k._module]
    lo, hi = (-745.0, 709.0) if dtype == "float64" else (-103.0, 88.0)
    x = np.concatenate([np.linspace(lo, hi, 20001), np.linspace(-20, 20, 20001)]).astype(dt)

    @njit
    def each(f, xs):
        out = np.empty_like(xs)
        for n in range(xs.size):
            out[n] = f(xs[n])
        return out

    x64 = x.astype(np.float64)
    for f, exact in ((module._exp, np.exp(x64)), (module._tanh, np.tanh(x64)),
                     (module._sigmoid, expit(x64))):
        got, want = each(f, x), exact.astype(dt)
        # a few units in the last place, or less than the smallest normal number (σ far out, e^x subnormal)
        allowed = ULPS * np.spacing(np.abs(want)).astype(np.float64) + np.finfo(dt).tiny
        err = np.abs(got.astype(np.float64) - want.astype(np.float64)) / allowed
        worst = int(np.argmax(err))
        assert err[worst] <= 1, f"{f.__name__}({x[worst]!r}) = {got[worst]!r}, NumPy {want[worst]!r}"
    tiny = np.array([lo + 1.0], dt)  # e^x below the smallest normal number: 2^k built in two halves
    assert 0 < each(module._exp, tiny)[0] < np.finfo(dt).tiny


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_sum_down_the_rows_of_a_matrix_runs_along_memory_and_adds_in_order(dtype):
    """Attention's context c_j = Σ_s M[s, j] α_s is summed with s outside and j inside (the inner loop runs
    along a row of M, not down a column), and each c_j still adds its terms in the order s = 0, 1, ...: the
    same bits as the plain loops, one c_j at a time."""
    from gategraph import cells

    k = compile(cells.attention(score="dot"), None, 16, dtype)
    source = Path(sys.modules[k._module].__file__).read_text()  # (the module as the cache holds it)
    forward = source[source.index("def forward"):source.index("def backward")]
    assert "for _s in range(S):\n                for _j in range(H):\n                    c[_t, _b, _j] +=" in forward
    rng = np.random.default_rng(0)
    T, B, S = 4, 3, 11
    q, M = rng.normal(size=(T, B, 16)).astype(dtype), rng.normal(size=(B, S, 16)).astype(dtype)
    out, _, _ = k.forward(k.init(0), q, memory={"M": M})

    @njit(fastmath={"contract"})
    def plain(M, alpha):
        c = np.empty((alpha.shape[0], alpha.shape[1], M.shape[2]), M.dtype)
        for t in range(alpha.shape[0]):
            for b in range(alpha.shape[1]):
                for j in range(M.shape[2]):
                    acc = M.dtype.type(0.0)
                    for s in range(M.shape[1]):
                        acc += M[b, s, j] * alpha[t, b, s]
                    c[t, b, j] = acc
        return c

    assert np.array_equal(out["c"], plain(M, out["alpha"]))


# one fresh process, an empty kernel cache (Numba shows the IR only of what it compiled, not what it loaded):
# for each pass, how many σ and tanh its source calls and how many of its vectorized loops divide vectors
VECTORIZED = """
import re, sys
import numpy as np
from gategraph.kernel import compile

for cell, dtype in (("lstm", "float32"), ("lstm", "float64"), ("gru", "float32")):
    k = compile(cell, 3, 8, dtype)
    p, x = k.init(0), np.ones((2, 1, 3), dtype)
    out, _, tape = k.forward(p, x)
    k.backward(p, x, out, tape=tape)
    source = open(sys.modules[k._module].__file__).read()
    for fn in (k._forward, k._backward):
        body = source[source.index(f"def {fn.__name__}("):].split("\\n\\n\\n")[0]
        calls = body.count("_sigmoid(") + body.count("_tanh(")
        blocks = re.split(r"\\n(?=[A-Za-z0-9_.]+:)", fn.inspect_llvm(fn.signatures[0]))  # at each label
        vectors = sum(1 for b in blocks if b.startswith("vector.body")
                      and re.search(r"fdiv [a-z ]*<[0-9]+ x (?:float|double)>", b))
        divides = re.findall(r"fdiv [a-z ]*<([0-9]+) x (float|double)>", fn.inspect_llvm(fn.signatures[0]))
        widest = max((int(n) * (32 if t == "float" else 64) for n, t in divides), default=0)
        print(cell, dtype, fn.__name__, calls, vectors, widest)
"""


def test_every_sigma_and_tanh_a_pass_calls_runs_on_vectors(tmp_path):
    """σ and tanh each divide once (1 / (1 + e^-a), -m / (m + 2)), and each call sits in a loop of its own: a
    loop LLVM vectorized has a body (`vector.body`) that divides vectors in the optimized IR, one such loop per
    call. A change to the generated code that keeps LLVM from vectorizing the passes' loops makes them slower by
    half or more (flattening the checked arrays with `reshape` instead of `ravel` did: the LSTM's forward kept
    one vectorized σ of five)."""
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}  # (one core: both passes
    # compile in this process, none in a second one, so that Numba shows the IR of both)
    proc = subprocess.run([sys.executable, "-c", VECTORIZED], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert len(rows) == 6 and sum(int(row[3]) for row in rows) == 5 + 2 + 5 + 2 + 3, rows
    wide = "+avx512f" in llvmlite.binding.get_host_cpu_features().flatten().split(",")
    for cell, dtype, which, calls, vectors, widest in rows:
        assert int(vectors) >= int(calls), f"{cell} {dtype} {which}: {vectors} of {calls} σ and tanh loops vectorized"
        # on a processor with AVX-512, each pass's loops are 512 bits wide (`_wide`): 256 took a tenth longer
        assert int(widest) == 512 or not (wide and int(calls)), f"{cell} {dtype} {which}: vectors of {widest} bits"
