"""Built-in cells print in the lecture's notation: golden LaTeX and text for every one."""

import pytest

from gategraph.cells import CELLS, attention, gru
from gategraph.renderers.latex import equation, equations, symbol

GOLDEN_LATEX = {
    "rnn": [r"h_t &= \tanh(W \cdot [h_{t-1}, x_t] + b)"],
    "lstm": [
        r"f_t &= \sigma(W_f \cdot [h_{t-1}, x_t] + b_f)",
        r"i_t &= \sigma(W_i \cdot [h_{t-1}, x_t] + b_i)",
        r"\tilde{C}_t &= \tanh(W_C \cdot [h_{t-1}, x_t] + b_C)",
        r"C_t &= f_t \odot C_{t-1} + i_t \odot \tilde{C}_t",
        r"o_t &= \sigma(W_o \cdot [h_{t-1}, x_t] + b_o)",
        r"h_t &= o_t \odot \tanh(C_t)",
    ],
    "peephole_lstm": [
        r"f_t &= \sigma(W_f \cdot [h_{t-1}, x_t] + p_f \odot C_{t-1} + b_f)",
        r"i_t &= \sigma(W_i \cdot [h_{t-1}, x_t] + p_i \odot C_{t-1} + b_i)",
        r"\tilde{C}_t &= \tanh(W_C \cdot [h_{t-1}, x_t] + b_C)",
        r"C_t &= f_t \odot C_{t-1} + i_t \odot \tilde{C}_t",
        r"o_t &= \sigma(W_o \cdot [h_{t-1}, x_t] + p_o \odot C_t + b_o)",
        r"h_t &= o_t \odot \tanh(C_t)",
    ],
    "gru": [
        r"z_t &= \sigma(W_z \cdot [h_{t-1}, x_t])",
        r"r_t &= \sigma(W_r \cdot [h_{t-1}, x_t])",
        r"\tilde{h}_t &= \tanh(W \cdot [r_t \odot h_{t-1}, x_t])",
        r"h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde{h}_t",
    ],
    "gru_reset_after": [
        r"r_t &= \sigma(W_r \cdot [h_{t-1}, x_t] + b_r)",
        r"z_t &= \sigma(W_z \cdot [h_{t-1}, x_t] + b_z)",
        r"n_t &= \tanh(W_n \cdot x_t + b_n + r_t \odot (U_n \cdot h_{t-1} + c_n))",
        r"h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}",
    ],
    "attention_dot": [
        r"e_t &= M \cdot q_t",
        r"\alpha_t &= \operatorname{softmax}(e_t)",
        r"c_t &= M^\top \cdot \alpha_t",
    ],
    "attention_general": [
        r"e_t &= M \cdot W_a \cdot q_t",
        r"\alpha_t &= \operatorname{softmax}(e_t)",
        r"c_t &= M^\top \cdot \alpha_t",
    ],
    "attention_additive": [
        r"u_t &= \tanh(M \cdot U_a^\top + \mathbf{1} (W_a \cdot q_t)^\top)",
        r"e_t &= u_t \cdot v_a",
        r"\alpha_t &= \operatorname{softmax}(e_t)",
        r"c_t &= M^\top \cdot \alpha_t",
    ],
}


def test_every_builtin_cell_has_a_golden_form():
    assert set(GOLDEN_LATEX) == set(CELLS)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_golden_latex(name):
    rows = " \\\\\n".join(f"  {row}" for row in GOLDEN_LATEX[name])
    assert equations(CELLS[name]()) == "\\begin{aligned}\n" + rows + "\n\\end{aligned}"


def test_lstm_text_form_is_aligned_on_the_equals_sign():
    text = equations(CELLS["lstm"](), "text").splitlines()
    assert text[0] == "f_t = σ(W_f · [h_{t-1}, x_t] + b_f)"
    assert text[2] == "C̃_t = tanh(W_C · [h_{t-1}, x_t] + b_C)"  # the combining tilde takes no column
    assert text[3] == "C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t"
    gru_text = equations(CELLS["gru_reset_after"](), "text").splitlines()
    assert all(line[3:6] == " = " for line in gru_text)


def test_gru_biases_are_optional():
    assert equation(gru(bias=True), "h_tilde") == r"\tilde{h}_t = \tanh(W \cdot [r_t \odot h_{t-1}, x_t] + b)"
    assert "b_z" in gru(bias=True).shapes and "b_z" not in gru().shapes


def test_unknown_attention_score_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of dot, general, additive"):
        attention("cosine")


def test_symbol_notation():
    assert symbol("C_tilde", 0) == r"\tilde{C}_t"
    assert symbol("h", -1) == "h_{t-1}"
    assert symbol("W_hz") == "W_{hz}"
    assert symbol("a_f", 0) == "a_{f,t}"
    assert symbol("alpha", 0, "text") == "α_t"
