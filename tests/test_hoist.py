"""What is the same at every step is computed once per call: a part of a cell whose leaves are only memories
and parameters (the keys M · U_aᵀ) before the time loop, and in the backward pass the sum over the steps is
moved inside the products with such parts (Σ_t P_t U_a = (Σ_t P_t) U_a), so each runs once, not T times."""

import numpy as np
import pytest

from gategraph import cells
from gategraph.kernel import compile
from gategraph.lower import lower
from gategraph.spec import CellBuilder, softmax, tanh
from tests.test_kernel import assert_attention_agrees

T, B, S, H = 5, 3, 6, 4


def _loops_around(source: str, needle: str) -> list[set]:
    """For each line of `source` that holds `needle`: the variables of the loops it sits in."""
    out, open_loops = [], []  # (indent, variable)
    for line in source.splitlines():
        indent = len(line) - len(line.lstrip())
        open_loops = [(i, v) for i, v in open_loops if i < indent]
        if needle in line:
            out.append({v for _, v in open_loops})
        if line.lstrip().startswith("for "):
            open_loops.append((indent, line.split()[1]))
    return out


def _tanh_keys():
    """Attention over keys tanh(M · Uᵀ) (a nonlinearity in the part that is the same at every step)."""
    b = CellBuilder("tanh_keys")
    S_, H_ = b.sizes("S H")
    M = b.memory("M", (S_, H_))
    q = b.input("q", H_)
    U, W = b.param("U", (H_, H_)), b.param("W", (H_, H_))
    K = b.let("K", tanh(M @ U.T), "keys")
    alpha = b.let("alpha", softmax(K @ (W @ q)), "weights")
    b.let("c", K.T @ alpha, "context")
    return b.cell(outputs=["c", "alpha"])


@pytest.mark.parametrize("make", [lambda: cells.attention("additive"), _tanh_keys], ids=["additive", "tanh_keys"])
def test_products_with_the_memory_run_once_per_call_and_the_gradients_hold(make):
    cell = make()
    k = compile(cell, None, H, "float64", A=3) if cell.name == "attention_additive" else compile(cell, None, H,
                                                                                                 "float64")
    param = "U_a" if cell.name == "attention_additive" else "U"
    lowered = lower(cell, "float64")  # the source the kernel runs (its module in the cache is the same text)
    forward, backward = lowered.source.split("\ndef forward(")[1].split("\ndef backward(")
    assert all("_t" not in loops for loops in _loops_around(forward, f"{param}["))
    assert all("_t" not in loops for loops in _loops_around(backward, f"{param}["))
    if cell.name == "attention_additive":  # (a named value, as K above, is still kept for every step)
        assert not [dims for _, dims in lowered.backward_work if len(dims) == 4 and str(dims[-1]) == "H"], \
            "the memory's gradient is summed as it is computed, not kept for every step"

    rng = np.random.default_rng(4)
    params = k.init(4)
    q, M = rng.normal(size=(T, B, H)), rng.normal(size=(B, S, H))
    assert_attention_agrees(k, cell, params, q, M, rng)
