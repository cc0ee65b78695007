"""Evaluating expressions on arrays: the plain, slow, exact-capable reference for every other evaluator.

`value_of(expr, env)` walks an expression tree and applies each op's NumPy rule. With `exact=True` the
arrays are object arrays of SymPy numbers (or symbols) and pointwise ops apply their scalar SymPy form,
so σ(-100) stays σ(-100) and a symbolic input gives a symbolic result.

Imports: numpy, sympy, gategraph.ops, gategraph.spec.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sympy as sp

from gategraph.ops import op_of


def value_of(expr, env: dict, exact: bool = False, visit: Callable | None = None):
    """The value of `expr` given the values of its symbols by name (`env`; sizes such as H by name too).

    `visit(expr, args)` is called for every op node with the values of its arguments."""
    if isinstance(expr, sp.Symbol):
        return env[expr.name]
    if expr.is_number:
        return expr if exact else float(expr)
    op = op_of(expr)
    if op is None:  # a size expression such as H + X, or 1/H
        value = expr.subs({s: env[s.name] for s in expr.free_symbols})
        return value if exact else int(value) if value.is_Integer else float(value)
    args = [value_of(a, env, exact, visit) for a in expr.args]
    if visit is not None:
        visit(expr, args)
    if op.kind == "pointwise" and exact:
        return np.vectorize(op.scalar, otypes=[object])(*args)
    return op.numpy(*args)


def to_float(a) -> np.ndarray:
    """Float64 values of an array of exact SymPy numbers (or of floats)."""
    a = np.asarray(a)
    if a.dtype == object:
        return np.vectorize(lambda v: float(sp.N(v, 30)), otypes=[float])(a)
    return a.astype(float)


def exact_array(a) -> np.ndarray:
    """Decimals as written become rationals: 0.1 -> 1/10 (never the binary float's long fraction)."""
    return np.vectorize(lambda v: sp.Rational(str(v)) if not isinstance(v, sp.Basic) else v,
                        otypes=[object])(np.asarray(a, dtype=object))
