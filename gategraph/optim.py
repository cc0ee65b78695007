"""Optimizers that update a parameter dict in place: SGD with momentum, and Adam (Kingma & Ba 2015);
and the global gradient norm for clipping.

Each update is one Numba loop over a parameter's entries: at the sizes a lecture uses, a NumPy expression
per moment would cost more than the model's own forward and backward pass.

Imports: numpy, numba, gategraph.errors.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gategraph.errors import ValueInputError


@njit(cache=True, error_model="numpy", nogil=True)
def _adam(p, g, m, v, lr, b1, b2, eps, c1, c2, scale):
    """m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²;  p -= lr (m / c1) / (sqrt(v / c2) + ε)."""
    for i in range(p.size):
        gi = g[i] * scale
        m[i] = b1 * m[i] + (1.0 - b1) * gi
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi
        p[i] -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)


@njit(cache=True, error_model="numpy", nogil=True)
def _sgd(p, g, buf, lr, momentum, scale):
    """buf = μ buf + g;  p -= lr buf."""
    for i in range(p.size):
        buf[i] = momentum * buf[i] + g[i] * scale
        p[i] -= lr * buf[i]


@njit(cache=True, error_model="numpy", nogil=True)
def _sumsq(g):
    s = 0.0
    for i in range(g.size):
        s += g[i] * g[i]
    return s


def _flat(a: np.ndarray, what: str) -> np.ndarray:
    if not a.flags.c_contiguous:
        raise ValueInputError(f"{what} must be a C-contiguous array to be updated in place")
    return a.reshape(-1)


def grad_norm(grads: dict, names) -> float:
    """‖g‖ over every listed gradient together (what clipping by norm compares with its threshold)."""
    return math.sqrt(sum(_sumsq(_flat(np.ascontiguousarray(grads[n]), n)) for n in names))


def clip_scale(grads: dict, names, max_norm: float | None) -> tuple[float, float]:
    """(scale, norm): scale = min(1, max_norm / ‖g‖), to multiply every gradient by in the update."""
    norm = grad_norm(grads, names)
    if not math.isfinite(norm):
        raise ValueInputError("the gradient holds NaN or inf")
    if max_norm is None or norm <= max_norm:
        return 1.0, norm
    return max_norm / norm, norm


class Adam:
    """Adam with bias correction; `step(params, grads, scale)` updates `params` in place."""

    def __init__(self, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        self.t = 0
        self.m: dict = {}
        self.v: dict = {}

    def step(self, params: dict, grads: dict, scale: float = 1.0):
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for name, p in params.items():
            if name not in self.m:
                self.m[name], self.v[name] = np.zeros_like(p), np.zeros_like(p)
            _adam(_flat(p, name), _flat(grads[name], f"the gradient of {name}"), self.m[name].reshape(-1),
                  self.v[name].reshape(-1), self.lr, b1, b2, self.eps, c1, c2, scale)

    def state(self) -> dict:
        """Arrays and numbers to save with a checkpoint (`load` takes them back)."""
        return {"t": np.array(self.t), **{f"m/{k}": v for k, v in self.m.items()},
                **{f"v/{k}": v for k, v in self.v.items()}}

    def load(self, state: dict):
        self.t = int(state["t"])
        self.m = {k[2:]: np.array(v) for k, v in state.items() if k.startswith("m/")}
        self.v = {k[2:]: np.array(v) for k, v in state.items() if k.startswith("v/")}


class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum; momentum=0 is plain SGD."""

    def __init__(self, lr: float = 0.1, momentum: float = 0.0):
        self.lr, self.momentum = float(lr), float(momentum)
        self.buf: dict = {}

    def step(self, params: dict, grads: dict, scale: float = 1.0):
        for name, p in params.items():
            if name not in self.buf:
                self.buf[name] = np.zeros_like(p)
            _sgd(_flat(p, name), _flat(grads[name], f"the gradient of {name}"), self.buf[name].reshape(-1),
                 self.lr, self.momentum, scale)

    def state(self) -> dict:
        return {f"buf/{k}": v for k, v in self.buf.items()}

    def load(self, state: dict):
        self.buf = {k[4:]: np.array(v) for k, v in state.items() if k.startswith("buf/")}
