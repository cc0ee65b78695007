"""Cells that exercise the ops of the registry, for the tests: one small cell per op, and one cell with every op
that a cell's forward equations can use. A new op in gategraph/ops.py is picked up by both."""

import sympy as sp

from gategraph import CellBuilder, concat, mean, sqrt, tanh
from gategraph.ops import OPS, Op

# structural ops a forward equation can use as a vector -> scalar reduction (the others are tried by the
# built-in cells, and Fill appears in the adjoints of these two)
REDUCTIONS = ("Sum", "Mean")


def forward_ops() -> list[Op]:
    return [op for op in OPS.values() if op.kind == "pointwise" or op.name in REDUCTIONS]


def _begin(name: str):
    """A cell's declarations and u = W·[h_{t-1}, x_t], v = U·[h_{t-1}, x_t], p = u ⊙ u + 1, q = v ⊙ v + 1."""
    b = CellBuilder(name)
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, U, bias = b.param("W", (H, H + X)), b.param("U", (H, H + X)), b.param("b", H)
    u = b.let("u", W @ concat(h, x))
    v = b.let("v", U @ concat(h, x))
    return b, bias, (u, v), (b.let("p", u * u + 1), b.let("q", v * v + 1))


def _applied(op: Op, vectors, positives):
    if op.name in REDUCTIONS:  # u - op(u): the reduction broadcasts back over the vector
        return vectors[0] - op.node(vectors[0])
    args = positives if op.positive else vectors
    return op.node(*args[: op.arity])


def op_cell(op: Op):
    """h_t = tanh(op(u, v) + b) with u = W·[h_{t-1}, x_t], v = U·[h_{t-1}, x_t] (u² + 1 and v² + 1 where the op
    needs positive arguments); for a reduction, h_t = tanh(u - op(u) + b)."""
    b, bias, vectors, positives = _begin(f"op_{op.name.lower()}")
    b.let("h", tanh(_applied(op, vectors, positives) + bias))
    return b.cell()


def every_op_cell():
    """h_t = tanh(Σ_op y_op / n + b), y_op = op(u, v) for every op a forward equation can use."""
    b, bias, vectors, positives = _begin("every_op")
    ys = [b.let(f"y_{op.name.lower()}", _applied(op, vectors, positives)) for op in forward_ops()]
    total = ys[0]
    for y in ys[1:]:
        total = total + y
    b.let("h", tanh(total / len(ys) + bias))
    return b.cell()


def layernorm_rnn(inline: bool = False):
    """h_t = tanh(g ⊙ (a - mean(a)) / √(var(a) + ε) + b), a = W·[h_{t-1}, x_t]: LayerNorm inside the cell, with
    the centred vector and the variance as equations of their own, or (`inline`) all in the one equation of h."""
    b = CellBuilder("layernorm_rnn")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, g, bias = b.param("W", (H, H + X)), b.param("g", H), b.param("b", H)
    a = b.let("a", W @ concat(h, x))
    if inline:
        b.let("h", tanh(g * (a - mean(a)) / sqrt(mean((a - mean(a)) * (a - mean(a))) + 1e-5) + bias))
        return b.cell()
    d = b.let("d", a - mean(a))
    var = b.let("var", mean(d * d))
    b.let("h", tanh(g * d / sqrt(var + sp.Rational(1, 10**5)) + bias))
    return b.cell()
