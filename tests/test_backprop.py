"""The backward pass worked with numbers: its gradients are the compiled kernels' float64 gradients and
central finite differences on the same inputs, for every built-in cell; exact where it can be."""

import numpy as np
import pytest
import sympy as sp

from gategraph.backprop import backward_example, random_inputs
from gategraph.cells import CELLS, lstm
from gategraph.errors import UsageError, ValueInputError
from gategraph.homework import LECTURE_BACKWARD_VALUES, lecture_lstm
from gategraph.kernel import compile
from gategraph.numeric import to_float
from gategraph.reference import forward
from gategraph.renderers.diagnosis import notes
from gategraph.renderers.walkthrough import backward_blocks, backward_walkthrough, walkthrough
from gategraph.slips import diagnose
from gategraph.worked import random_values
from tests.test_latex_compiles import _pdflatex, needs_tex

STEPS = 3


def _example(name, seed=1):
    cell = CELLS[name]()
    values = random_values(cell, {}, seed)
    inputs = random_inputs(cell, values, {}, seed, STEPS)
    target = np.full(np.shape(values[cell.outputs[0]]) if cell.outputs[0] in values else (2,), 0.5)
    return cell, values, inputs, backward_example(cell, values, STEPS, inputs, target=target, exact=False)


def _loss(cell, values, inputs, params, target):
    fixed = {d.name: np.asarray(values[d.name], dtype=float) for d in cell.by_role("memory")}
    state0 = {st.name: np.asarray(values[st.name], dtype=float) for st in cell.states}
    trace = forward(cell, params, {**{k: np.asarray(v, dtype=float) for k, v in inputs.items()}, **fixed}, state0)
    y = trace.steps[-1][cell.outputs[0]]
    return 0.5 * float(np.sum((y - target) ** 2))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_backward_numbers_are_the_kernels_and_finite_differences(name):
    cell, values, inputs, ex = _example(name)
    sizes = dict(ex.trace.sizes)
    X, H = sizes.pop("X", None), sizes.pop("H")
    k = compile(cell, X, H, "float64", **{s: n for s, n in sizes.items() if s != "S"})
    params = {p.name: np.asarray(values[p.name], dtype=float) for p in cell.params}
    per_step = {n: np.asarray(v, dtype=float)[:, None] for n, v in inputs.items()}
    x = per_step if len(per_step) > 1 else next(iter(per_step.values()))
    memory = {d.name: np.asarray(values[d.name], dtype=float)[None] for d in cell.by_role("memory")}
    state0 = {st.name: np.asarray(values[st.name], dtype=float)[None] for st in cell.states}
    seeds = np.zeros((STEPS, 1) + np.shape(ex.seed))
    seeds[-1, 0] = to_float(ex.seed)
    grads = k.backward(params, x, {cell.outputs[0]: seeds}, state0=state0, memory=memory)
    target = np.asarray(ex.target, dtype=float)
    for p in cell.params:
        ours = to_float(ex.grads[p.name])
        np.testing.assert_allclose(ours, grads[p.name], rtol=1e-9, atol=1e-12, err_msg=p.name)
        fd = np.zeros_like(ours)
        for i in np.ndindex(ours.shape):
            up, down = dict(params), dict(params)
            up[p.name], down[p.name] = params[p.name].copy(), params[p.name].copy()
            up[p.name][i] += 1e-6
            down[p.name][i] -= 1e-6
            fd[i] = (_loss(cell, values, inputs, up, target) - _loss(cell, values, inputs, down, target)) / 2e-6
        np.testing.assert_allclose(ours, fd, rtol=1e-5, atol=1e-8, err_msg=p.name)


def test_one_step_is_exact_and_agrees_with_floats():
    cell = lstm()
    exact = backward_example(cell, LECTURE_BACKWARD_VALUES, target=[0, 1])
    floats = backward_example(cell, LECTURE_BACKWARD_VALUES, target=[0, 1], exact=False)
    assert isinstance(exact.grads["b_o"][0], sp.Basic) and exact.grads["b_o"][0].has(sp.tanh)
    for p in exact.grads:  # in floats σ(100) is 1, and 1 - tanh²(9) cancels: exact is the truer of the two
        np.testing.assert_allclose(to_float(exact.grads[p]), floats.grads[p], rtol=1e-7, atol=1e-40)


def test_the_walkthrough_shows_every_adjoint_and_carries_back_through_the_steps():
    cell, _, _, ex = _example("lstm")
    text = backward_walkthrough(ex, "text")
    assert text.count("  C̄_t = C̄_{t+1} ⊙ f_{t+1} + h̄_t ⊙ o_t ⊙ (1 - tanh²(C_t))") == STEPS
    assert "step 3 of 3 (the loss is here)" in text and "step 1 of 3" in text
    carried = ex.steps[1]["carry:C"]  # what step 3 sent to C_2 is what step 2 starts from
    np.testing.assert_allclose(carried, ex.steps[2]["bar:C_prev"])
    total = to_float(ex.grads["W_f"])
    shown = f"≈ {np.array2string(total[0], separator=', ', formatter={'float': lambda v: f'{v:.4g}'})}"
    assert shown.replace("[", "[[", 1)[:12] in text
    assert len(backward_blocks(ex)) == STEPS + 2  # the loss, each step, the gradients


def test_bad_backward_input_is_one_line():
    with pytest.raises(UsageError, match="--steps takes 1 to 4"):
        backward_example(lstm(), LECTURE_BACKWARD_VALUES, steps=5)
    with pytest.raises(ValueInputError, match="the target has 3 entries; the output has 2"):
        backward_example(lstm(), LECTURE_BACKWARD_VALUES, target=[0, 1, 2])


@needs_tex
def test_the_backward_walkthrough_and_the_diagnosed_slips_compile_as_latex(tmp_path):
    ex = backward_example(lstm(), LECTURE_BACKWARD_VALUES, target=[0, 1])
    ev = lecture_lstm()
    blocks = backward_walkthrough(ex, "latex").split("\n\n")
    blocks += walkthrough(ev, "latex", notes(ev, diagnose(ev), "latex")).split("\n\n")
    _pdflatex(tmp_path, blocks, "the backward pass with numbers; the lecture's slips")
