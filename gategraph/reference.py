"""The reference implementation: a cell run over a sequence, and BPTT over it, by evaluating the SymPy
expressions one node at a time (`numeric.value_of`). Plain and slow; exact with `exact=True`.
Every faster evaluator is tested against it, and it is tested against SymPy's own `diff`.

One sequence, no batch axis. Per-step inputs have shape (T, ...); memories are the same at every step.

Imports: numpy, gategraph.numeric, gategraph.derive, gategraph.spec, gategraph.errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gategraph.derive import Adjoint, Role, adjoint_name
from gategraph.errors import ValueInputError
from gategraph.numeric import value_of
from gategraph.spec import Cell


@dataclass
class Trace:
    """What a forward run keeps for the backward one: every value of every step, by name."""

    cell: Cell
    steps: list  # of dicts: name -> value at that step (inputs, states read, parameters, equations)
    sizes: dict
    exact: bool

    @property
    def outputs(self) -> dict:
        """output name -> its values over time, stacked: (T, ...)."""
        return {o: np.stack([env[o] for env in self.steps]) for o in self.cell.outputs}

    @property
    def final(self) -> dict:
        """state name -> its value after the last step."""
        return {st.name: self.steps[-1][st.name] for st in self.cell.states}


def _zeros(shape, exact):
    return np.zeros(shape, dtype=object if exact else float)


def forward(cell: Cell, params: dict, inputs: dict, state0: dict | None = None, exact: bool = False) -> Trace:
    """Run `cell` over a sequence: h_t, C_t, ... = step(x_t, h_{t-1}, C_{t-1}, ...) for t = 0 .. T-1.

    params: name -> array. inputs: per-step input name -> (T, ...) array; memory name -> array.
    state0: state name -> initial value (zeros where missing)."""
    state0 = state0 or {}
    cell.check_keys("state0", state0, "state")
    per_step = [d.name for d in cell.by_role("input")]
    missing = [n for n in [d.name for d in cell.inputs] + [p.name for p in cell.params]
               if n not in inputs and n not in params]
    if missing:
        raise ValueInputError(f"cell {cell.name!r} needs values for {', '.join(missing)}")
    lengths = {len(inputs[n]) for n in per_step}
    if len(lengths) > 1:
        raise ValueInputError(f"inputs of cell {cell.name!r} differ in length: {sorted(lengths)}")
    T = lengths.pop() if lengths else 1
    if T == 0:
        raise ValueInputError(f"the inputs of cell {cell.name!r} are empty: a sequence needs at least one step")
    fixed = {**params, **{d.name: inputs[d.name] for d in cell.by_role("memory")}}
    probe = {**fixed, **{n: inputs[n][0] for n in per_step}}
    sizes = cell.bind_sizes({**probe, **{st.prev.name: np.asarray(state0[st.name]) for st in cell.states
                                         if st.name in state0}})
    shapes = cell.with_sizes(**{s.name: sizes.get(s.name, 0) for s in cell.sizes})
    state = {st.name: np.asarray(state0[st.name]) if st.name in state0 else _zeros(shapes[st.name], exact)
             for st in cell.states}
    steps = []
    for t in range(T):
        env = {**fixed, **sizes, **{n: inputs[n][t] for n in per_step},
               **{st.prev.name: state[st.name] for st in cell.states}}
        for eq in cell.equations:
            env[eq.name] = value_of(eq.rhs, env, exact)
        state = {st.name: env[st.name] for st in cell.states}
        steps.append(env)
    return Trace(cell, steps, sizes, exact)


def backward(adjoint: Adjoint, trace: Trace, d_outputs: dict, d_final: dict | None = None,
             record: list | None = None) -> dict:
    """BPTT: the reverse scan over the adjoint step (see gategraph.derive).

    d_outputs: output name -> ∂L/∂(output) at every step, (T, ...). d_final: state name -> ∂L/∂(final
    state). Returns ∂L/∂(everything the run read): each parameter, each input ((T, ...) for per-step
    inputs) and each initial state, by state name. `record` (a list) receives every step's values, forward
    and adjoint, by name, from the last step to the first."""
    cell, exact = adjoint.cell, trace.exact
    d_final = d_final or {}
    d_outputs = d_outputs or {}
    cell.check_keys("d_outputs", d_outputs, "output")
    cell.check_keys("d_final", d_final, "state")
    T = len(trace.steps)
    shapes = cell.with_sizes(**{s.name: trace.sizes.get(s.name, 0) for s in cell.sizes})
    carry = {st.name: np.asarray(d_final[st.name]) if st.name in d_final else _zeros(shapes[st.name], exact)
             for st in cell.states}
    grads = {p.name: _zeros(shapes[p.name], exact) for p in cell.params}
    per_step = {d.name: [None] * T for d in cell.by_role("input")}
    for d in cell.by_role("memory"):
        grads[d.name] = _zeros(shapes[d.name], exact)
    for t in reversed(range(T)):
        env = dict(trace.steps[t])
        for out in cell.outputs:
            env[adjoint_name(Role.SEED, out)] = d_outputs[out][t] if out in d_outputs else _zeros(shapes[out], exact)
        for st in cell.states:
            env[adjoint_name(Role.CARRY, st.name)] = carry[st.name]
        for eq in adjoint.equations:
            env[eq.name] = value_of(eq.rhs, env, exact)
        if record is not None:
            record.append(env)
        for p, g in adjoint.grads.items():
            if g != 0:
                grads[p] = grads[p] + value_of(g, env, exact)
        for name, bar in adjoint.inputs.items():
            if name in per_step:
                per_step[name][t] = env[bar]
            else:
                grads[name] = grads[name] + env[bar]
        carry = {s: env[bar] if bar else _zeros(shapes[s], exact) for s, bar in adjoint.carries.items()}
    for name, values in per_step.items():
        grads[name] = np.stack([v if v is not None else _zeros(shapes[name], exact) for v in values])
    grads.update(carry)
    return {k: np.asarray(v, dtype=object if exact else float) for k, v in grads.items()}  # a scalar's too
