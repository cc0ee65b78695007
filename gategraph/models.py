"""Sequence models from compiled cells: recurrent layers (stacked, bidirectional), an output layer, a loss.

Every gradient through a recurrent layer comes from its kernel's derived BPTT (gategraph.kernel); the glue
here — reversing a sequence, concatenating the two directions, the output layer, the loss — is NumPy, and
each piece states the equation of its gradient. The tests check the whole model by finite differences.

Shapes are time-major: x (T, B, X). Parameter names carry their place: `l0.fwd.W_f`, `l1.bwd.b_i`,
`out.W`, `out.b`.

Imports: numpy, gategraph.kernel, gategraph.ops, gategraph.spec, gategraph.errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gategraph.errors import SpecError, ValueInputError
from gategraph.kernel import compile
from gategraph.ops import op_of
from gategraph.spec import Cell

STRUCTURES = ("many-to-one", "many-to-many", "one-to-many")
LOSSES = ("xent", "mse")


class Recurrent:
    """`layers` layers of one cell. Layer l's outputs are layer l+1's inputs; with `bidirectional`, each
    layer runs forward and backward in time and its output is [h→_t, h←_t] (2H per step)."""

    def __init__(self, cell: Cell, input_size: int, hidden_size: int, layers: int = 1, bidirectional: bool = False,
                 dtype: str = "float32"):
        if layers < 1:
            raise SpecError(f"layers must be at least 1, got {layers}")
        self.cell, self.hidden_size, self.dtype = cell, hidden_size, dtype
        self.directions = ("fwd", "bwd") if bidirectional else ("fwd",)
        self.width = hidden_size * len(self.directions)
        self.kernels = []
        for layer in range(layers):
            size = input_size if layer == 0 else self.width
            self.kernels.append({d: compile(cell, size, hidden_size, dtype) for d in self.directions})

    def init(self, seed: int = 0) -> dict:
        params = {}
        for layer, ks in enumerate(self.kernels):
            for k, (d, kernel) in enumerate(ks.items()):
                params.update({f"l{layer}.{d}.{n}": v for n, v in kernel.init(seed * 1000 + 10 * layer + k).items()})
        return params

    def layer_params(self, params: dict, layer: int = 0, direction: str = "fwd") -> dict:
        """The parameters of one layer's kernel (`l0.fwd.W_f` -> `W_f`), as `self.kernels[layer][direction]`
        takes them."""
        if not 0 <= layer < len(self.kernels) or direction not in self.directions:
            raise SpecError(f"no layer {layer} {direction}: the model has {len(self.kernels)} layer(s), "
                            f"directions {', '.join(self.directions)}")
        prefix = f"l{layer}.{direction}."
        return {n[len(prefix):]: v for n, v in params.items() if n.startswith(prefix)}

    def forward(self, params: dict, x: np.ndarray) -> tuple[np.ndarray, list]:
        """outputs (T, B, width) of the last layer, and what `backward` needs."""
        cache = []
        for layer, ks in enumerate(self.kernels):
            outs, saved = [], {}
            for d, kernel in ks.items():
                xin = x if d == "fwd" else np.ascontiguousarray(x[::-1])  # h←_t reads x_T .. x_t
                out, _, tape = kernel.forward(self.layer_params(params, layer, d), xin)
                saved[d] = (xin, tape)
                outs.append(out if d == "fwd" else out[::-1])
            cache.append(saved)
            x = np.ascontiguousarray(np.concatenate(outs, axis=2)) if len(outs) > 1 else outs[0]
        return x, cache

    def backward(self, params: dict, cache: list, d_out: np.ndarray,
                 input_grads: bool = True) -> tuple[dict, np.ndarray | None]:
        """∂L/∂(every parameter) and ∂L/∂x, from ∂L/∂(outputs of the last layer). With `input_grads=False`
        (x is data: tokens, measurements) the first layer does not make ∂L/∂x, and None comes back for it."""
        grads, H = {}, self.hidden_size
        for layer in reversed(range(len(self.kernels))):
            d_in, wanted = None, input_grads or layer > 0
            for k, (d, kernel) in enumerate(self.kernels[layer].items()):
                part = d_out[:, :, k * H:(k + 1) * H]
                part = np.ascontiguousarray(part if d == "fwd" else part[::-1])
                xin, tape = cache[layer][d]
                g = kernel.backward(self.layer_params(params, layer, d), xin, part, tape=tape, input_grads=wanted)
                if wanted:
                    dx = g.pop("x")
                    dx = dx if d == "fwd" else dx[::-1]
                    d_in = dx if d_in is None else d_in + dx
                for st in kernel.states:
                    g.pop(st.name)  # initial states are zeros here, not parameters
                grads.update({f"l{layer}.{d}.{n}": v for n, v in g.items()})
            d_out = np.ascontiguousarray(d_in) if wanted else None
        return grads, d_out


@dataclass
class Linear:
    """y = W h + b on the last axis; ∂L/∂W = Σ ȳ hᵀ, ∂L/∂b = Σ ȳ, ∂L/∂h = Wᵀ ȳ."""

    name: str = "out"

    def init(self, n_in: int, n_out: int, seed: int, dtype) -> dict:
        k = 1 / math.sqrt(n_in)
        rng = np.random.default_rng(seed)
        return {f"{self.name}.W": rng.uniform(-k, k, (n_out, n_in)).astype(dtype),
                f"{self.name}.b": np.zeros(n_out, dtype)}

    def forward(self, params: dict, h: np.ndarray) -> np.ndarray:
        return h @ params[f"{self.name}.W"].T + params[f"{self.name}.b"]

    def backward(self, params: dict, h: np.ndarray, dy: np.ndarray) -> tuple[dict, np.ndarray]:
        return self.param_grads(h, dy), self.input_grad(params, dy)

    def param_grads(self, h: np.ndarray, dy: np.ndarray) -> dict:
        """∂L/∂W = Σ ȳ hᵀ, ∂L/∂b = Σ ȳ over every row of h and dy."""
        flat_h, flat_dy = h.reshape(-1, h.shape[-1]), dy.reshape(-1, dy.shape[-1])
        return {f"{self.name}.W": flat_dy.T @ flat_h, f"{self.name}.b": flat_dy.sum(axis=0)}

    def step_grads(self, h: np.ndarray, dy: np.ndarray) -> dict:
        """`param_grads` of each step t of h, dy (T, B, ...) apart, stacked (T, ...): ∂L/∂W_t = Σ_b ȳ_tb h_tbᵀ,
        ∂L/∂b_t = Σ_b ȳ_tb. One NumPy call for all steps: for each step NumPy makes the same BLAS call and the
        same sum as `param_grads` on that step alone, so the numbers are the same bit for bit (with a BLAS whose
        results do not depend on where the arrays lie in memory, as OpenBLAS's do not)."""
        return {f"{self.name}.W": np.matmul(dy.transpose(0, 2, 1), h), f"{self.name}.b": dy.sum(axis=1)}

    def input_grad(self, params: dict, dy: np.ndarray) -> np.ndarray:
        """∂L/∂h = Wᵀ ȳ."""
        return dy @ params[f"{self.name}.W"]


def softmax_xent(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """L = -(1/N) Σ_n mask_n log softmax(z_n)[y_n], N = Σ mask;  ∂L/∂z_n = mask_n (softmax(z_n) - onehot(y_n)) / N."""
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    mask = np.ones(labels.shape, logits.dtype) if mask is None else mask.astype(logits.dtype)
    n = max(float(mask.sum()), 1.0)
    picked = np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    loss = -float((picked * mask).sum()) / n
    grad = np.exp(logp)
    np.put_along_axis(grad, labels[..., None], np.take_along_axis(grad, labels[..., None], axis=-1) - 1, axis=-1)
    return loss, (grad * (mask / n)[..., None]).astype(logits.dtype)


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """L = (1/N) Σ (p - y)²;  ∂L/∂p = 2 (p - y) / N."""
    diff = pred - target
    with np.errstate(over="ignore"):  # a diverging model: the caller reports the inf
        return float((diff**2).mean()), (2 * diff / diff.size).astype(pred.dtype)


class SequenceModel:
    """A recurrent encoder (any cell; stacked, bidirectional) and an output layer, trained end to end.

    structure "many-to-one": one output per sequence, read from the last step (from both ends when
    bidirectional: [h→_T, h←_1]); "many-to-many": one output per step; "one-to-many": one input (B, X),
    read at the first step (the later steps read zeros), one output per step. loss "xent" (labels, integer;
    a mask may drop padded steps) or "mse" (targets of the output's shape)."""

    def __init__(self, cell: Cell, input_size: int, hidden_size: int, output_size: int, structure="many-to-one",
                 loss="xent", layers=1, bidirectional=False, dtype="float32"):
        if structure not in STRUCTURES:
            raise SpecError(f"structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
        if loss not in LOSSES:
            raise SpecError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.structure, self.loss_name, self.dtype = structure, loss, np.dtype(dtype)
        self.rnn = Recurrent(cell, input_size, hidden_size, layers, bidirectional, dtype)
        self.head = Linear("out")
        self.output_size = output_size

    def init(self, seed: int = 0) -> dict:
        return {**self.rnn.init(seed), **self.head.init(self.rnn.width, self.output_size, seed + 7, self.dtype)}

    def input_sequence(self, x: np.ndarray, length: int | None = None) -> np.ndarray:
        """The input sequence: x itself, or for one-to-many [x, 0, 0, ...] over `length` steps."""
        if self.structure != "one-to-many":
            return x
        if x.ndim != 2 or not length:
            raise ValueInputError(f"a one-to-many model reads one input (B, X) and needs the output length; "
                                  f"got shape {x.shape}, length {length}")
        xs = np.zeros((length,) + x.shape, self.dtype)
        xs[0] = x
        return xs

    def gate_values(self, params: dict, x: np.ndarray, length: int | None = None) -> dict:
        """The first layer's gates (its σ equations: f, i, o for the LSTM) over the sequences x, each (T, B, H);
        empty for a cell without gates."""
        kernel = self.rnn.kernels[0]["fwd"]
        names = [eq.name for eq in kernel.cell.equations if getattr(op_of(eq.rhs), "name", None) == "Sigmoid"]
        if not names:
            return {}
        xs = np.ascontiguousarray(self.input_sequence(x, length), self.dtype)
        _, _, tape = kernel.forward(self.rnn.layer_params(params), xs)
        return {n: kernel.values(tape, n) for n in names}

    def _features(self, outputs: np.ndarray) -> np.ndarray:
        if self.structure != "many-to-one":
            return outputs
        H = self.rnn.hidden_size
        if len(self.rnn.directions) == 1:
            return outputs[-1]
        return np.concatenate([outputs[-1, :, :H], outputs[0, :, H:]], axis=1)

    def _d_outputs(self, d_feat: np.ndarray, shape: tuple) -> np.ndarray:
        if self.structure != "many-to-one":
            return d_feat
        d = np.zeros(shape, self.dtype)
        H = self.rnn.hidden_size
        if len(self.rnn.directions) == 1:
            d[-1] = d_feat
        else:
            d[-1, :, :H], d[0, :, H:] = d_feat[:, :H], d_feat[:, H:]
        return d

    def predict(self, params: dict, x: np.ndarray, length: int | None = None) -> np.ndarray:
        """Logits (or predictions, for "mse"): (B, K) many-to-one, (T, B, K) many-to-many and one-to-many
        (`length` steps)."""
        outputs, _ = self.rnn.forward(params, self.input_sequence(x, length))
        return self.head.forward(params, self._features(outputs))

    def loss_and_grads(self, params: dict, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None):
        """(loss, ∂loss/∂ every parameter, the model's predictions)."""
        outputs, cache = self.rnn.forward(params, self.input_sequence(x, y.shape[0]))
        feat = self._features(outputs)
        pred = self.head.forward(params, feat)
        if self.loss_name == "xent":
            loss, d_pred = softmax_xent(pred, y, mask)
        else:
            if mask is not None:
                raise ValueInputError("a mask goes with the cross-entropy loss only")
            loss, d_pred = mse(pred, y.astype(self.dtype))
        if not math.isfinite(loss):
            raise ValueInputError(f"the loss is {loss}: the model diverged")
        g_head, d_feat = self.head.backward(params, feat, d_pred)
        g_rnn, _ = self.rnn.backward(params, cache, self._d_outputs(d_feat.astype(self.dtype), outputs.shape),
                                     input_grads=False)
        return loss, {**g_rnn, **{k: v.astype(self.dtype) for k, v in g_head.items()}}, pred
