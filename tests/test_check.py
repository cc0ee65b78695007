"""The proofs: every cell's derived gradients against finite differences and against SymPy's own diff,
and proof that the checks can fail."""

import numpy as np
import pytest
import sympy as sp

from gategraph.cells import CELLS, lstm
from gategraph.check import (
    EXACT_SIZES,
    ScalarProgram,
    _is_zero,
    finite_differences,
    random_problem,
    symbolic_problem,
    sympy_exact,
)
from gategraph.derive import AdjointVar, Role, derive
from gategraph.ops import NODES, relu, sigma
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


@pytest.mark.parametrize("name", sorted(CELLS))
def test_sympy_derivative_of_the_expanded_loss_equals_the_adjoint_exactly(name):
    cell = CELLS[name]()
    rows = sympy_exact(cell)
    expected = {p.name for p in cell.params} | {d.name for d in cell.inputs} | {s.name for s in cell.states}
    assert {r.name for r in rows} == expected
    assert all(r.ok and r.failed == 0 for r in rows), [(r.name, r.failed) for r in rows if not r.ok]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_exact_proof_holds_at_larger_sizes(name):
    """X = 2, H = 3, S = 3, A = 3: [h_{t-1}, x_t] splits unevenly, no matrix is square by accident, and the
    loss weights are another draw (a few seconds a cell; gru_reset_after and peephole_lstm longest)."""
    rows = sympy_exact(CELLS[name](), sizes={"X": 2, "H": 3, "S": 3, "A": 3}, seed=1)
    assert all(r.ok and r.failed == 0 for r in rows), [(r.name, r.failed) for r in rows if not r.ok]


def _program(cell, adjoint=None):
    problem = symbolic_problem(random_problem(cell, EXACT_SIZES, 2, 0, exact=True))
    grads = problem.gradient(exact=True, adjoint=adjoint)
    return problem, grads, ScalarProgram(problem.loss(exact=True), [g for v in grads.values() for g in np.ravel(v)])


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_cut_program_alone_proves_every_entry_of_every_built_in_cell(name):
    """No built-in cell needs the slow written-out expansion: each entry is equal as a polynomial."""
    problem, grads, program = _program(CELLS[name]())
    unproven = [(q, idx) for q, value in problem.quantities().items() for idx in np.ndindex(value.shape)
                if program.poly(grads[q][idx]) != program.derivative(value[idx])]
    assert not unproven


def test_the_chain_rule_over_the_cut_program_is_sympys_diff_of_the_written_out_expression():
    """Nested σ, tanh, a ratio of exponentials, roots, powers (also to a power that varies), ReLU, log, |·|,
    max, min and a constant: SymPy's own diff of the whole expression, cut, is the very polynomial the chain
    rule gives; and cutting only renames."""
    x, y = sp.symbols("x y", real=True)
    s = sigma(x * y)
    loss = (s * sp.tanh(x + s) + sp.exp(2 * x) / (sp.exp(x) + sp.exp(y)) + sp.sqrt(x**2 + 1) * relu(y)
            + 1 / (x**2 + y**2 + 1) ** 2 + (y**2 + 2) ** sp.Rational(-3, 2) + sp.exp(-2 * x) * sp.tanh(-y)
            + sp.log(x**2 + 1) * sp.Abs(x * y) + sp.Max(x, y) * sp.Min(x, 2 * y) + sp.E * x + (x**2 + 1) ** sp.tanh(y))
    program = ScalarProgram(loss)
    assert program.loss.is_polynomial() and not program.loss.atoms(sp.Function)
    for leaf in (x, y):
        assert program.poly(sp.diff(loss, leaf)) == program.derivative(leaf)
        assert program.poly(sp.diff(loss, leaf)) != program.derivative({x: y, y: x}[leaf])
    point = {x: sp.Rational(3, 10), y: sp.Rational(7, 10)}
    assert abs(sp.N((program.written_out(program.loss) - loss).xreplace(point), 40)) < 1e-35


def test_the_written_out_fallback_decides_what_needs_a_relation_between_atoms():
    """Softmax weights sum to 1 only through a relation between the exponentials: the cut program cannot
    show it, the written-out expansion can; a wrong claim is refused at once."""
    x, y = sp.symbols("x y", real=True)
    p, q = sp.exp(x) / (sp.exp(x) + sp.exp(y)), sp.exp(y) / (sp.exp(x) + sp.exp(y))
    program = ScalarProgram(p + q)
    gap = program.poly(p + q) - program.poly(sp.S.One)
    assert gap and abs(program.at_random_point(gap)) < 1e-25  # not equal as polynomials, yet not refuted
    assert abs(program.at_random_point(gap + program.poly(sp.Rational(1, 10**6)))) > 1e-7
    assert _is_zero(p + q - 1)
    assert not _is_zero(p + q - 1 + sp.tanh(x) * 10**-6)


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
    rows = {r.name: r for r in sympy_exact(lstm(), T=2, adjoint=_broken_lstm_adjoint(), names=["C", "W_f"])}
    assert not rows["C"].ok and rows["C"].failed == 2
    assert not rows["W_f"].ok and rows["W_f"].failed == rows["W_f"].entries == 6


def test_a_wrong_adjoint_is_a_different_polynomial():
    problem, grads, program = _program(lstm(), _broken_lstm_adjoint())
    C = problem.state0["C"]
    assert all(program.poly(grads["C"][k]) != program.derivative(C[k]) for k in range(2))


def test_the_exact_proof_tells_its_progress_in_entries():
    seen = []
    rows = sympy_exact(CELLS["rnn"](), progress=lambda done, total, what: seen.append((done, total, what)))
    total = sum(r.entries for r in rows)
    assert seen[0][:2] == (0, total) and seen[-1][:2] == (total, total)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert {r.name for r in rows} <= {w for _, _, w in seen}

def test_check_json_proves_a_scalar_parameter_exactly():
    import json

    from tests.conftest import run_cli

    report = json.loads(run_cli("check", "tests/hostile_cells.py:scalar_cell", "--json").stdout)
    rows = [r for r in report["rows"] if r["name"] == "beta"]
    assert report["ok"] is True and {r["method"] for r in rows} == {"finite differences", "sympy"}
    assert all(r["entries"] == 1 for r in rows)
