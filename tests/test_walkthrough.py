"""The worked example written out: the lecture's walkthrough in text and LaTeX."""

from gategraph.homework import lecture_lstm
from gategraph.renderers.walkthrough import number, walkthrough


def test_forget_gate_block_in_text_matches_the_slide_layout():
    text = walkthrough(lecture_lstm(), "text")
    block = text.split("\n\n")[1].splitlines()
    assert block[:7] == [
        "forget gate",
        "  f_t = σ(W_f · [h_{t-1}, x_t] + b_f)",
        "      = σ([[1, -1], [-1, 1]] · [1, 1] + [[1, 1, -100], [0.1, 0.1, -100]] · [1, -1, 1] + [0, 0])",
        "      = σ([0, 0] + [-100, -100] + [0, 0])",
        "      = σ([-100, -100])",
        "      = [σ(-100), σ(-100)]",
        "      ≈ [3.72e-44, 3.72e-44]",
    ]


def test_every_wrong_claim_is_flagged_with_the_computed_value():
    text = walkthrough(lecture_lstm(), "text")
    assert "claimed W_C[x] · x_t = [10, 10]   computed [8, 8]   ✗ does not hold (off by 2)" in text
    assert "claimed o_t ≈ [0.9, 0.9]   computed [0.7311, 0.7311]   ✗ does not hold" in text
    assert "claimed h_t ≈ [0.9, 0.9]   computed [0.5568, 0.5568]   ✗ does not hold" in text
    assert "claimed C_t = [1, 1]   computed [1, 1]   ✓ holds" in text
    assert text.rstrip().endswith("6 of 9 claimed values hold")
    assert "input gate (given)\n  i_t = [1, 1]" in text


def test_long_exact_values_switch_to_decimals_with_approx():
    lines = walkthrough(lecture_lstm(), "text").split("hidden state\n")[1].splitlines()
    assert lines[1] == "      ≈ [0.7311, 0.7311] ⊙ tanh([1, 1])"


def test_latex_walkthrough_is_balanced_and_uses_columns():
    tex = walkthrough(lecture_lstm(), "latex")
    assert tex.count("{") == tex.count("}")
    assert tex.count(r"\begin{aligned}") == tex.count(r"\end{aligned}") == 7
    assert r"f_t &= \sigma(W_f \cdot [h_{t-1}, x_t] + b_f)" in tex
    assert r"&= \sigma(\begin{bmatrix}-100 \\ -100\end{bmatrix})" in tex
    assert r"\times\ \text{does not hold (off by 2)" in tex


def test_numbers_read_as_written():
    import sympy as sp

    assert number(sp.Rational(7, 10), "text") == "0.7"
    assert number(sp.Rational(1, 3), "text") == "1/3"
    assert number(sp.Rational(1, 3), "latex") == r"\frac{1}{3}"
    assert number(3.72007598e-44, "latex") == r"3.72 \cdot 10^{-44}"
