"""Declare your own cell: the minimal gated unit (Zhou, Wu, Zhang & Zhou, 2016).

One gate f_t does the work of the GRU's two: it forgets (as the reset gate) and it updates.

    f_t = σ(W_f · [h_{t-1}, x_t] + b_f)
    h̃_t = tanh(W_h · [f_t ⊙ h_{t-1}, x_t] + b_h)
    h_t = (1 - f_t) ⊙ h_{t-1} + f_t ⊙ h̃_t

Every view of gategraph works for it, from Python or from the command line:

    gategraph equations examples/mgu.py:mgu
    gategraph graph examples/mgu.py:mgu -o mgu.png
    gategraph example examples/mgu.py:mgu

Run this file to see its equations and a worked example on small numbers.
"""

from gategraph import CellBuilder, concat, sigmoid, tanh


def mgu():
    b = CellBuilder("mgu", "minimal gated unit: one gate forgets and updates")
    X, H = b.sizes("X H")
    x, h = b.input("x", X, "input"), b.state("h", H, "hidden state")
    W_f, b_f = b.param("W_f", (H, H + X)), b.param("b_f", H)
    W_h, b_h = b.param("W_h", (H, H + X)), b.param("b_h", H)
    f = b.let("f", sigmoid(W_f @ concat(h, x) + b_f), "forget gate")
    h_tilde = b.let("h_tilde", tanh(W_h @ concat(f * h, x) + b_h), "candidate")
    b.let("h", (1 - f) * h + f * h_tilde, "hidden state")
    return b.cell()


if __name__ == "__main__":
    from gategraph.renderers.latex import equations
    from gategraph.renderers.walkthrough import walkthrough
    from gategraph.worked import evaluate

    cell = mgu()
    print(equations(cell, "text"), end="\n\n")
    values = {"x": [1, 0.5], "h": [0.2, -0.4], "W_f": [[1, 0, 0.5, 0], [0, 1, 0, 0.5]], "b_f": [0, 0],
              "W_h": [[0.5, 0.5, 1, 0], [-0.5, 0.5, 0, 1]], "b_h": [0.1, -0.1]}
    print(walkthrough(evaluate(cell, values), "text"))
