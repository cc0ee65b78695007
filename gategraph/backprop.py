"""The backward pass worked with numbers: every adjoint of BPTT on a small example, exactly and in floats.

`backward_example(cell, values, ...)` runs the cell forward over K steps (K ≤ 4) from given numbers and
then the reverse scan of `reference.backward`, keeping every value of every step: the forward ones and
the adjoints v̄_t = ∂L/∂v_t, ā_{v,t}, what step t+1 sends back to each carried state, and each
parameter's contribution at each step. The loss is at the last step T, on the cell's first output y_T:

    ½‖y_T − target‖²   (∂L/∂y_T = y_T − target),   or a given ∂L/∂y_T (`d_output`).

Exact by default: given decimals are rationals and σ(1), tanh(9) stay symbolic until they are shown.

Imports: numpy, gategraph.derive, gategraph.numeric, gategraph.reference, gategraph.spec, gategraph.worked,
gategraph.errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gategraph.cells import load_cell
from gategraph.derive import Adjoint, derive
from gategraph.errors import UsageError, ValueInputError
from gategraph.homework import LECTURE_BACKWARD_VALUES
from gategraph.numeric import exact_array, to_float
from gategraph.reference import Trace, backward, forward
from gategraph.spec import Cell
from gategraph.worked import parse_sizes, random_values

MAX_STEPS = 4  # a worked example is read by a person


@dataclass
class BackwardExample:
    """A forward run and its backward pass, with every value kept.

    steps: per time step t = 0 .. T-1, the values of step t by name (forward and adjoint).
    grads: ∂L/∂(each parameter, each input, each initial state), summed over the steps.
    seed: ∂L/∂y_T, what the loss sends to the last output. loss: its value (None for a given seed).
    """

    cell: Cell
    adjoint: Adjoint
    trace: Trace
    steps: list
    grads: dict
    output: str
    seed: np.ndarray
    target: np.ndarray | None
    loss: object
    exact: bool

    @property
    def T(self) -> int:
        return len(self.steps)

    def floats(self, name: str, t: int) -> np.ndarray:
        return to_float(self.steps[t][name])


def backward_example(cell: Cell, values: dict, steps: int = 1, inputs: dict | None = None, target=None,
                     d_output=None, exact: bool = True) -> BackwardExample:
    """Forward over `steps` steps and back.

    values: every input, initial state (by state name) and parameter, as for `worked.evaluate`.
    inputs: per-step input name -> its values at each step, (steps, ...); missing ones repeat `values`.
    target or d_output: the loss (see the module docstring); neither: ∂L/∂y_T = 1 in every entry."""
    if not 1 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps takes 1 to {MAX_STEPS} (a worked example is read by a person), got {steps}")
    if target is not None and d_output is not None:
        raise UsageError("give a target for the loss ½‖y − target‖², or ∂L/∂y itself, not both")
    conv = exact_array if exact else (lambda v: np.asarray(v, dtype=float))
    inputs = inputs or {}
    states = {st.name for st in cell.states}
    params = {d.name: conv(values[d.name]) for d in cell.params if d.name in values}
    per_step = {}
    for d in cell.inputs:
        if d.role == "memory":
            params[d.name] = conv(values[d.name])
        elif d.name in inputs:
            per_step[d.name] = conv(inputs[d.name])
            if len(per_step[d.name]) != steps:
                raise ValueInputError(f"input {d.name!r} has {len(per_step[d.name])} steps, expected {steps}")
        else:
            per_step[d.name] = np.stack([conv(values[d.name])] * steps)
    state0 = {s: conv(values[s]) for s in states if s in values}
    trace = forward(cell, params, {**per_step, **{k: v for k, v in params.items()
                                                  if cell.roles.get(k) == "memory"}}, state0, exact=exact)
    output = cell.outputs[0]
    y = trace.steps[-1][output]
    loss = None
    if d_output is not None:
        seed = _shaped(conv(d_output), y, "∂L/∂" + output)
    elif target is not None:
        target = _shaped(conv(target), y, "the target")
        seed = y - target
        loss = sum(v * v for v in np.ravel(seed)) / 2
    else:
        seed = conv(np.ones(np.shape(y), dtype=int))
    d_outputs = {output: np.stack([seed * 0] * (len(trace.steps) - 1) + [seed])}
    adjoint, record = derive(cell), []
    grads = backward(adjoint, trace, d_outputs, record=record)
    return BackwardExample(cell, adjoint, trace, record[::-1], grads, output, seed, target, loss, exact)


def example(name: str, sizes: str | None = None, seed: int = 0, steps: int = 1, target: str | None = None,
            d_output: str | None = None, exact: bool = True) -> BackwardExample:
    """The backward example `gategraph example NAME --backward` shows: the lecture's step (`lecture-lstm`, the
    same x_t at every step) or a cell on small random numbers; target and d_output as typed (`0.5,-1`)."""
    if name == "lecture-lstm":
        if sizes is not None:
            raise UsageError("--sizes is for examples on random numbers; lecture-lstm has the lecture's own sizes")
        cell, values, inputs = load_cell("lstm"), LECTURE_BACKWARD_VALUES, None
    else:
        cell, shape = load_cell(name), parse_sizes(sizes)
        values = random_values(cell, shape, seed)
        inputs = random_inputs(cell, values, shape, seed, steps)
    return backward_example(cell, values, steps, inputs, target=parse_vector("--target", target),
                            d_output=parse_vector("--dh", d_output), exact=exact and steps == 1)


def parse_vector(option: str, text: str | None) -> list | None:
    """`0.5,-1` -> ["0.5", "-1"] (decimals kept as written, so they become exact rationals)."""
    if text is None:
        return None
    entries = [v.strip() for v in text.split(",")]
    for v in entries:
        try:
            float(v)
        except ValueError:
            raise UsageError(f"{option} takes numbers separated by commas, e.g. 0.5,-1; got {text!r}") from None
    return entries


def random_inputs(cell: Cell, values: dict, sizes: dict, seed: int, steps: int) -> dict:
    """Per-step inputs for `steps` steps: the example's own at the first step, then small random numbers
    with one decimal, as `worked.random_values` draws them (seed + t at step t)."""
    out = {}
    for d in cell.by_role("input"):
        out[d.name] = np.stack([np.asarray(values[d.name], dtype=object)]
                               + [random_values(cell, sizes, seed + t)[d.name] for t in range(1, steps)])
    return out


def _shaped(v: np.ndarray, like: np.ndarray, what: str) -> np.ndarray:
    if v.shape != np.shape(like):
        raise ValueInputError(f"{what} has {v.size} entries; the output has {np.size(like)}")
    return v
