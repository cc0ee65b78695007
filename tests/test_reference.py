"""The reference BPTT: forward runs agree with worked examples, shapes and errors are as documented."""

import numpy as np
import pytest

from gategraph.cells import attention, lstm
from gategraph.check import random_problem
from gategraph.derive import derive
from gategraph.errors import ValueInputError
from gategraph.reference import backward, forward
from gategraph.worked import evaluate


def test_each_step_of_a_run_is_the_worked_example_of_that_step():
    p = random_problem(lstm(), T=3, seed=2)
    run = forward(p.cell, p.params, p.inputs, p.state0)
    h, C = p.state0["h"], p.state0["C"]
    for t in range(3):
        ev = evaluate(p.cell, {**p.params, "x": p.inputs["x"][t], "h": h, "C": C}, exact=False)
        np.testing.assert_allclose(run.steps[t]["h"], ev["h"], rtol=1e-14)
        h, C = ev["h"], ev["C"]
    np.testing.assert_allclose(run.final["C"], C, rtol=1e-14)
    assert run.outputs["h"].shape == (3, 3)


def test_gradients_have_the_shapes_of_what_they_differentiate():
    p = random_problem(lstm(), T=5, seed=0)
    grads = p.gradient()
    assert grads["x"].shape == (5, 2) and grads["W_f"].shape == (3, 5) and grads["C"].shape == (3,)


def test_memories_get_one_gradient_summed_over_steps():
    p = random_problem(attention("general"), T=4, seed=1)
    grads = p.gradient()
    assert grads["M"].shape == p.inputs["M"].shape and grads["q"].shape == (4, 3)


def test_zero_initial_states_by_default_and_no_gradient_without_loss():
    p = random_problem(lstm(), T=2)
    run = forward(p.cell, p.params, p.inputs)
    assert np.all(run.steps[0]["C_prev"] == 0)
    grads = backward(derive(p.cell), run, {})
    assert all(np.all(g == 0) for g in grads.values())


def test_bad_inputs_are_named():
    p = random_problem(lstm(), T=2)
    with pytest.raises(ValueInputError, match=r"cell 'lstm' needs values for W_o"):
        forward(p.cell, {k: v for k, v in p.params.items() if k != "W_o"}, p.inputs)
    with pytest.raises(ValueInputError, match=r"value for 'x' has shape \(4,\), expected \(X,\) = \(2,\)"):
        forward(p.cell, p.params, {"x": np.zeros((2, 4))})
