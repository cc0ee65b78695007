"""Other frameworks' weight layouts: round trips, and agreement with PyTorch itself (forward and gradients).

PyTorch is a test extra, never a dependency; CI installs it, so these tests run there."""

import os

import numpy as np
import pytest

from gategraph import interop
from gategraph.cells import gru_reset_after, lstm, rnn
from gategraph.check import random_problem
from gategraph.derive import derive
from gategraph.errors import ValueInputError
from gategraph.reference import backward, forward

RNG = np.random.default_rng(0)
X, H, T = 3, 4, 5


def test_round_trips_through_every_layout():
    p = random_problem(lstm(), {"X": X, "H": H}).params
    back = interop.lstm_from_torch(interop.lstm_to_torch(p))
    assert set(back) == set(p) and all(np.array_equal(back[k], p[k]) for k in p)
    for name, value in interop.lstm_from_keras(*interop.lstm_to_keras(p)).items():
        np.testing.assert_array_equal(value, p[name])
    g = random_problem(gru_reset_after(), {"X": X, "H": H}).params
    assert all(np.array_equal(v, g[k]) for k, v in interop.gru_from_torch(interop.gru_to_torch(g)).items())


def test_keras_layout_means_what_keras_computes():
    """One step as Keras' LSTM computes it: z = x K + h R + b split into i, f, c, o (columns)."""
    kernel, recurrent, bias = RNG.normal(size=(X, 4 * H)), RNG.normal(size=(H, 4 * H)), RNG.normal(size=4 * H)
    x, h, C = RNG.normal(size=X), RNG.normal(size=H), RNG.normal(size=H)
    i, f, c, o = np.split(x @ kernel + h @ recurrent + bias, 4)
    sig = 1 / (1 + np.exp(-np.array([i, f, o])))
    C_new = sig[1] * C + sig[0] * np.tanh(c)
    params = interop.lstm_from_keras(kernel, recurrent, bias)
    run = forward(lstm(), params, {"x": x[None]}, {"h": h, "C": C})
    np.testing.assert_allclose(run.final["C"], C_new, rtol=1e-13)
    np.testing.assert_allclose(run.final["h"], sig[2] * np.tanh(C_new), rtol=1e-13)


def test_a_wrong_layout_is_named():
    with pytest.raises(ValueInputError, match="the state dict has no 'weight_hh_l0'"):
        interop.lstm_from_torch({"weight_ih_l0": np.zeros((8, 3))})
    with pytest.raises(ValueInputError, match="Keras LSTM weights do not fit"):
        interop.lstm_from_keras(np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(7))


torch = pytest.importorskip("torch") if not os.environ.get("CI") else __import__("torch")

CASES = {  # gategraph cell, PyTorch module, state-dict converters
    "lstm": (lstm, lambda: torch.nn.LSTM(X, H), interop.lstm_from_torch),
    "gru": (gru_reset_after, lambda: torch.nn.GRU(X, H), interop.gru_from_torch),
    "rnn": (rnn, lambda: torch.nn.RNN(X, H), interop.rnn_from_torch),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_forward_and_gradients_agree_with_pytorch(kind):
    make_cell, make_module, from_torch = CASES[kind]
    torch.manual_seed(0)
    module = make_module().double()
    x = torch.randn(T, 1, X, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 1, H, dtype=torch.float64, requires_grad=True)
    state = (h0, torch.randn(1, 1, H, dtype=torch.float64, requires_grad=True)) if kind == "lstm" else h0
    out, _ = module(x, state)
    weights = torch.randn(T, 1, H, dtype=torch.float64)
    (out * weights).sum().backward()

    cell = make_cell()
    params = from_torch({k: v.detach().numpy() for k, v in module.state_dict().items()})
    state0 = {"h": h0.detach().numpy()[0, 0]}
    if kind == "lstm":
        state0["C"] = state[1].detach().numpy()[0, 0]
    run = forward(cell, params, {"x": x.detach().numpy()[:, 0]}, state0)
    np.testing.assert_allclose(run.outputs["h"], out.detach().numpy()[:, 0], rtol=1e-12, atol=1e-14)

    grads = backward(derive(cell), run, {"h": weights.numpy()[:, 0]})
    theirs = {k: v.grad.numpy() for k, v in module.named_parameters()}
    for name, value in interop.grads_to_torch(kind, grads).items():
        np.testing.assert_allclose(value, theirs[name], rtol=1e-10, atol=1e-12, err_msg=f"{kind} {name}")
    np.testing.assert_allclose(grads["x"], x.grad.numpy()[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["h"], h0.grad.numpy()[0, 0], rtol=1e-10, atol=1e-12)
