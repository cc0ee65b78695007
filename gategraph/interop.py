"""Weight layouts of other frameworks <-> gategraph parameter dicts, as NumPy arrays, importing neither.

gategraph writes every gate as W_g · [h_{t-1}, x_t] + b_g: one matrix (H, H + X) over the concatenation and
one bias. PyTorch keeps an input matrix and a recurrent matrix per layer, gates stacked in its own order,
and two biases that are simply added; Keras keeps kernels transposed, gates in its own order, one bias.

    PyTorch nn.LSTM   gates i, f, g, o   weight_ih_l0 (4H, X), weight_hh_l0 (4H, H), bias_ih_l0, bias_hh_l0
    PyTorch nn.GRU    gates r, z, n      reset applied after the recurrent product: cells.gru_reset_after
    PyTorch nn.RNN    tanh               weight_ih_l0 (H, X), weight_hh_l0 (H, H), two biases
    Keras LSTM        gates i, f, c, o   kernel (X, 4H), recurrent_kernel (H, 4H), bias (4H,)

`*_from_torch` / `*_from_keras` read a state dict (name -> array); `*_to_torch` writes one (the whole bias
in bias_ih, zeros in bias_hh). `grads_to_torch` maps gategraph gradients onto PyTorch's names: each of the
two biases receives the bias's gradient, since each enters the sum once.

Imports: numpy, gategraph.errors.
"""

from __future__ import annotations

import numpy as np

from gategraph.errors import ValueInputError

# gategraph's names for each framework's gate blocks, in the framework's order
TORCH_LSTM = ("i", "f", "C", "o")  # PyTorch's i, f, g, o: g is the candidate C̃
KERAS_LSTM = ("i", "f", "C", "o")  # Keras' i, f, c, o
TORCH_GRU = ("r", "z", "n")


def _blocks(a: np.ndarray, n: int, what: str) -> list[np.ndarray]:
    a = np.asarray(a, dtype=float)
    if a.shape[0] % n:
        raise ValueInputError(f"{what} has {a.shape[0]} rows, not a multiple of {n} gates")
    return np.split(a, n, axis=0)


def _get(sd: dict, name: str, layer: int = 0) -> np.ndarray:
    key = f"{name}_l{layer}"
    if key not in sd:
        raise ValueInputError(f"the state dict has no {key!r}; it has {', '.join(sd) or 'nothing'}")
    return np.asarray(sd[key], dtype=float)


def _torch_gates(sd: dict, layer: int, n: int) -> tuple:
    """weight_ih, weight_hh, bias_ih, bias_hh of one layer, each split into its n gates' blocks."""
    return tuple(_blocks(_get(sd, name, layer), n, name) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def lstm_from_torch(sd: dict, layer: int = 0) -> dict:
    """nn.LSTM -> cells.lstm(): W_g = [W_hh_g, W_ih_g], b_g = b_ih_g + b_hh_g."""
    w_ih, w_hh, b_ih, b_hh = _torch_gates(sd, layer, 4)
    params = {}
    for k, g in enumerate(TORCH_LSTM):
        params[f"W_{g}"] = np.hstack([w_hh[k], w_ih[k]])
        params[f"b_{g}"] = b_ih[k] + b_hh[k]
    return params


def lstm_to_torch(params: dict, layer: int = 0) -> dict:
    """cells.lstm() -> nn.LSTM's state dict (NumPy arrays)."""
    H = params["b_f"].shape[0]
    return {
        f"weight_ih_l{layer}": np.vstack([params[f"W_{g}"][:, H:] for g in TORCH_LSTM]),
        f"weight_hh_l{layer}": np.vstack([params[f"W_{g}"][:, :H] for g in TORCH_LSTM]),
        f"bias_ih_l{layer}": np.concatenate([params[f"b_{g}"] for g in TORCH_LSTM]),
        f"bias_hh_l{layer}": np.zeros(4 * H),
    }


def gru_from_torch(sd: dict, layer: int = 0) -> dict:
    """nn.GRU -> cells.gru_reset_after(): W_r = [W_hr, W_ir], b_r = b_ir + b_hr (likewise z);
    W_n = W_in, b_n = b_in, U_n = W_hn, c_n = b_hn (the recurrent bias stays inside r ⊙ (...))."""
    w_ih, w_hh, b_ih, b_hh = _torch_gates(sd, layer, 3)
    r, z, n = range(3)
    return {
        "W_r": np.hstack([w_hh[r], w_ih[r]]), "b_r": b_ih[r] + b_hh[r],
        "W_z": np.hstack([w_hh[z], w_ih[z]]), "b_z": b_ih[z] + b_hh[z],
        "W_n": w_ih[n], "b_n": b_ih[n], "U_n": w_hh[n], "c_n": b_hh[n],
    }


def gru_to_torch(params: dict, layer: int = 0) -> dict:
    """cells.gru_reset_after() -> nn.GRU's state dict."""
    H = params["b_r"].shape[0]
    return {
        f"weight_ih_l{layer}": np.vstack([params["W_r"][:, H:], params["W_z"][:, H:], params["W_n"]]),
        f"weight_hh_l{layer}": np.vstack([params["W_r"][:, :H], params["W_z"][:, :H], params["U_n"]]),
        f"bias_ih_l{layer}": np.concatenate([params["b_r"], params["b_z"], params["b_n"]]),
        f"bias_hh_l{layer}": np.concatenate([np.zeros(2 * H), params["c_n"]]),
    }


def rnn_from_torch(sd: dict, layer: int = 0) -> dict:
    """nn.RNN (tanh) -> cells.rnn(): W = [W_hh, W_ih], b = b_ih + b_hh."""
    return {"W": np.hstack([_get(sd, "weight_hh", layer), _get(sd, "weight_ih", layer)]),
            "b": _get(sd, "bias_ih", layer) + _get(sd, "bias_hh", layer)}


def rnn_to_torch(params: dict, layer: int = 0) -> dict:
    H = params["b"].shape[0]
    return {f"weight_ih_l{layer}": params["W"][:, H:], f"weight_hh_l{layer}": params["W"][:, :H],
            f"bias_ih_l{layer}": params["b"], f"bias_hh_l{layer}": np.zeros(H)}


def grads_to_torch(kind: str, grads: dict, layer: int = 0) -> dict:
    """gategraph gradients -> PyTorch's parameter names. The split matrices split their gradients the same
    way; both biases of a sum b_ih + b_hh receive the sum's gradient (GRU's n-gate biases stay apart)."""
    out = {"lstm": lstm_to_torch, "gru": gru_to_torch, "rnn": rnn_to_torch}[kind](grads, layer)
    if kind == "gru":
        out[f"bias_hh_l{layer}"] = np.concatenate([grads["b_r"], grads["b_z"], grads["c_n"]])
    else:
        out[f"bias_hh_l{layer}"] = out[f"bias_ih_l{layer}"].copy()
    return out


def lstm_from_keras(kernel, recurrent_kernel, bias) -> dict:
    """Keras LSTM (kernel (X, 4H), recurrent_kernel (H, 4H), bias (4H,), gates i, f, c, o) -> cells.lstm()."""
    k, rk = np.asarray(kernel, dtype=float), np.asarray(recurrent_kernel, dtype=float)
    H = rk.shape[0]
    if k.shape[1] != 4 * H or rk.shape[1] != 4 * H or np.shape(bias) != (4 * H,):
        raise ValueInputError(f"Keras LSTM weights do not fit: kernel {k.shape}, recurrent_kernel {rk.shape}, "
                              f"bias {np.shape(bias)}; expected (X, 4H), (H, 4H), (4H,)")
    params = {}
    for j, g in enumerate(KERAS_LSTM):
        cols = slice(j * H, (j + 1) * H)
        params[f"W_{g}"] = np.hstack([rk[:, cols].T, k[:, cols].T])
        params[f"b_{g}"] = np.asarray(bias, dtype=float)[cols]
    return params


def lstm_to_keras(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cells.lstm() -> (kernel, recurrent_kernel, bias) in Keras' layout."""
    H = params["b_f"].shape[0]
    kernel = np.hstack([params[f"W_{g}"][:, H:].T for g in KERAS_LSTM])
    recurrent = np.hstack([params[f"W_{g}"][:, :H].T for g in KERAS_LSTM])
    return kernel, recurrent, np.concatenate([params[f"b_{g}"] for g in KERAS_LSTM])
