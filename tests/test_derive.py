"""The derivation engine: the adjoint of every cell, printed as the textbook writes it (golden strings)."""

import sys

import pytest

from gategraph import CellBuilder, SpecError, sigmoid
from gategraph.cells import CELLS, gru, lstm, rnn
from gategraph.derive import derive
from gategraph.ops import NODES
from gategraph.renderers.derivation import (
    adjoint_equations,
    adjoint_rows,
    align,
    bptt_rows,
    derivation_steps,
    gradient_lhs,
)
from gategraph.renderers.latex import _width
from tests.conftest import ROOT

LSTM_BPTT = r"""\begin{aligned}
  \bar{h}_t &= \frac{\partial \ell_{t}}{\partial h_t} + [\bar{z}_{t+1}]_{1:H} \\
  \bar{C}_t &= \bar{C}_{t+1} \odot f_{t+1} + \bar{h}_t \odot o_t \odot (1 - \tanh^2(C_t)) \\
  \frac{\partial \mathcal{L}_{\geq t}}{\partial h_{t-1}} &= [\bar{z}_t]_{1:H} \\
  \frac{\partial \mathcal{L}_{\geq t}}{\partial C_{t-1}} &= \bar{C}_t \odot f_t \\
  z_t &= [h_{t-1}, x_t]
\end{aligned}"""


def test_lstm_bptt_recurrences_are_the_textbook_ones():
    assert align(bptt_rows(derive(lstm())), "latex") == LSTM_BPTT


def test_lstm_adjoint_step_golden():
    lines = adjoint_equations(derive(lstm())).splitlines()
    for row in [
        r"  \bar{o}_t &= \bar{h}_t \odot \tanh(C_t) \\",
        r"  \bar{a}_{o,t} &= \bar{o}_t \odot o_t \odot (1 - o_t) \\",
        r"  \bar{\tilde{C}}_t &= \bar{C}_t \odot i_t \\",
        r"  \bar{a}_{\tilde{C},t} &= \bar{\tilde{C}}_t \odot (1 - \tilde{C}_t^2) \\",
        r"  \bar{i}_t &= \bar{C}_t \odot \tilde{C}_t \\",
        r"  \bar{f}_t &= \bar{C}_t \odot C_{t-1} \\",
        r"  \bar{a}_{f,t} &= \bar{f}_t \odot f_t \odot (1 - f_t) \\",
        r"  \bar{z}_t &= W_f^\top \cdot \bar{a}_{f,t} + W_i^\top \cdot \bar{a}_{i,t} "
        r"+ W_C^\top \cdot \bar{a}_{\tilde{C},t} + W_o^\top \cdot \bar{a}_{o,t} \\",
        r"  \bar{x}_t &= [\bar{z}_t]_{H + 1:H + X} \\",
        r"  \frac{\partial \mathcal{L}}{\partial W_f} &= \sum_t \bar{a}_{f,t} [h_{t-1}, x_t]^\top \\",
        r"  \frac{\partial \mathcal{L}}{\partial b_C} &= \sum_t \bar{a}_{\tilde{C},t} \\",
    ]:
        assert row in lines, row


def test_frac_notation():
    text = adjoint_equations(derive(lstm()), "text", "frac")
    assert "∂L/∂f_t = ∂L/∂C_t ⊙ C_{t-1}" in text
    assert "∂L/∂C_t = ∂L/∂C_{t+1} ⊙ f_{t+1} + ∂L/∂h_t ⊙ o_t ⊙ (1 - tanh²(C_t))" in text


def test_rnn_adjoint_golden():
    assert adjoint_equations(derive(rnn()), "text").splitlines() == [
        "             h̄_t = ∂ℓ_t/∂h_t + z̄_{t+1}[1:H]",
        "         ā_{h,t} = h̄_t ⊙ (1 - h_t²)",
        "             z̄_t = Wᵀ · ā_{h,t}",
        "             x̄_t = z̄_t[H + 1:H + X]",
        "∂L_{≥t}/∂h_{t-1} = z̄_t[1:H]",
        "           ∂L/∂W = Σ_t ā_{h,t} [h_{t-1}, x_t]ᵀ",
        "           ∂L/∂b = Σ_t ā_{h,t}",
        "             z_t = [h_{t-1}, x_t]",
    ]


def test_gru_update_gate_and_the_direct_path_to_the_previous_state():
    text = adjoint_equations(derive(gru()), "text")
    assert "z̄_t = h̄_t ⊙ (h̃_t - h_{t-1})" in text
    assert "∂L_{≥t}/∂h_{t-1} = ū_t[1:H] + s̄_t[1:H] ⊙ r_t + h̄_t ⊙ (1 - z_t)" in text
    assert "u_t = [h_{t-1}, x_t]" in text and "s_t = [r_t ⊙ h_{t-1}, x_t]" in text  # z is the gate's name


def test_derivation_of_W_f_step_by_step():
    assert align(derivation_steps(derive(lstm()), "W_f", "text"), "text").splitlines() == [
        "∂L/∂W_f = Σ_t ∂L/∂C_t ∂C_t/∂f_t ∂f_t/∂W_f",
        "        = Σ_t ∂L/∂C_t [C_{t-1}] [(f_t ⊙ (1 - f_t)) [h_{t-1}, x_t]ᵀ]",
        "        = Σ_t (C̄_t ⊙ C_{t-1} ⊙ f_t ⊙ (1 - f_t)) [h_{t-1}, x_t]ᵀ",
        "        = Σ_t ā_{f,t} [h_{t-1}, x_t]ᵀ",
        "ā_{f,t} = f̄_t ⊙ f_t ⊙ (1 - f_t)",
        "    f̄_t = C̄_t ⊙ C_{t-1}",
        "    C̄_t = C̄_{t+1} ⊙ f_{t+1} + h̄_t ⊙ o_t ⊙ (1 - tanh²(C_t))",
    ]
    tex = align(derivation_steps(derive(lstm()), "W_f", "latex"), "latex")
    assert r"\underbrace{\frac{\partial C_t}{\partial f_t}}_{C_{t-1}}" in tex


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_derives_with_every_parameter_and_short_lines(name):
    adj = derive(CELLS[name]())
    assert set(adj.grads) == {p.name for p in adj.cell.params}
    assert all(g != 0 for g in adj.grads.values()), "every parameter receives a gradient"
    widest = max(_width(left) + _width(right) + 3 for left, right, *_ in adjoint_rows(adj, "text"))
    assert widest <= 90, f"{name}: a {widest}-column equation does not fit a slide line"
    formulas = dict((left, right) for left, right, *_ in adjoint_rows(adj, "text"))
    for param in adj.grads:  # every derivation starts at ∂L/∂θ and reaches the formula the backward pass uses
        rows = derivation_steps(adj, param, "text")
        assert rows[0][0] == gradient_lhs(param, "text")
        assert formulas[gradient_lhs(param, "text")] in [right for _, right, *_ in rows]


def test_a_user_cell_derives():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import mgu
    finally:
        sys.path.pop(0)
    text = adjoint_equations(derive(mgu.mgu()), "text")
    assert "f̄_t = " in text and "∂L/∂W_h = Σ_t ā_{h̃,t} [f_t ⊙ h_{t-1}, x_t]ᵀ" in text


def test_an_op_without_a_vjp_rule_is_a_clear_error():
    b = CellBuilder("colsum")
    S, H = b.sizes("S H")
    M, h = b.memory("M", (S, H)), b.state("h", H)
    b.let("h", sigmoid(NODES["ColSum"](M) + h))
    with pytest.raises(SpecError, match=r"equation 'h': op ColSum has no VJP rule"):
        derive(b.cell())
