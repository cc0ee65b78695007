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


def test_lstm_cell_state_jacobian_is_a_product_of_forget_gates():
    rows = jacobian_rows(derive(lstm()), "C", "latex")
    assert rows == [(r"\frac{\partial C_t}{\partial C_{t-1}}", r"\operatorname{diag}(f_t)"),
                    (r"\frac{\partial C_t}{\partial C_{t-k}}", r"\prod_{j=0}^{k-1} \operatorname{diag}(f_{t-j})")]


def test_gru_has_a_direct_path_through_one_minus_z():
    terms = step_jacobian(derive(gru()), "h").terms
    assert any(len(t) == 1 and str(t[0].expr) == "Minus(1, z)" for t in terms)


def test_numbers_match_the_symbolic_forms_at_one_step():
    for cell, state in ((rnn(), "h"), (lstm(), "C")):
        norms = jacobian_norms(cell, 1, seed=3)
        p = random_problem(cell, {"X": 4, "H": 8}, T=1, seed=3)
        H = 8
        rng = np.random.default_rng(3)
        params = {n: rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), size=v.shape) for n, v in p.params.items()}
        env = forward(cell, params, p.inputs, p.state0).steps[0]
        if state == "h":
            J = np.diag(1 - env["h"] ** 2) @ params["W"][:, :H]
        else:
            J = np.diag(env["f"])
        assert norms[0].norms[state] == pytest.approx(np.linalg.norm(J, 2), rel=1e-10)


def test_a_stateless_cell_has_no_jacobian_through_time():
    with pytest.raises(UsageError, match="not a carried state"):
        step_jacobian(derive(attention("dot")), "c")
