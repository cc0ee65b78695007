"""Worked examples: the lecture's LSTM step computed exactly, its claims checked, bad values refused."""

import numpy as np
import pytest
import sympy as sp

from gategraph.cells import CELLS, gru, lstm
from gategraph.errors import SpecError, ValueInputError
from gategraph.homework import LECTURE_CLAIMS, LECTURE_GIVEN, LECTURE_VALUES, lecture_lstm
from gategraph.ops import sigma
from gategraph.worked import Claim, evaluate


def test_lecture_lstm_step_exactly():
    ev = lecture_lstm()
    assert list(ev["f"]) == [sigma(-100), sigma(-100)]
    assert list(ev["C_tilde"]) == [sp.tanh(9), sp.tanh(9)]
    assert list(ev["o"]) == [sigma(1), sigma(1)]
    assert ev["C"][0] == sp.Rational(7, 10) * sigma(-100) + sp.tanh(9)
    assert ev["h"][1] == sigma(1) * sp.tanh(sp.Rational(3, 10) * sigma(-100) + sp.tanh(9))
    np.testing.assert_allclose(ev.floats("h"), [0.5567699, 0.5567699], rtol=1e-6)


def test_lecture_blocks_are_the_products_the_slides_write():
    ev = lecture_lstm()
    parts = {p.operand.name: list(p.value) for s in ev.steps if s.name == "C_tilde" for p in s.parts}
    assert parts == {"h_prev": [1, 1], "x": [8, 8]}  # the slide says [10, 10]


def test_lecture_claims_that_fail_are_exactly_the_three_wrong_ones():
    ev = lecture_lstm()
    failed = [(v.claim.name, v.claim.part) for v in ev.verdicts if not v.holds]
    assert failed == [("C_tilde", "x"), ("o", None), ("h", None)]
    assert ev.verdict("o").error == pytest.approx(0.9 - 1 / (1 + np.exp(-1)))
    assert len(ev.verdicts) == len(LECTURE_CLAIMS)


def test_exact_and_float_evaluations_agree_for_every_cell():
    from gategraph.worked import random_values

    for name, make in CELLS.items():
        cell = make()
        sizes = {"X": 3, "H": 2, "S": 3, "A": 2}
        values = random_values(cell, {s.name: sizes[s.name] for s in cell.sizes}, seed=1)
        exact, floats = evaluate(cell, values), evaluate(cell, values, exact=False)
        for step in exact.steps:
            np.testing.assert_allclose(exact.floats(step.name), floats[step.name], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name}: {step.name}")


def test_float_evaluation_matches_a_hand_written_gru_step():
    rng = np.random.default_rng(3)
    x, h = rng.normal(size=3), rng.normal(size=2)
    W_z, W_r, W = (rng.normal(size=(2, 5)) for _ in range(3))
    ev = evaluate(gru(), {"x": x, "h": h, "W_z": W_z, "W_r": W_r, "W": W}, exact=False)
    s = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    z, r = s(W_z @ np.r_[h, x]), s(W_r @ np.r_[h, x])
    h_tilde = np.tanh(W @ np.r_[r * h, x])
    np.testing.assert_allclose(ev["h"], (1 - z) * h + z * h_tilde, rtol=1e-14)


def test_a_given_value_overrides_its_equation_and_its_parameters_are_not_needed():
    ev = lecture_lstm()
    assert [s.given for s in ev.steps] == [False, True, False, False, False, False]
    assert "W_i" not in ev.values and list(ev["i"]) == [1, 1]


def test_missing_value_names_what_is_needed():
    values = dict(LECTURE_VALUES)
    del values["W_o"], values["C"]
    with pytest.raises(ValueInputError, match=r"cell 'lstm' needs values for C, W_o"):
        evaluate(lstm(), values, given=LECTURE_GIVEN)


def test_wrong_shape_names_the_argument_with_expected_and_found_shape():
    values = dict(LECTURE_VALUES, b_o=[0, 0, 0])
    with pytest.raises(ValueInputError, match=r"value for 'b_o' has shape \(3,\), expected \(H,\) = \(2,\)"):
        evaluate(lstm(), values, given=LECTURE_GIVEN)
    values = dict(LECTURE_VALUES, W_f=np.zeros((2, 4)))
    with pytest.raises(ValueInputError, match=r"'W_f' has shape \(2, 4\), expected \(H, H \+ X\) = \(2, 5\)"):
        evaluate(lstm(), values, given=LECTURE_GIVEN)


def test_unknown_names_are_refused():
    with pytest.raises(ValueInputError, match=r"'W_z' is not an input, state or parameter of cell 'lstm'"):
        evaluate(lstm(), dict(LECTURE_VALUES, W_z=[1]), given=LECTURE_GIVEN)
    with pytest.raises(SpecError, match=r"cell 'lstm' has no equation 'g'"):
        evaluate(lstm(), LECTURE_VALUES, given={"g": [1, 1]})


def test_claims_are_judged_to_the_precision_written():
    assert Claim("o", (0.9,)).tolerance() == pytest.approx(0.05)
    assert Claim("o", (10,)).tolerance() == 0.5
    assert Claim("o", (0.25,)).tolerance() == pytest.approx(0.005)


def test_decimals_become_exact_rationals():
    ev = lecture_lstm()
    assert ev.values["W_f"][1, 2] == sp.Rational(1, 10)  # 0.1 as written, not the binary float
    assert ev.values["C_prev"][0] == sp.Rational(7, 10)
