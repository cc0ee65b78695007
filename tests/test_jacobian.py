"""Vanishing gradients: the step Jacobians, symbolically and in numbers."""

import numpy as np
import pytest

from gategraph.cells import attention, gru, lstm, rnn
from gategraph.check import random_problem
from gategraph.derive import derive
from gategraph.errors import UsageError
from gategraph.jacobian import jacobian_norms, step_jacobian
from gategraph.reference import forward
from gategraph.renderers.derivation import align, jacobian_rows


def test_rnn_step_jacobian_is_diag_tanh_prime_times_the_recurrent_weights():
    assert align(jacobian_rows(derive(rnn()), "h", "text"), "text").splitlines() == [
        "∂h_t/∂h_{t-1} = diag(1 - h_t²) W[:, 1:H]",
        "∂h_t/∂h_{t-k} = Π_{j=0..k-1} diag(1 - h_{t-j}²) W[:, 1:H]",
    ]


def test_lstm_cell_state_along_its_own_path_is_a_product_of_forget_gates():
    assert align(jacobian_rows(derive(lstm()), "C", "text"), "text").splitlines() == [
        "∂C_t/∂C_{t-1} (h_{t-1} fixed) = diag(f_t)",
        " ∂C_t/∂C_{t-k} (along C only) = Π_{j=0..k-1} diag(f_{t-j})",
    ]


def test_gru_has_a_direct_path_through_one_minus_z():
    terms = step_jacobian(derive(gru()), "h").terms
    assert any(len(t) == 1 and str(t[0].expr) == "Minus(1, z)" for t in terms)


def _run(cell, k, seed):
    """The run `jacobian_norms` measures, rebuilt by hand: the same problem, the same parameter draws."""
    p = random_problem(cell, {"X": 4, "H": 8}, T=k, seed=seed)
    rng = np.random.default_rng(seed)
    params = {n: rng.uniform(-1 / np.sqrt(8), 1 / np.sqrt(8), size=v.shape) for n, v in p.params.items()}
    return params, forward(cell, params, p.inputs, p.state0).steps


def test_rnn_norms_are_the_norms_of_the_symbolic_product():
    rows = jacobian_norms(rnn(), 3, seed=3)
    params, steps = _run(rnn(), 3, seed=3)
    J = np.eye(8)
    for k, env in enumerate(steps):
        J = np.diag(1 - env["h"] ** 2) @ params["W"][:, :8] @ J
        assert rows[k].norms["h"] == pytest.approx(np.linalg.norm(J, 2), rel=1e-10)
        assert rows[k].own["h"] == pytest.approx(rows[k].norms["h"], rel=1e-10)  # one state: one path


def test_lstm_cell_state_own_path_is_the_forget_gate_product_and_all_paths_differ():
    rows = jacobian_norms(lstm(), 3, seed=3)
    _, steps = _run(lstm(), 3, seed=3)
    f = np.ones(8)
    for k, env in enumerate(steps):
        f = f * env["f"]
        assert rows[k].own["C"] == pytest.approx(np.max(np.abs(f)), rel=1e-10)
    assert rows[0].norms["C"] == pytest.approx(rows[0].own["C"], rel=1e-10)  # one step: h_0 is held fixed
    assert abs(rows[2].norms["C"] - rows[2].own["C"]) > 1e-3  # later, C also comes back through h


def test_a_stateless_cell_has_no_jacobian_through_time():
    with pytest.raises(UsageError, match="not a carried state"):
        step_jacobian(derive(attention("dot")), "c")


def _as_matrix(J, env, H):
    """The step Jacobian's terms evaluated on one step's values: the sum of the products of their factors."""
    import sympy as sp

    from gategraph.numeric import value_of

    def value(e):
        return np.asarray(value_of(e, env), float)

    total = np.zeros((H, H))
    for term in J.terms:
        M = np.eye(H)
        for f in term:
            if f.kind == "diag":
                F = np.diag(np.broadcast_to(value(f.expr), (H,)))
            elif f.kind == "scalar":
                F = value(f.expr)
            elif f.kind in ("column", "row"):
                v = np.ones(H) if f.expr is None else value(f.expr)
                F = v[:, None] if f.kind == "column" else v[None, :]
            else:
                assert f.kind == "matrix", f
                F = value(f.expr)
                if f.start is not None:
                    start, stop = (sp.sympify(b) for b in (f.start, f.stop))
                    sizes = {s: H for s in start.free_symbols | stop.free_symbols if s.name == "H"}
                    F = F[:, int(start.subs(sizes)):int(stop.subs(sizes))]
            M = M @ F if np.ndim(F) else M * F
        total += M
    return total


@pytest.mark.parametrize("make, state", [("dot_gate", "h"), ("softmax_mix", "h"), ("lstm", "h"), ("lstm", "C"),
                                         ("gru", "h"), ("peephole_lstm", "C"), ("gru_reset_after", "h")])
def test_the_written_step_jacobian_is_the_true_one(make, state):
    """The written ∂s_t/∂s_{t-1} (a rank-one term uᵀ for a scalar gate from a dot, −a aᵀ for a softmax) is
    the matrix of central differences of one step, the other states held fixed."""
    from gategraph.cells import CELLS
    from tests import user_cells

    cell = getattr(user_cells, make)() if hasattr(user_cells, make) else CELLS[make]()
    J = step_jacobian(derive(cell), state)
    p = random_problem(cell, {"X": 3, "H": 5}, T=1, seed=2)
    params = {n: 0.8 * v for n, v in p.params.items()}
    env = forward(cell, params, p.inputs, p.state0).steps[0]
    numeric = np.zeros((5, 5))
    for j in range(5):
        e = np.eye(5)[j] * 1e-6
        up = forward(cell, params, p.inputs, {**p.state0, state: p.state0[state] + e}).steps[0][state]
        down = forward(cell, params, p.inputs, {**p.state0, state: p.state0[state] - e}).steps[0][state]
        numeric[:, j] = (up - down) / 2e-6
    assert np.abs(numeric).max() > 1e-2
    np.testing.assert_allclose(_as_matrix(J, env, 5), numeric, atol=1e-8)


def test_the_scalar_gate_is_written_as_a_column_times_a_row():
    from tests.user_cells import dot_gate, softmax_mix

    assert align(jacobian_rows(derive(dot_gate()), "h", "text"), "text").splitlines()[:2] == [
        "∂h_t/∂h_{t-1} = tanh(W · [h_{t-1}, x_t] + c) (g_t ⊙ (1 - g_t)) uᵀ",
        "                + diag(g_t ⊙ (1 - tanh²(W · [h_{t-1}, x_t] + c))) W[:, 1:H]",
    ]
    softmax = align(jacobian_rows(derive(softmax_mix()), "h", "text"), "text").splitlines()
    assert softmax[1] == "                - diag(tanh(W · [h_{t-1}, x_t] + c)) a_t a_tᵀ W_a[:, 1:H]"


def test_a_recurrence_through_a_matrix_of_scores_is_refused_in_one_line():
    from tests.user_cells import self_attending

    with pytest.raises(UsageError, match="cannot write the Jacobian through ColSum as a product of matrices"):
        step_jacobian(derive(self_attending()), "h")
