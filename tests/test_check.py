"""The proofs: every cell's derived gradients against finite differences and against SymPy's own diff,
and proof that the checks can fail."""

import pytest

from gategraph.cells import CELLS, lstm
from gategraph.check import finite_differences, sympy_exact
from gategraph.derive import AdjointVar, Role, derive
from gategraph.ops import NODES
from gategraph.spec import Equation, Var


@pytest.mark.parametrize("name", sorted(CELLS))
def test_finite_differences_agree_for_every_parameter_input_and_initial_state(name):
    cell = CELLS[name]()
    rows = finite_differences(cell)
    expected = {p.name for p in cell.params} | {d.name for d in cell.inputs} | {s.name for s in cell.states}
    assert {r.name for r in rows} == expected
    bad = [(r.name, r.max_rel) for r in rows if not r.ok]
    assert not bad, bad
    assert all(r.max_rel < 1e-6 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CELLS))
def test_sympy_derivative_of_the_expanded_loss_equals_the_adjoint_exactly(name):
    rows = sympy_exact(CELLS[name]())
    assert rows and all(r.ok and r.failed == 0 for r in rows), [(r.name, r.failed) for r in rows if not r.ok]


def scalar_broadcast_cells():
    """A scalar computed in the step and added to, or multiplying, a vector: its adjoint must be a sum."""
    from gategraph import CellBuilder, concat, dot, sigmoid, tanh

    b = CellBuilder("scalar_added")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, w = b.param("W", (H, H + X)), b.param("w", H)
    s = b.let("s", dot(w, h))
    b.let("h", tanh(W @ concat(h, x) + s))
    first = b.cell()
    b = CellBuilder("scalar_gate")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, w = b.param("W", (H, H + X)), b.param("w", X)
    b.let("h", sigmoid(dot(w, x)) * tanh(W @ concat(h, x)))
    return [first, b.cell()]


@pytest.mark.parametrize("cell", scalar_broadcast_cells(), ids=lambda c: c.name)
def test_a_scalar_broadcast_over_a_vector_gets_the_sum_back(cell):
    assert all(r.ok for r in finite_differences(cell))
    assert all(r.ok for r in sympy_exact(cell))


def _broken_lstm_adjoint():
    """The LSTM's adjoint with one classic slip: the cell state's carry multiplied by i_t, not f_t."""
    adj = derive(lstm())
    k = adj.names.index(adj.carries["C"])
    adj.equations[k] = Equation(adj.equations[k].lhs, NODES["Hadamard"](AdjointVar(Role.BAR, "C"), Var("i")))
    return adj


def test_a_wrong_adjoint_fails_finite_differences():
    rows = {r.name: r for r in finite_differences(lstm(), adjoint=_broken_lstm_adjoint())}
    assert not rows["C"].ok and not rows["W_f"].ok
    assert rows["C"].max_rel > 1e-2


def test_a_wrong_adjoint_fails_the_exact_check():
    rows = {r.name: r for r in sympy_exact(lstm(), T=2, adjoint=_broken_lstm_adjoint(), names=["C"])}
    assert not rows["C"].ok and rows["C"].failed == 2


def test_check_json_proves_a_scalar_parameter_exactly():
    import json

    from tests.conftest import run_cli

    report = json.loads(run_cli("check", "tests/hostile_cells.py:scalar_cell", "--json").stdout)
    rows = [r for r in report["rows"] if r["name"] == "beta"]
    assert report["ok"] is True and {r["method"] for r in rows} == {"finite differences", "sympy"}
    assert all(r["entries"] == 1 for r in rows)
