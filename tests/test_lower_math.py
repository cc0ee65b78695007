"""The generated kernels' own exp, tanh and σ (plain arithmetic that LLVM vectorizes) agree with NumPy's
over the whole range, down to where e^x is subnormal; and elementwise statements share a loop nest only
where no iteration reads what another writes."""

import sys

import numpy as np
import pytest
import sympy as sp
from numba import njit
from scipy.special import expit

from gategraph.kernel import compile
from gategraph.lower import Store, _apart

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


H, j = sp.Symbol("H", positive=True, integer=True), sp.Symbol("_j", integer=True)


def test_entries_of_one_buffer_are_apart_only_when_no_two_iterations_meet():
    block = [Store("U", "seq", col=c * H, width=4 * H).entry((j,)) for c in range(4)]
    assert _apart(block[3], block[2], H) and _apart(block[0], block[1], H)  # the gates' column blocks
    assert not _apart(block[0], block[1], 2 * H)  # columns H + j, j < 2H, reach block 0's
    now, before = Store("C", "seq", shift=1).entry((j,)), Store("C", "seq").entry((j,))
    assert _apart(now, before, H) and _apart(now, now, H)  # C_t beside C_{t-1}; the same entry
    assert not _apart(Store("C", "seq").entry((j + 1,)), before, H)  # a neighbour's entry
    assert not _apart(Store("P", "flat").entry((j,)), Store("P", "seq").entry((j,)), H)
