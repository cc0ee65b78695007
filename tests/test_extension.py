"""Adding an op touches one file: one `pointwise(...)` line, and the op works in every view at once, the kernels
included."""

import numpy as np
import pytest
import sympy as sp

from gategraph import CellBuilder, concat
from gategraph.errors import SpecError
from gategraph.graph import forward
from gategraph.lower import lower
from gategraph.ops import NODES, OPS, pointwise, sigma
from gategraph.renderers.latex import equations
from gategraph.worked import evaluate


@pytest.fixture
def swish():
    node = pointwise("Swish", 1, r"\operatorname{{swish}}({0})", "swish({0})", "swish",
                     lambda a: a * sigma(a), lambda a: a / (1 + np.exp(-a)), doc="a σ(a)")
    yield node
    del OPS["Swish"], NODES["Swish"]


def test_a_new_op_prints_draws_and_evaluates(swish):
    b = CellBuilder("swish_rnn")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W = b.param("W", (H, H + X))
    b.let("h", swish(W @ concat(h, x)))
    cell = b.cell()
    assert equations(cell, "text") == "h_t = swish(W · [h_{t-1}, x_t])"
    assert sorted(n.label for n in forward(cell).nodes.values() if n.kind == "op") == ["[ , ]", "swish", "·"]
    ev = evaluate(cell, {"x": [1], "h": [0], "W": [[0, 2]]})
    assert ev["h"][0] == 2 * sigma(2)
    assert ev.floats("h")[0] == pytest.approx(2 / (1 + np.exp(-2)))
    a = sp.Symbol("a")
    assert sp.diff(OPS["Swish"].scalar(a), a) == sigma(a) + a * sigma(a) * (1 - sigma(a))


def _one_op_cell(node):
    b = CellBuilder("one_op")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W = b.param("W", (H, H + X))
    b.let("h", node(W @ concat(h, x)))
    return b.cell()


def test_a_new_op_lowers_to_kernels_from_its_table_entry(swish):
    """Swish's scalar form is arithmetic and σ: the kernel calls the σ it already has."""
    source = lower(_one_op_cell(swish), "float32").source.split("def forward(")[1]
    assert "_sigmoid(" in source


def test_a_new_op_with_a_function_of_its_own_brings_its_kernel_call():
    """arctan is no op's scalar form until an op says how the kernel computes it: the kernel generator asks for
    exactly that, then prints the call the op gives (the derivative 1 / (1 + a²) needs no call)."""
    args = (r"\arctan({0})", "arctan({0})", "atan", sp.atan, np.arctan)
    arctan = pointwise("Arctan", 1, *args, doc="arctan a")
    try:
        with pytest.raises(SpecError, match=r"no scalar code for atan\(\).*call="):
            lower(_one_op_cell(arctan), "float64")
    finally:
        del OPS["Arctan"], NODES["Arctan"]
    arctan = pointwise("Arctan", 1, *args, doc="arctan a", call="np.arctan({0})")
    try:
        assert "np.arctan(" in lower(_one_op_cell(arctan), "float64").source.split("def forward(")[1]
    finally:
        del OPS["Arctan"], NODES["Arctan"]


def test_a_new_op_that_scales_but_does_not_add_keeps_its_sum_over_steps_outside():
    """Σ_t of a product moves inside an op only if the op is linear in what changes from step to step
    (lower._over_steps). The harmonic mean's half, a b / (a + b), scales with its two arguments but does not add:
    Σ_t a_t b_t / (a_t + b_t) is not (Σ a_t)(Σ b_t) / (Σ a_t + Σ b_t), so it is not linear in them."""
    from gategraph.lower import _linear_in

    pointwise("Harmonic", 2, r"\operatorname{{hm}}({0}, {1})", "hm({0}, {1})", "hm",
              lambda a, b: a * b / (a + b), lambda a, b: a * b / (a + b), doc="a b / (a + b)")
    try:
        shapes = [(3,), (3,)]
        assert not _linear_in(OPS["Harmonic"], (True, True), shapes, ())
        assert _linear_in(OPS["Plus"], (True, True), shapes, ())  # the same check still passes a sum
        assert _linear_in(OPS["Hadamard"], (True, False), shapes, ())  # and a product with what is held
        assert not _linear_in(OPS["Hadamard"], (True, True), shapes, ())
    finally:
        del OPS["Harmonic"], NODES["Harmonic"]
