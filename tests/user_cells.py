"""Cells the built-in set does not have, declared as a user would, for the tests of every view.

Each function returns a Cell, so the command line reaches them as `tests/user_cells.py:FUNCTION`.
"""

from gategraph import CellBuilder, concat, dot, rowplus, sigmoid, softmax, tanh


def dot_gate():
    """h_t = g_t h̃_t: one scalar gate g_t = σ(uᵀ h_{t-1}) scales the whole candidate."""
    b = CellBuilder("dot_gate", "a scalar gate from a dot product scales the candidate")
    X, H = b.sizes("X H")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    u = b.param("u", H)
    W, c = b.param("W", (H, H + X)), b.param("c", H)
    g = b.let("g", sigmoid(dot(u, h)), "scalar gate")
    b.let("h", g * tanh(W @ concat(h, x) + c), "hidden state")
    return b.cell()


def softmax_mix():
    """h_t = softmax(W_a [h_{t-1}, x_t]) ⊙ tanh(W [h_{t-1}, x_t] + c): weights over the units that sum to 1."""
    b = CellBuilder("softmax_mix", "softmax weights over the units scale the candidate")
    X, H = b.sizes("X H")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    W_a, W, c = b.param("W_a", (H, H + X)), b.param("W", (H, H + X)), b.param("c", H)
    a = b.let("a", softmax(W_a @ concat(h, x)), "weights")
    b.let("h", a * tanh(W @ concat(h, x) + c), "hidden state")
    return b.cell()


def self_attending():
    """An RNN whose state attends to a memory M with an additive score each step: the recurrence runs
    through a matrix of hidden scores, which no product of matrices over h writes."""
    b = CellBuilder("self_attending", "an RNN that attends to a memory with its previous state")
    X, H, S, A = b.sizes("X H S A")
    M = b.memory("M", (S, H), "memory")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    U_a, W_a, v_a = b.param("U_a", (A, H)), b.param("W_a", (A, H)), b.param("v_a", A)
    W, c = b.param("W", (H, H + X)), b.param("c", H)
    u = b.let("u", tanh(rowplus(M @ U_a.T, W_a @ h)), "hidden scores")
    alpha = b.let("alpha", softmax(u @ v_a), "attention weights")
    b.let("h", tanh(W @ concat(M.T @ alpha, x) + c), "hidden state")
    return b.cell()
