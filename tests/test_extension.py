"""Adding an op touches one file: one `pointwise(...)` line, and the op works in every view at once."""

import numpy as np
import pytest
import sympy as sp

from gategraph import CellBuilder, concat
from gategraph.graph import forward
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
