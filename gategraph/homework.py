"""The lecture's own numbers: the LSTM example of the "Forget Gate" ... "Output gate" slides.

The slides predict whether the lecturer helps with the homework at time t from x_t = [1, -1, 1]
(family, spider, 6 AM), h_{t-1} = [1, 1] and C_{t-1} = [0.7, 0.3]. They give the weights on h_{t-1}
and on x_t of each gate separately, all biases are zero, the input gate is simply supposed to be
[1, 1], and the output gate has one row of weights, shared by both units.

`LECTURE_CLAIMS` are the values the slides state; `lecture_lstm()` evaluates the step and checks them.

Imports: gategraph.cells, gategraph.errors, gategraph.worked.
"""

from __future__ import annotations

import numpy as np

from gategraph.cells import load_cell, lstm
from gategraph.errors import UsageError
from gategraph.worked import Claim, Evaluation, evaluate, parse_sizes, random_values


def _gate(on_h, on_x):
    """W acting on [h_{t-1}, x_t] from its blocks: the weights on h_{t-1}, then those on x_t."""
    return np.hstack([np.asarray(on_h, dtype=object), np.asarray(on_x, dtype=object)])


LECTURE_VALUES = {
    "x": [1, -1, 1],
    "h": [1, 1],
    "C": ["0.7", "0.3"],
    "W_f": _gate([[1, -1], [-1, 1]], [[1, 1, -100], ["0.1", "0.1", -100]]),
    "W_C": _gate([[1, 0], [0, 1]], [[10, 1, -1], [-1, 1, 10]]),
    "W_o": _gate([[1, 1], [1, 1]], [[1, 1, -1], [1, 1, -1]]),
    "b_f": [0, 0],
    "b_C": [0, 0],
    "b_o": [0, 0],
}

LECTURE_GIVEN = {"i": [1, 1]}  # "Let's say that my input gate estimation is [1, 1]"

LECTURE_CLAIMS = (
    Claim("f", (0, 0), part="h"),
    Claim("f", (-100, -100), part="x"),
    Claim("f", (0, 0)),
    Claim("C_tilde", (1, 1), part="h"),
    Claim("C_tilde", (10, 10), part="x",
          note="10·1 + 1·(-1) + (-1)·1 = 8 and (-1)·1 + 1·(-1) + 10·1 = 8"),
    Claim("C_tilde", (1, 1)),
    Claim("C", (1, 1)),
    Claim("o", (0.9, 0.9), approx=True,
          note="the weights give σ(2 - 1) = σ(1) ≈ 0.731; σ(a) ≈ 0.9 needs a ≈ 2.2"),
    Claim("h", (0.9, 0.9), approx=True,
          note="the slide multiplies o_t by C_t and leaves out the tanh: σ(1) · tanh(1) ≈ 0.557"),
)


def lecture_lstm(exact: bool = True) -> Evaluation:
    """The lecture's LSTM step, evaluated and checked against what the slides claim."""
    return evaluate(lstm(), LECTURE_VALUES, given=LECTURE_GIVEN, claims=LECTURE_CLAIMS, exact=exact)


def example(name: str, sizes: str | None = None, seed: int = 0, exact: bool = True) -> Evaluation:
    """The worked example `gategraph example NAME` shows: the lecture's (`lecture-lstm`), or a cell (a built-in
    name or file.py:function) on small random numbers of the given sizes (`X=3,H=2`)."""
    if name == "lecture-lstm":
        if sizes is not None:
            raise UsageError("--sizes is for examples on random numbers; lecture-lstm has the lecture's own sizes")
        return lecture_lstm(exact=exact)
    cell = load_cell(name)
    return evaluate(cell, random_values(cell, parse_sizes(sizes), seed), exact=exact)
