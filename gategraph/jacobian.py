"""Vanishing and exploding gradients: the Jacobian of a carried state with respect to the same state k
steps earlier, symbolically along its own path and numerically along all paths.

Symbolic: the one-step Jacobian J_t = ∂s_t/∂s_{t-1}, the other states held fixed, comes from the adjoint:
seed only s_t, and the carry into s_{t-1} is J_tᵀ applied to the seed. Reading that linear map off the
adjoint's expression and transposing it gives, for the simple RNN,
    ∂h_t/∂h_{t-1} = diag(1 - h_t²) W_{:,1:H}          so  ∂h_t/∂h_{t-k} = Π_j diag(1 - h_{t-j}²) W_{:,1:H},
and for the LSTM's cell state, along its own path (h held fixed at every step),
    ∂C_t/∂C_{t-1} = diag(f_t)                        so  the path C_{t-k} -> ... -> C_t gives Π_j diag(f_{t-j}):
a product of forget gates, which stays near 1 while the gates are open, against a product of W and tanh'
factors whose norm shrinks or grows geometrically. With a single state the product is the whole
Jacobian; with several it is one path of many (C also reaches later steps through h and the gates).

Numeric: for k = 1..K on a random sequence, ‖∂s_t/∂s_{t-k}‖ (spectral norm) through all paths, and the
norm of the product of the one-step Jacobians along the state's own path, both by the reference BPTT with
a unit seed per coordinate.

Imports: numpy, sympy, gategraph.derive, gategraph.reference, gategraph.ops, gategraph.spec, gategraph.errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from gategraph import reference
from gategraph.derive import Adjoint, AdjointVar, Role, derive
from gategraph.errors import UsageError
from gategraph.ops import NODES, op_of, transposed
from gategraph.spec import Cell, infer_shape


@dataclass(frozen=True)
class Factor:
    """One factor of a Jacobian product: diag(d); a scalar c; a matrix A (with start, stop: its columns
    start:stop); a vector a as a column (n × 1) or as a row aᵀ (1 × n), `expr` None for the vector of ones
    (the row 1ᵀ sums, the column 1 broadcasts a scalar); or a selection of rows (in Jᵀ) or columns (in J)
    start:stop."""

    kind: str  # "diag" | "scalar" | "matrix" | "column" | "row" | "rows" | "columns"
    expr: sp.Basic | None = None
    start: sp.Basic | None = None
    stop: sp.Basic | None = None


@dataclass(frozen=True)
class StepJacobian:
    """∂s_t/∂s_{t-1} = Σ over terms of the product of their factors (left to right)."""

    state: str
    terms: tuple  # of tuples of Factor


def step_jacobian(adj: Adjoint, state: str) -> StepJacobian:
    """∂s_t/∂s_{t-1} for one carried state, the other states held fixed, read off the adjoint."""
    cell = adj.cell
    if state not in {st.name for st in cell.states}:
        names = ", ".join(st.name for st in cell.states) or "none"
        raise UsageError(f"{state!r} is not a carried state of {cell.name!r}; its states are {names}")
    bar = adj.carries.get(state)
    if bar is None:
        return StepJacobian(state, ())
    seed = AdjointVar(Role.CARRY, state)
    env = {seed.name: seed}  # only s_t is seeded (by itself); every other seed and carry is zero
    for eq in adj.equations:
        env[eq.name] = _substitute(eq.rhs, env)
    shapes = {**adj.shapes, seed.name: cell.shape(state)}
    of_transpose = _linear(env[bar], seed, shapes)  # the terms of J_tᵀ, each acting right to left
    terms = tuple(tuple(_transpose(f) for f in reversed(term)) for term in of_transpose)
    return StepJacobian(state, tuple(_merge(t) for t in terms))


def _substitute(expr, env):
    """expr with adjoint names replaced by their values in terms of the seed; zero seeds dropped."""
    names = {s: env.get(s.name, sp.S.Zero) for s in expr.atoms(AdjointVar)}
    return _prune(expr.xreplace(names))


def _prune(expr):
    """Drop terms that are zero (a zero seed times anything)."""
    op = op_of(expr)
    if op is None:
        return expr
    args = [_prune(a) for a in expr.args]
    if op.name in ("Plus", "Minus"):
        if args[1] == 0:
            return args[0]
        if args[0] == 0:
            return args[1] if op.name == "Plus" else NODES["Scale"](-1, args[1])
        return op.node(*args)
    if op.name in ("Hadamard", "Scale", "MatMul", "Outer", "Dot") and any(a == 0 for a in args):
        return sp.S.Zero
    if op.name in ("Transpose", "Slice", "ColSum") and args[0] == 0:
        return sp.S.Zero
    return op.node(*args)


def _linear(expr, v, shapes: dict) -> list[list[Factor]]:
    """The linear map expr(v) as a sum of products of factors acting on v (rightmost acts first).

    A scalar that depends on v times a vector a is the column a times that scalar (a rank-one map); a sum
    Σ L(v) is the row 1ᵀ times L(v), and aᵀ L(v) the row aᵀ times it; a scalar added to a vector is
    broadcast by the column of ones."""
    if expr == v:
        return [[]]
    op = op_of(expr)
    if op is None:  # a symbol or a number: it does not depend on v (the adjoint is linear in its seeds)
        return []

    def scalar(e) -> bool:
        return infer_shape(e, shapes) == ()

    depends = [a.has(v) for a in expr.args]
    if op.name in ("Plus", "Minus"):
        vector = not scalar(expr)
        out = []
        for k, a in enumerate(expr.args):
            if not depends[k]:
                continue
            lead = [Factor("diag", sp.S.NegativeOne)] if op.name == "Minus" and k == 1 else []
            lead += [Factor("column")] if vector and scalar(a) else []
            out += [lead + t for t in _linear(a, v, shapes)]
        return out
    if op.name in ("Hadamard", "Scale"):
        if all(depends):
            raise UsageError(f"cannot write the Jacobian through {op.name} of two terms that both depend on the state")
        inner, other = (expr.args[0], expr.args[1]) if depends[0] else (expr.args[1], expr.args[0])
        if scalar(inner) and not scalar(other):  # a scalar that depends on v scales a fixed vector
            head = Factor("column", other)
        elif scalar(other) and not other.is_number:
            head = Factor("scalar", other)
        else:
            head = Factor("diag", other)
        return [[head] + t for t in _linear(inner, v, shapes)]
    if op.name == "Dot":
        inner, other = (expr.args[0], expr.args[1]) if depends[0] else (expr.args[1], expr.args[0])
        if all(depends):
            raise UsageError("cannot write the Jacobian through a Dot of two terms that both depend on the state")
        return [[Factor("row", other)] + t for t in _linear(inner, v, shapes)]
    if op.name == "Sum":
        return [[Factor("row")] + t for t in _linear(expr.args[0], v, shapes)]
    if op.name == "MatMul" and depends[1] and not depends[0]:
        return [[Factor("matrix", expr.args[0])] + t for t in _linear(expr.args[1], v, shapes)]
    if op.name == "Slice":
        return [[Factor("rows", None, expr.args[1], expr.args[2])] + t for t in _linear(expr.args[0], v, shapes)]
    raise UsageError(f"cannot write the Jacobian through {op.name} as a product of matrices")


def _transpose(f: Factor) -> Factor:
    if f.kind == "matrix":
        return Factor("matrix", transposed(f.expr))
    if f.kind in ("column", "row"):
        return Factor("row" if f.kind == "column" else "column", f.expr)
    if f.kind == "rows":
        return Factor("columns", None, f.start, f.stop)
    return f


def _merge(term: tuple) -> tuple:
    """A matrix followed by a column selection is a block of that matrix: W then cols 1:H is W_{:,1:H}; a
    diagonal next to a vector of ones is that vector: diag(d) 1 = d and 1ᵀ diag(d) = dᵀ. A sign goes in
    front, where it reads as one."""
    signs = sum(1 for f in term if f.kind == "diag" and f.expr == -1)
    out: list[Factor] = [Factor("diag", sp.S.NegativeOne)] if signs % 2 else []
    def vector_diag(f):  # diag(d) of a vector d (a number on the diagonal is a scaling, not a vector)
        return f.kind == "diag" and not f.expr.is_number

    for f in (f for f in term if not (f.kind == "diag" and f.expr == -1)):
        if f.kind == "columns" and out and out[-1].kind == "matrix":
            out[-1] = Factor("matrix", out[-1].expr, f.start, f.stop)
        elif f.kind == "column" and f.expr is None and out and vector_diag(out[-1]):
            out[-1] = Factor("column", out[-1].expr)
        elif vector_diag(f) and out and out[-1].kind == "row" and out[-1].expr is None:
            out[-1] = Factor("row", f.expr)
        else:
            out.append(f)
    return tuple(out)


@dataclass
class NormRow:
    k: int
    norms: dict  # state name -> ‖∂s_t/∂s_{t-k}‖₂, through all paths
    own: dict  # state name -> ‖J_t ... J_{t-k+1}‖₂, the one-step Jacobians along the state's own path


def jacobian_norms(cell: Cell, steps: int, seed: int = 0, sizes: dict | None = None,
                   scale: float = 1.0, fixed: dict | None = None) -> list[NormRow]:
    """‖∂s_k/∂s_0‖₂ for k = 1..steps, for every carried state, on a random sequence (all paths, the other
    initial states held fixed). Parameters are drawn uniform in ±scale/√H, as PyTorch initialises them;
    `fixed` sets some to a constant instead (`{"b_f": 3.0}`: forget gates that start open)."""
    from gategraph.check import random_problem

    problem = random_problem(cell, sizes or {"X": 4, "H": 8, "S": 4, "A": 4}, T=steps, seed=seed)
    H = next(iter(problem.state0.values())).shape[0] if problem.state0 else 1
    rng = np.random.default_rng(seed)
    params = {n: rng.uniform(-scale / np.sqrt(H), scale / np.sqrt(H), size=v.shape) for n, v in problem.params.items()}
    for name, value in (fixed or {}).items():
        if not np.isfinite(value):
            raise UsageError(f"{name} = {value} is not a finite number")
        if name not in params:
            raise UsageError(f"{name!r} is not a parameter of {cell.name!r}; its parameters are {', '.join(params)}")
        params[name] = np.full_like(params[name], value)
    adj = derive(cell)
    run = reference.forward(cell, params, problem.inputs, problem.state0)
    states = [st.name for st in cell.states]
    sizes = [problem.state0[s].shape[0] for s in states]
    offsets = np.cumsum([0] + sizes)

    def step_jacobian_numeric(t: int) -> np.ndarray:
        """∂(all states)_t/∂(all states)_{t-1}, the states stacked: one backward pass per output coordinate."""
        trace = reference.Trace(cell, run.steps[t:t + 1], run.sizes, False)
        J = np.zeros((offsets[-1], offsets[-1]))
        for a, s_out in enumerate(states):
            for i in range(sizes[a]):
                grads = reference.backward(adj, trace, {}, {s_out: np.eye(sizes[a])[i]})
                J[offsets[a] + i] = np.concatenate([grads[s] for s in states])
        return J

    rows = []
    full = np.eye(offsets[-1])
    own = [np.eye(n) for n in sizes]
    for k in range(1, steps + 1):
        J = step_jacobian_numeric(k - 1)
        full = J @ full  # every path, through every state
        blocks = [slice(offsets[a], offsets[a + 1]) for a in range(len(states))]
        own = [J[b, b] @ own[a] for a, b in enumerate(blocks)]  # each state's own path only
        rows.append(NormRow(k, {s: float(np.linalg.norm(full[b, b], 2)) for s, b in zip(states, blocks, strict=True)},
                            {s: float(np.linalg.norm(o, 2)) for s, o in zip(states, own, strict=True)}))
    return rows
