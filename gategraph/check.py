"""Gradient checks: the derived adjoint (BPTT) against finite differences and against SymPy's own `diff`.

Both checks take the loss L = Σ_t Σ_outputs ⟨g_t, y_t⟩ + Σ_states ⟨g_T, s_T⟩ with random weights g (any
loss's gradient reaches the cell as such weights, so this is no restriction) and compare ∂L/∂θ from
`reference.backward` with
- central finite differences in float64, for every scalar of every parameter, input and initial state;
- SymPy: the loss built as one scalar expression in the symbols of one parameter (the rest at random
  rational values), differentiated by `sp.diff` and compared with the adjoint's exact gradient at the same
  rational point; the difference must expand to exactly zero.

Imports: numpy, sympy, gategraph.derive, gategraph.reference, gategraph.numeric, gategraph.spec.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import sympy as sp

from gategraph import reference
from gategraph.derive import derive
from gategraph.numeric import exact_array
from gategraph.spec import Cell

DEFAULT_SIZES = {"X": 2, "H": 3, "S": 3, "A": 2}
EXACT_SIZES = {"X": 1, "H": 2, "S": 2, "A": 2}  # small enough for SymPy, large enough for W vs Wᵀ
FD_TOLERANCE = 1e-6


@dataclass
class Row:
    """One checked quantity: the largest absolute and relative gap between the two gradients, and how many
    of its entries disagree (for SymPy: differ by anything at all)."""

    name: str
    method: str  # "finite differences" | "sympy"
    max_abs: float | None
    max_rel: float | None
    ok: bool
    entries: int
    failed: int = 0
    seconds: float = 0.0


@dataclass
class Problem:
    """A random instance: parameters, inputs, initial states and the loss weights."""

    cell: Cell
    params: dict
    inputs: dict
    state0: dict
    d_outputs: dict
    d_final: dict

    def loss(self, params=None, inputs=None, state0=None, exact=False):
        run = reference.forward(self.cell, params or self.params, inputs or self.inputs,
                                self.state0 if state0 is None else state0, exact=exact)
        total = sum(np.sum(self.d_outputs[o] * y) for o, y in run.outputs.items())
        return total + sum(np.sum(self.d_final[s] * v) for s, v in run.final.items())

    def gradient(self, exact=False, adjoint=None):
        run = reference.forward(self.cell, self.params, self.inputs, self.state0, exact=exact)
        return reference.backward(adjoint or derive(self.cell), run, self.d_outputs, self.d_final)

    def quantities(self) -> dict:
        """Everything the loss depends on, by name: parameters, inputs and initial states."""
        return {**self.params, **self.inputs, **self.state0}

    def with_value(self, name, value) -> Problem:
        groups = {k: dict(getattr(self, k)) for k in ("params", "inputs", "state0")}
        for g in groups.values():
            if name in g:
                g[name] = value
        return Problem(self.cell, groups["params"], groups["inputs"], groups["state0"], self.d_outputs,
                       self.d_final)


def random_problem(cell: Cell, sizes: dict | None = None, T: int = 3, seed: int = 0, exact: bool = False) -> Problem:
    """Random values of a sensible scale (|x| ~ 1, |W| ~ 0.5). With `exact`, small rationals (k/8)."""
    sizes = {s.name: (sizes or DEFAULT_SIZES).get(s.name, 2) for s in cell.sizes}
    shapes = cell.with_sizes(**sizes)
    rng = np.random.default_rng(seed)

    def draw(shape, scale):
        if exact:
            return exact_array(rng.integers(-8, 9, size=shape) * scale / 8)
        return rng.normal(scale=scale, size=shape)

    params = {p.name: draw(shapes[p.name], 0.5) for p in cell.params}
    inputs = {d.name: draw((T, *shapes[d.name]), 1.0) for d in cell.by_role("input")}
    inputs.update({d.name: draw(shapes[d.name], 1.0) for d in cell.by_role("memory")})
    state0 = {st.name: draw(shapes[st.name], 0.5) for st in cell.states}
    d_outputs = {o: draw((T, *shapes[o]), 1.0) for o in cell.outputs}
    d_final = {st.name: draw(shapes[st.name], 1.0) for st in cell.states}
    return Problem(cell, params, inputs, state0, d_outputs, d_final)


def finite_differences(cell: Cell, sizes: dict | None = None, T: int = 4, seed: int = 0,
                       eps: float = 1e-6, adjoint=None) -> list[Row]:
    """Central differences (L(θ + ε) - L(θ - ε)) / 2ε for every scalar, against the adjoint's gradient
    (`adjoint`: the one to check, by default `derive(cell)`)."""
    problem = random_problem(cell, sizes, T, seed)
    grads = problem.gradient(adjoint=adjoint)
    rows = []
    for name, value in problem.quantities().items():
        start = time.perf_counter()
        fd = np.zeros_like(value, dtype=float)
        for idx in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[idx] += eps
            down[idx] -= eps
            fd[idx] = (problem.with_value(name, up).loss() - problem.with_value(name, down).loss()) / (2 * eps)
        gaps = np.abs(grads[name] - fd)
        scale = max(float(np.max(np.abs(fd))) if fd.size else 0.0, 1e-12)
        gap = float(np.max(gaps)) if fd.size else 0.0
        failed = int(np.sum(gaps / scale > FD_TOLERANCE))
        rows.append(Row(name, "finite differences", gap, gap / scale, failed == 0, fd.size, failed,
                        time.perf_counter() - start))
    return rows


def sympy_exact(cell: Cell, sizes: dict | None = None, T: int = 2, seed: int = 0, adjoint=None,
                names=None) -> list[Row]:
    """SymPy's own derivative of the loss equals the adjoint's gradient for every value of every quantity.

    Every parameter, input and initial state is a real SymPy symbol (only the loss weights are random
    rationals), so the loss is one scalar expression in all of them. For each entry θ_i, `sp.diff(L, θ_i)`
    minus the adjoint's ∂L/∂θ_i must expand to exactly 0: an identity, not a numerical agreement.
    `names` limits the check to some quantities."""
    problem = symbolic_problem(random_problem(cell, sizes or EXACT_SIZES, T, seed, exact=True))
    loss = problem.loss(exact=True)
    grads = problem.gradient(exact=True, adjoint=adjoint)
    rows = []
    for name, value in problem.quantities().items():
        if names is not None and name not in names:
            continue
        start = time.perf_counter()
        failed = sum(not _is_zero(sp.diff(loss, value[idx]) - grads[name][idx]) for idx in np.ndindex(value.shape))
        gap = 0.0 if failed == 0 else None  # an identity holds or it does not: no size to report
        rows.append(Row(name, "sympy", gap, gap, failed == 0, value.size, failed, time.perf_counter() - start))
    return rows


def _is_zero(expr) -> bool:
    """Exactly zero, as an identity.

    First in the atoms: every σ(·), tanh(·), exp(·) becomes an independent symbol (both sides hold the very
    same atoms) and the difference must expand to the zero polynomial; an identity in independent symbols
    holds whatever values the atoms take. SymPy merges e^a e^b into e^(a+b), so a softmax's ratios can need
    the whole expression over a common denominator: that slower step runs only if the difference is not
    clearly non-zero at a random point."""
    atoms = {a: sp.Dummy() for a in expr.atoms(sp.Function)}
    if sp.expand(expr.xreplace(atoms)) == 0:
        return True
    rng = np.random.default_rng(0)
    value = expr.xreplace({s: sp.Float(rng.integers(-9, 10) / 7, 30) for s in expr.free_symbols})
    if value.is_Number and abs(value) > 1e-20:
        return False
    gap = sp.expand(expr)
    return gap == 0 or sp.cancel(sp.together(gap)) == 0


def symbolic_problem(problem: Problem) -> Problem:
    """The same problem with every parameter, input and initial state replaced by real symbols."""

    def symbols(name, value):
        return np.array([sp.Symbol(f"{name}[{','.join(map(str, i))}]", real=True) for i in np.ndindex(value.shape)],
                        dtype=object).reshape(value.shape)

    def group(values):
        return {k: symbols(k, v) for k, v in values.items()}

    return Problem(problem.cell, group(problem.params), group(problem.inputs), group(problem.state0),
                   problem.d_outputs, problem.d_final)
