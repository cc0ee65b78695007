"""Worked examples: one step of a cell evaluated on given numbers, exactly and in floats.

`evaluate(cell, values)` runs the equations in order on NumPy arrays. With `exact=True` (the default)
the arrays hold SymPy numbers: given decimals become rationals (0.1 -> 1/10) and σ(-100) stays σ(-100)
until it is shown, so nothing is rounded before the end. Every product W · [a, b] is also recorded
block by block (W_a · a and W_b · b), as a lecture slide computes it.

A value may be *given* instead of computed ("suppose i_t = [1, 1]"), and the numbers a source claims
(`Claim`) are compared with the computed ones to the precision the source wrote them in.

Imports: numpy, sympy, gategraph.ops, gategraph.spec, gategraph.errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from gategraph.errors import UsageError, ValueInputError
from gategraph.numeric import exact_array, to_float, value_of
from gategraph.ops import op_of
from gategraph.spec import Cell, Var, symbols_of


@dataclass(frozen=True)
class Claim:
    """A value a source states for an equation (or for one block `part` of its W · [a, b] product).

    Agreement is judged to the precision written: `0.9` holds within 0.05, `10` within 0.5.
    """

    name: str
    value: tuple
    part: str | None = None
    approx: bool = False  # the source wrote ≈
    note: str = ""  # why it does not hold, where that is known

    def tolerance(self) -> float:
        """Half a unit in the last place written: 0.9 -> 0.05, 10 -> 0.5; a 0 beside other entries says
        nothing about the digits ([0.1661, 0] -> 0.00005)."""
        entries = np.ravel(np.asarray(self.value, dtype=float))  # a matrix's too
        return max(_half_unit(v) for v in (entries[entries != 0] if entries.any() else entries))

    @property
    def key(self) -> tuple:
        return (self.name, self.part)


def _half_unit(v) -> float:
    exponent = Decimal(repr(float(v))).normalize().as_tuple().exponent
    return 0.5 * 10.0 ** min(exponent, 0)


@dataclass
class Verdict:
    claim: Claim
    computed: np.ndarray

    @property
    def error(self) -> float:
        return float(np.max(np.abs(self.computed - np.asarray(self.claim.value, dtype=float))))

    @property
    def holds(self) -> bool:
        return self.error <= self.claim.tolerance()


@dataclass
class Part:
    """One block of a product W · [a, b]: `weights` (the columns of W that meet `operand`) times `operand`."""

    matrix: str
    operand: Var
    weights: np.ndarray
    value: np.ndarray


@dataclass
class Step:
    """One equation evaluated: its value, and how it got there."""

    name: str
    value: np.ndarray  # object array of SymPy numbers when exact, else float64
    given: bool = False
    parts: list = field(default_factory=list)  # of Part
    argument: np.ndarray | None = None  # for σ(...), tanh(...) at the root: the value inside


@dataclass
class Evaluation:
    cell: Cell
    values: dict  # name -> array: every input, state and parameter that was used
    steps: list  # of Step
    verdicts: list  # of Verdict
    exact: bool

    def __getitem__(self, name: str) -> np.ndarray:
        for s in self.steps:
            if s.name == name:
                return s.value
        return self.values[name]

    def floats(self, name: str) -> np.ndarray:
        return to_float(self[name])

    def verdict(self, name: str, part: str | None = None) -> Verdict | None:
        return next((v for v in self.verdicts if v.claim.key == (name, part)), None)


def evaluate(cell: Cell, values: dict, given: dict | None = None, claims=(), exact: bool = True) -> Evaluation:
    """Evaluate one step of `cell`.

    values: inputs (`x`), carried states by their name (`h`, `C`: read as h_{t-1}, C_{t-1}) and parameters.
    given: equation name -> value used instead of computing it ("suppose i_t = [1, 1]").
    claims: `Claim`s to check against the computed values.
    """
    given = given or {}
    for name in given:
        cell.equation(name)  # a clear error for an unknown name
    needed = _needed(cell, given)
    env: dict[str, np.ndarray] = {}
    state_names = {st.name: st.prev.name for st in cell.states}
    for name, v in values.items():
        key = state_names.get(name, name)
        if key not in cell.shapes or cell.roles[key] == "let":
            raise ValueInputError(f"{name!r} is not an input, state or parameter of cell {cell.name!r}")
        env[key] = np.asarray(v, dtype=float) if not exact else exact_array(v)
    missing = [n for n in needed if n not in env]
    if missing:
        raise ValueInputError(f"cell {cell.name!r} needs values for {', '.join(_public(cell, missing))}")
    for name, v in given.items():
        env[name] = np.asarray(v, dtype=float) if not exact else exact_array(v)
    env.update(cell.bind_sizes(env))  # an equation may read a size (a slice up to H)
    steps = []
    for eq in cell.equations:
        if eq.name in given:
            steps.append(Step(eq.name, env[eq.name], given=True))
            continue
        step = Step(eq.name, None)
        step.value = env[eq.name] = value_of(eq.rhs, env, exact, _record_blocks(step, env, exact))
        op = op_of(eq.rhs)
        if op is not None and op.kind == "pointwise" and len(eq.rhs.args) == 1:
            step.argument = value_of(eq.rhs.args[0], env, exact)
        steps.append(step)
    used = {n: env[n] for n in cell.shapes if n in env and cell.roles[n] != "let"}
    ev = Evaluation(cell, used, steps, [], exact)
    for c in claims:
        computed = _claimed_value(ev, c)
        ev.verdicts.append(Verdict(c, computed))
    return ev


def _needed(cell: Cell, given: dict) -> list[str]:
    needed: list[str] = []
    for eq in cell.equations:
        if eq.name not in given:
            needed += [s.name for s in symbols_of(eq.rhs) if cell.roles[s.name] != "let" and s.name not in needed]
    return needed


def _public(cell: Cell, names) -> list[str]:
    """Carried states are given by their own name (h), not by the name of their read (h_prev)."""
    return [cell.decl(n).state or n for n in names]


def _record_blocks(step: Step, env: dict, exact: bool):
    """A `value_of` visitor that records each product W · [a, b] block by block in `step.parts`."""

    def visit(expr, args):
        inner = expr.args[1] if op_of(expr).name == "MatMul" else None
        if inner is None or op_of(inner) is None or op_of(inner).name != "Concat":
            return
        W, start = args[0], 0
        for operand in inner.args:
            v = value_of(operand, env, exact)
            block = W[:, start:start + len(v)]
            step.parts.append(Part(expr.args[0].name, operand, block, block @ v))
            start += len(v)

    return visit


def _claimed_value(ev: Evaluation, claim: Claim) -> np.ndarray:
    if claim.part is None:
        return ev.floats(claim.name)
    step = next(s for s in ev.steps if s.name == claim.name)
    for p in step.parts:
        if p.operand.name == claim.part or ev.cell.decl(p.operand.name).state == claim.part:
            return to_float(p.value)
    raise ValueInputError(f"equation {claim.name!r} has no block for {claim.part!r}")


def random_values(cell: Cell, sizes: dict[str, int], seed: int) -> dict:
    """Small random numbers with one decimal (-1.0 ... 1.0) for every input, state and parameter;
    sizes not given are 2."""
    unknown = set(sizes) - {s.name for s in cell.sizes}
    if unknown:
        raise UsageError(f"cell {cell.name!r} has no size {', '.join(sorted(unknown))}; its sizes are "
                         f"{', '.join(s.name for s in cell.sizes)}")
    rng = np.random.default_rng(seed)
    sizes = {s.name: sizes.get(s.name, 2) for s in cell.sizes}
    shapes = cell.with_sizes(**sizes)
    values = {}
    for d in cell.decls:
        name = d.state or d.name
        values[name] = (rng.integers(-10, 11, size=shapes[d.name]) / 10).astype(object)
    return values


MAX_EXAMPLE_SIZE = 16  # a worked example is read by a person


def parse_sizes(text: str | None) -> dict[str, int]:
    """Sizes for an example on random numbers, as a user writes them: `X=3,H=2` -> {"X": 3, "H": 2}."""
    if text is None:
        return {}
    try:
        sizes = {k.strip(): int(v) for k, v in (kv.split("=") for kv in text.split(","))}
    except ValueError:
        raise UsageError(f"--sizes takes NAME=INT pairs separated by commas, e.g. X=3,H=2; got {text!r}") from None
    for name, n in sizes.items():
        if not 1 <= n <= MAX_EXAMPLE_SIZE:
            raise UsageError(f"--sizes: {name}={n} is out of range; an example takes sizes 1 to {MAX_EXAMPLE_SIZE}")
    return sizes
