"""Cells whose names are spelled like the derivation's and the kernel generator's own names (tests/test_names.py).
A file of its own so that `gategraph check tests/hostile_cells.py:everything_cell` can load it."""

from gategraph import CellBuilder, concat, sigmoid, tanh


def let_cell(name: str):
    """The issue's example: a let `name` feeding h = tanh(W·z + 2·name) through two paths."""
    b = CellBuilder("let_" + name.strip("_"))
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, V = b.param("W", (H, H + X)), b.param("V", (H, H + X))
    a = b.let(name, V @ concat(h, x))
    b.let("h", tanh(W @ concat(h, x) + 2 * a) * sigmoid(a))
    return b.cell()


def pre_activation_cell(name: str):
    """The issue's own cell: a let `name` feeding h = tanh(W·z + 2·name), whose pre-activation the adjoint
    names too (ā_h; before the adjoint's variables had a role, a let a_h took the same name)."""
    b = CellBuilder("pre_" + name.strip("_"))
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, V = b.param("W", (H, H + X)), b.param("V", (H, H + X))
    a = b.let(name, V @ concat(h, x))
    b.let("h", tanh(W @ concat(h, x) + 2 * a))
    return b.cell()


def roles_cell(name: str):
    """`name` as a parameter, read through a let that the adjoint would call ā_h's sibling."""
    b = CellBuilder("param_" + name.strip("_"))
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    p = b.param(name, (H, H + X))
    y = b.let("y", p @ concat(h, x))
    b.let("h", tanh(y))
    return b.cell()


def everything_cell():
    """Every spelling at once: inputs, states, parameters and lets named as the adjoint and the kernel name
    their own variables."""
    b = CellBuilder("everything")
    X, H = b.sizes("X H")
    x, np_ = b.input("x", X), b.input("np", X)
    h, c = b.state("h", H), b.state("DT", H)
    W, fwd = b.param("W", (H, H + X)), b.param("forward", (H, H + X))
    bias, rng = b.param("bar_h", H), b.param("range", H)
    a_h = b.let("a_h", W @ concat(h, x) + bias)
    bar_x = b.let("bar_x", tanh(a_h))
    dl_h = b.let("dl_h", sigmoid(fwd @ concat(c, np_) + rng))
    carry_h = b.let("carry_h", dl_h * bar_x)
    h_init = b.let("h_init", carry_h + 2 * a_h)
    final = b.let("final_bar_h", tanh(h_init))
    z = b.let("z", final * dl_h)
    b.let("DT", dl_h * c + (1 - dl_h) * z)
    b.let("h", tanh(z + 2 * a_h) + 0.5 * c)
    return b.cell(outputs=["h", "bar_x"])


def scalar_cell():
    """A cell with a scalar parameter: h = tanh(β W·[h, x]) + β."""
    b = CellBuilder("scalar")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, beta = b.param("W", (H, H + X)), b.param("beta", ())
    b.let("h", tanh(beta * (W @ concat(h, x))) + beta)
    return b.cell()


def crowded_cell():
    """Every name the derivation would give a concatenation (z, u, s, ..., z0) is already taken."""
    b = CellBuilder("crowded")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, V = b.param("W", (H, H + X)), b.param("V", (H, H + X))
    names = ["z", "u", "s", "v", "w", "k", "g", "q", "z0", "z1"]
    value = sigmoid(W @ concat(h, x))
    for name in names:
        value = b.let(name, value * 0.9)
    b.let("h", tanh(V @ concat(value * h, x)) * value)
    return b.cell()
