"""Slip diagnosis: the lecture's three wrong values explained by the catalogue on its own, and every kind of
slip in the catalogue planted in a random example and found again."""

import numpy as np
import pytest

from gategraph.cells import gru, lstm
from gategraph.derive import derive
from gategraph.homework import LECTURE_GIVEN, LECTURE_VALUES, lecture_lstm
from gategraph.renderers.diagnosis import diagnosis_lines, sentence
from gategraph.slips import CATALOGUE, diagnose, run, slips_of
from gategraph.worked import Claim, evaluate, random_values


@pytest.fixture(scope="module")
def lecture():
    ev = lecture_lstm()
    return ev, {d.verdict.claim.key: d for d in diagnose(ev)}


def _said(ev, explanation):
    return [sentence(ev.cell, s) for s in explanation.slips]


def test_the_lectures_product_is_an_entry_slip(lecture):
    ev, found = lecture
    d = found["C_tilde", "x"]
    assert [_said(ev, e) for e in d.singles] == [["took entry 2 of x_t with the wrong sign in W_C[x] · x_t in C̃_t"]]
    np.testing.assert_allclose(d.singles[0].value, [10, 10])
    np.testing.assert_allclose(d.computed, [8, 8])


def test_the_lectures_output_gate_is_not_sigma_of_one(lecture):
    ev, found = lecture
    d = found["o", None]
    np.testing.assert_allclose(d.computed, [0.7310586] * 2, rtol=1e-6)  # σ(1)
    said = [_said(ev, e) for e in d.singles]
    assert ["left out the term W_o[x] · x_t in o_t"] in said  # σ(2) ≈ 0.881 rounds to 0.9
    assert d.fewest == 1


def test_the_lectures_hidden_state_needs_two_slips(lecture):
    ev, found = lecture
    d = found["h", None]
    assert d.singles == [] and d.fewest == 2
    pairs = [_said(ev, e) for e in d.pairs]
    assert ["left out the term W_o[x] · x_t in o_t", "dropped the tanh in h_t"] in pairs
    assert all("dropped the tanh in h_t" in p for p in pairs)
    (carried,) = d.carried  # o_t as the slide wrote it, and the tanh dropped: exactly 0.9
    assert carried.carried == ("o",) and _said(ev, carried) == ["dropped the tanh in h_t"]
    np.testing.assert_allclose(carried.value, [0.9, 0.9])
    lines = diagnosis_lines(ev, d)
    assert lines[0] == "no single slip reproduces it; two slips together do:"


def test_a_value_no_slip_explains_is_said_so():
    ev = evaluate(lstm(), LECTURE_VALUES, given=LECTURE_GIVEN, claims=[Claim("o", (0.123, 0.456))])
    (d,) = diagnose(ev)
    assert d.fewest is None
    assert diagnosis_lines(ev, d) == ["no slip in the catalogue reproduces it, alone or in pairs"]


def _key(s):
    return s.kind, s.equation, s.path, s.says, tuple(map(str, s.names))


NOT_IN = {  # (step, cell) -> the kinds of slip it has no place for, and why
    ("forward", "lstm"): {"dropped-derivative"},  # only the adjoint writes a derivative
    ("forward", "gru"): {"dropped-derivative", "other-step"},  # the GRU reads no state after it writes it
    ("backward", "lstm"): {"wrong-block"},  # Wᵀ · ā has one operand
    ("backward", "gru"): {"wrong-block",  # and its adjoint has no σ or tanh: 1 - n² stands for tanh′
                          "dropped-nonlinearity", "swapped-nonlinearity"},
}


@pytest.mark.parametrize("kind", [k.key for k in CATALOGUE])
@pytest.mark.parametrize("make", [lstm, gru], ids=["lstm", "gru"])
@pytest.mark.parametrize("step", ["forward", "backward"])
def test_each_slip_planted_is_found(kind, make, step):
    """Forward in the cell; backward in the adjoint's equations of the program that joins the two."""
    forward = {eq.name for eq in make().equations}
    cell = make() if step == "forward" else derive(make()).program()
    planted = 0
    for seed in range(6):
        values = random_values(cell, {"X": 2, "H": 2}, seed)
        ev = evaluate(cell, values, exact=False)
        here = [s for s in slips_of(ev) if s.kind == kind and (step == "forward") == (s.equation in forward)]
        if kind in NOT_IN[step, make.__name__]:
            assert here == [], sentence(cell, here[0])
            return
        for slip in here:
            wrong = run(ev, [slip])[slip.equation]
            if np.max(np.abs(wrong - ev[slip.equation])) < 0.01:
                continue  # this slip changes nothing visible here
            claim = Claim(slip.equation, tuple(np.round(wrong, 3).tolist()))  # a vector, or a gradient matrix
            checked = evaluate(cell, values, claims=[claim], exact=False)
            if checked.verdicts[0].holds:
                continue  # written with so few digits that the right value rounds to it too
            (d,) = diagnose(checked)
            assert _key(slip) in [_key(e.slips[0]) for e in d.singles], sentence(cell, slip)
            planted += 1
            if planted == 3:
                return
    assert planted, f"no {kind} slip could be planted"
