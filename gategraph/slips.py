"""Slip diagnosis: which everyday mistake turns the right value of a worked example into the claimed one.

A slip is a rewrite of one equation's right-hand side, evaluated by the same evaluator as the worked
example (`numeric.value_of`, in float64). `CATALOGUE` holds one entry per kind of slip; each entry lists
every place in an equation where that slip can happen:

- a nonlinearity dropped, σ(a) → a, tanh(a) → a; or swapped, σ ↔ tanh;
- in a backward step, a nonlinearity's derivative dropped: ā_f = f̄ ⊙ f ⊙ (1 − f) → f̄ (σ′), or the
  factor 1 − tanh²(C) left out (tanh′);
- a term of a sum dropped (a + b → a) or counted twice (a + b → a + 2b); a sign flipped (a + b → a − b);
  in a product W · [a, b] the block terms W_a · a and W_b · b are terms too;
- the wrong block of W: W_a · b and W_b · a (where the blocks have one shape);
- another gate's bias or weights (b_f for b_C, W_f for W_C: any parameter of the same shape);
- a transposed matrix (a square block of W, or a square W), or in a backward step a block of Wᵀ
  taken without its transpose;
- a value carried from another step: C_{t-1} for C_t, or C_t for C_{t-1} where C_t is known by then;
- an arithmetic slip in one entry of a product: one entry of the vector a in W · a taken with the wrong
  sign, or left out ((-1)·1 read as 1·1).

`diagnose(ev)` reports, for each claimed value of an `Evaluation` that does not hold, the single slips
that reproduce it to the precision it was written in; where none does, the pairs (one slip in the
claimed equation, one anywhere before it, or both in it); and the single slips that reproduce it once
the source's own earlier, wrong claims are carried in. `keeping_right(ev, d)` keeps the explanations
that leave the source's right claims right, where any does. A slip is data: the kind, the equation, and the
expressions a sentence about it names (`Slip.says`, with {0}, {1} for those and {eq} for the equation).
A backward step is diagnosed the same way, as the cell `derive(cell).program()`: its forward and adjoint
equations in one program, so every entry applies to the adjoint's equations where it fits.

Imports: numpy, sympy, gategraph.numeric, gategraph.ops, gategraph.spec, gategraph.worked.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from gategraph.numeric import to_float, value_of
from gategraph.ops import NODES, op_of
from gategraph.spec import Cell, Var
from gategraph.worked import Claim, Evaluation, Verdict

Sigmoid, Tanh, Plus, Minus, Scale, MatMul, Concat, Transpose = (
    NODES[n] for n in ("Sigmoid", "Tanh", "Plus", "Minus", "Scale", "MatMul", "Concat", "Transpose"))

NONLINEAR = {"Sigmoid": "σ", "Tanh": "tanh"}


@dataclass(frozen=True, eq=False)
class Slip:
    """One slip at one place: in `equation`'s right-hand side the node at `path` (argument indices from the
    root) becomes `new`; `values` binds the symbols the rewrite introduces (a block negated, an entry left
    out). `says` is the sentence, over `names`."""

    kind: str
    equation: str
    path: tuple
    new: sp.Basic
    says: str
    names: tuple = ()
    values: dict = field(default_factory=dict)
    block: str | None = None  # in W · [a, b]: the operand whose block of W the slip is in ({0} is W's block)


@dataclass(frozen=True)
class Kind:
    """A catalogue entry: `sites(cell, eq, env)` yields every Slip of this kind in one equation."""

    key: str
    title: str
    sites: Callable


# --- where each slip can happen ----------------------------------------------------------------------


def _nodes(expr, path=()) -> Iterator[tuple[tuple, sp.Basic]]:
    """(path, node) for every node, in preorder; a path is the argument indices from the root."""
    yield path, expr
    if op_of(expr) is not None:
        for k, a in enumerate(expr.args):
            yield from _nodes(a, (*path, k))


def _replace(expr, path: tuple, new):
    if not path:
        return new
    args = list(expr.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return expr.func(*args)


_SERIAL = itertools.count()


def _fresh(env: dict, base: str) -> Var:
    """A new symbol no cell can declare (its name holds `~`), for a value a slip introduces."""
    return Var(f"{base}~{next(_SERIAL)}")


def _dropped_nonlinearity(cell, eq, env):
    for path, node in _nodes(eq.rhs):
        if op_of(node) is not None and op_of(node).name in NONLINEAR:
            yield Slip("dropped-nonlinearity", eq.name, path, node.args[0],
                       f"dropped the {NONLINEAR[op_of(node).name]} in {{eq}}")


def _derivative_of(node) -> str | None:
    """Which nonlinearity's derivative `node` is, as the adjoint writes it: σ' as u ⊙ (1 − u), tanh' as
    1 − u² (u = tanh(C) or the gate's own value); None for anything else."""
    name = _op_name(node)
    if name == "Hadamard" and _op_name(node.args[1]) == "Minus" and node.args[1].args == (1, node.args[0]):
        return "σ"
    if name == "Minus" and node.args[0] == 1 and _op_name(node.args[1]) == "Square":
        return "tanh"
    return None


def _op_name(node) -> str | None:
    return op_of(node).name if op_of(node) is not None else None


def _dropped_derivative(cell, eq, env):
    for path, node in _nodes(eq.rhs):
        if _op_name(node) == "Hadamard":
            for k in (0, 1):
                which = _derivative_of(node.args[k])
                if which is not None:
                    yield Slip("dropped-derivative", eq.name, path, node.args[1 - k],
                               f"left out {which}′ = {{0}} in {{eq}}", (node.args[k],))


def _swapped_nonlinearity(cell, eq, env):
    for path, node in _nodes(eq.rhs):
        name = op_of(node).name if op_of(node) is not None else None
        if name in NONLINEAR:
            other = "Tanh" if name == "Sigmoid" else "Sigmoid"
            yield Slip("swapped-nonlinearity", eq.name, path, NODES[other](node.args[0]),
                       f"wrote {NONLINEAR[other]} for {NONLINEAR[name]} in {{eq}}")


def _blocks(node, env) -> list[tuple[int, sp.Basic, int, int]]:
    """For W · [a, b]: (index in the concatenation, operand, first column, last column + 1) per block."""
    out, start = [], 0
    for k, operand in enumerate(node.args[1].args):
        n = len(np.atleast_1d(value_of(operand, env)))
        out.append((k, operand, start, start + n))
        start += n
    return out


def _is_blocked(node) -> bool:
    return (op_of(node) is not None and op_of(node).name == "MatMul" and op_of(node.args[1]) is not None
            and op_of(node.args[1]).name == "Concat")


def _operand_slips(eq, env, kind, change: Callable, says: str):
    """Slips that replace one operand of a product W · [a, b] (or W · a) by `change(value)` there only;
    `change` yields (new value, words) pairs."""
    for path, node in _nodes(eq.rhs):
        if op_of(node) is None or op_of(node).name != "MatMul":
            continue
        if _is_blocked(node):
            sites = [((*path, 1, k), operand) for k, operand, _, _ in _blocks(node, env)]
        else:
            sites = [((*path, 1), node.args[1])]
        for where, operand in sites:
            value = np.asarray(value_of(operand, env), dtype=float)
            for new, words in change(value):
                sym = _fresh(env, "slip")
                yield Slip(kind, eq.name, where, sym, says.format(words=words), (node.args[0], operand),
                           {sym.name: new}, operand.name if _is_blocked(node) and isinstance(operand, Var) else None)


def _dropped_term(cell, eq, env):
    for path, node in _nodes(eq.rhs):
        name = op_of(node).name if op_of(node) is not None else None
        if name == "Plus":
            for k in (0, 1):
                yield Slip("dropped-term", eq.name, path, node.args[1 - k],
                           "left out the term {0} in {eq}", (node.args[k],))
        elif name == "Minus":
            yield Slip("dropped-term", eq.name, path, node.args[0],
                       "left out the term {0} in {eq}", (node.args[1],))
    yield from _operand_slips(eq, env, "dropped-term", lambda v: [(np.zeros_like(v), "")],
                              "left out the term {{0}} · {{1}} in {{eq}}")


def _doubled_term(cell, eq, env):
    for path, node in _nodes(eq.rhs):
        if op_of(node) is not None and op_of(node).name == "Plus":
            for k in (0, 1):
                doubled = _replace(node, (k,), Scale(2, node.args[k]))
                yield Slip("doubled-term", eq.name, path, doubled,
                           "counted the term {0} twice in {eq}", (node.args[k],))
    yield from _operand_slips(eq, env, "doubled-term", lambda v: [(2 * v, "")],
                              "counted the term {{0}} · {{1}} twice in {{eq}}")


def _flipped_sign(cell, eq, env):
    for path, node in _nodes(eq.rhs):
        name = op_of(node).name if op_of(node) is not None else None
        if name in ("Plus", "Minus"):
            other = Minus if name == "Plus" else Plus
            yield Slip("flipped-sign", eq.name, path, other(*node.args),
                       f"wrote {'−' if name == 'Plus' else '+'} for {'+' if name == 'Plus' else '−'} "
                       "before {0} in {eq}", (node.args[1],))
    yield from _operand_slips(eq, env, "flipped-sign", lambda v: [(-v, "")],
                              "flipped the sign of the term {{0}} · {{1}} in {{eq}}")


def _matrix_slips(eq, env, kind, rebuild: Callable, says: str):
    """Slips that replace the matrix W of a product W · [a, b] by `rebuild(W, blocks)` (None: not here)."""
    for path, node in _nodes(eq.rhs):
        if not _is_blocked(node) and not (op_of(node) is not None and op_of(node).name == "MatMul"):
            continue
        W = np.asarray(value_of(node.args[0], env), dtype=float)
        if W.ndim != 2:
            continue
        blocks = _blocks(node, env) if _is_blocked(node) else [(0, node.args[1], 0, W.shape[1])]
        for new, names in rebuild(W, blocks):
            sym = _fresh(env, "slip")
            yield Slip(kind, eq.name, (*path, 0), sym, says, (node.args[0], *names),
                       {sym.name: new})


def _wrong_block(cell, eq, env):
    def rebuild(W, blocks):
        for (_, a, a0, a1), (_, b, b0, b1) in itertools.combinations(blocks, 2):
            if a1 - a0 == b1 - b0:
                new = W.copy()
                new[:, a0:a1], new[:, b0:b1] = W[:, b0:b1], W[:, a0:a1]
                yield new, (a, b)

    yield from _matrix_slips(eq, env, "wrong-block", rebuild,
                             "multiplied {1} by the block of {0} that belongs to {2}, and the other way round, in {eq}")


def _transposed(cell, eq, env):
    def rebuild(W, blocks):
        for _, operand, c0, c1 in blocks:
            if c1 - c0 == W.shape[0] and not np.allclose(W[:, c0:c1], W[:, c0:c1].T):
                new = W.copy()
                new[:, c0:c1] = W[:, c0:c1].T
                yield new, (operand,)

    yield from _matrix_slips(eq, env, "transposed", rebuild, "used the transpose of the block of {0} "
                             "that meets {1} in {eq}")
    yield from _untransposed(cell, eq, env)


def _untransposed(cell, eq, env):
    """In an adjoint's Wᵀ · ā, where W · [a, b] is a product of the forward step: the square block of Wᵀ
    that sends ā back to one operand taken without its transpose (W_h · ā for W_hᵀ · ā)."""
    for path, node in _nodes(eq.rhs):
        if _op_name(node) != "MatMul" or _op_name(node.args[0]) != "Transpose":
            continue
        W = node.args[0].args[0]
        product = next((n for e in cell.equations for _, n in _nodes(e.rhs) if _is_blocked(n) and n.args[0] == W),
                       None)
        if product is None:
            continue
        M = np.asarray(value_of(node.args[0], env), dtype=float)
        for _, operand, r0, r1 in _blocks(product, env):
            if r1 - r0 == M.shape[1] and not np.allclose(M[r0:r1], M[r0:r1].T):
                new, sym = M.copy(), _fresh(env, "slip")
                new[r0:r1] = M[r0:r1].T
                yield Slip("transposed", eq.name, (*path, 0), sym, "used the block of {0} that meets {1} "
                           "without its transpose in {eq}", (W, operand), {sym.name: new})


def _other_parameter(cell, eq, env):
    params = [d.name for d in cell.params]
    for path, node in _nodes(eq.rhs):
        if isinstance(node, Var) and node.name in params:
            for other in params:
                if other != node.name and other in env and cell.shapes[other] == cell.shapes[node.name]:
                    yield Slip("other-parameter", eq.name, path, cell.decl(other).var,
                               "used {1} instead of {0} in {eq}", (node, cell.decl(other).var))


def _other_step(cell, eq, env):
    order = [e.name for e in cell.equations]
    for path, node in _nodes(eq.rhs):
        if not isinstance(node, Var):
            continue
        for st in cell.states:
            if node.name == st.name:  # C_t read: C_{t-1} taken instead
                yield Slip("other-step", eq.name, path, st.prev,
                           "used {1} instead of {0} in {eq}", (node, st.prev))
            elif node.name == st.prev.name and order.index(st.name) < order.index(eq.name):
                new = cell.equation(st.name).lhs
                yield Slip("other-step", eq.name, path, new,
                           "used {1} instead of {0} in {eq}", (node, new))


def _entry_slips(cell, eq, env):
    def change(v):
        for j in range(len(np.atleast_1d(v))):
            if v.ndim == 1 and v[j] != 0:
                flipped, dropped = v.copy(), v.copy()
                flipped[j], dropped[j] = -v[j], 0
                yield flipped, f"took entry {j + 1} of {{1}} with the wrong sign"
                yield dropped, f"left out entry {j + 1} of {{1}}"

    yield from _operand_slips(eq, env, "entry", change, "{words} in {{0}} · {{1}} in {{eq}}")


CATALOGUE = (
    Kind("dropped-nonlinearity", "a nonlinearity dropped", _dropped_nonlinearity),
    Kind("dropped-derivative", "a nonlinearity's derivative dropped", _dropped_derivative),
    Kind("swapped-nonlinearity", "σ and tanh swapped", _swapped_nonlinearity),
    Kind("dropped-term", "a term dropped", _dropped_term),
    Kind("doubled-term", "a term counted twice", _doubled_term),
    Kind("flipped-sign", "a sign flipped", _flipped_sign),
    Kind("wrong-block", "the wrong block of W", _wrong_block),
    Kind("other-parameter", "another gate's bias or weights", _other_parameter),
    Kind("transposed", "a transposed matrix", _transposed),
    Kind("other-step", "a value carried from another step", _other_step),
    Kind("entry", "an arithmetic slip in one entry of a product", _entry_slips),
)
KINDS = {k.key: k for k in CATALOGUE}


# --- evaluating with slips ---------------------------------------------------------------------------


def base_env(ev: Evaluation) -> dict:
    """The float64 values an evaluation started from (inputs, states read, parameters) and its sizes."""
    env = {n: to_float(v) for n, v in ev.values.items()}
    env.update(ev.cell.bind_sizes({n: v for n, v in env.items()}))
    return env


def slips_of(ev: Evaluation, upto: str | None = None) -> list[Slip]:
    """Every slip of the catalogue in the equations of `ev` (up to and including `upto`); equations the
    example gives rather than computes have none."""
    env, given = run(ev), {s.name for s in ev.steps if s.given}
    out = []
    for eq in ev.cell.equations:
        if eq.name not in given:
            for kind in CATALOGUE:
                out += list(kind.sites(ev.cell, eq, env))
        if eq.name == upto:
            break
    return out


def rewritten(cell: Cell, slips) -> dict | None:
    """equation name -> its right-hand side with `slips` made; None where two slips overlap (one inside
    the part the other replaces)."""
    out, done = {}, {}
    for slip in slips:
        paths = done.setdefault(slip.equation, [])
        if any(p[:len(slip.path)] == slip.path or slip.path[:len(p)] == p for p in paths):
            return None
        paths.append(slip.path)
        out[slip.equation] = _replace(out.get(slip.equation, cell.equation(slip.equation).rhs), slip.path, slip.new)
    return out


def run(ev: Evaluation, slips=(), carried: dict | None = None, stop: str | None = None) -> dict | None:
    """The values of every equation with `slips` made (and `carried`: name -> value used instead of
    computing it), in float64, up to equation `stop`; None where the slips overlap. The key
    ("rhs", name) holds each right-hand side as evaluated."""
    rhs = rewritten(ev.cell, slips)
    if rhs is None:
        return None
    env = base_env(ev)
    for slip in slips:
        env.update(slip.values)
    given = {s.name: to_float(s.value) for s in ev.steps if s.given}
    given.update(carried or {})
    for eq in ev.cell.equations:
        env["rhs", eq.name] = rhs.get(eq.name, eq.rhs)
        env[eq.name] = given[eq.name] if eq.name in given else np.asarray(
            value_of(env["rhs", eq.name], env), dtype=float)
        if eq.name == stop:
            break
    return env


def claimed_value(ev: Evaluation, env: dict | None, claim: Claim) -> np.ndarray | None:
    """What `claim` names, in a run's values: an equation's value, or one block W_a · a of its product
    (None where the slips took that product away, or overlap)."""
    if env is None:
        return None
    if claim.part is None:
        return env[claim.name]
    step = next(s for s in ev.steps if s.name == claim.name)
    index = next(k for k, p in enumerate(step.parts)
                 if p.operand.name == claim.part or ev.cell.decl(p.operand.name).state == claim.part)
    found = []

    def visit(expr, args):
        if _is_blocked(expr):
            W, start = np.asarray(args[0], dtype=float), 0
            for operand in expr.args[1].args:
                v = np.asarray(value_of(operand, env), dtype=float)
                found.append(W[:, start:start + len(v)] @ v)
                start += len(v)

    value_of(env["rhs", claim.name], env, visit=visit)
    return found[index] if index < len(found) else None


# --- the diagnosis -------------------------------------------------------------------------------------


@dataclass
class Explanation:
    """Slips that together reproduce a claimed value: `value` is what they give. `carried` names the
    source's own earlier claims taken as it wrote them (each one a slip of its own, diagnosed there)."""

    slips: tuple
    value: np.ndarray
    carried: tuple = ()

    @property
    def count(self) -> int:
        """How many slips the explanation needs: its own and the carried claims."""
        return len(self.slips) + len(self.carried)


@dataclass
class Diagnosis:
    verdict: Verdict
    computed: np.ndarray
    singles: list
    pairs: list
    carried: list

    @property
    def explanations(self) -> list:
        return self.singles or self.pairs or self.carried

    @property
    def fewest(self) -> int | None:
        """The fewest slips that reproduce the claim (None: no slip in the catalogue does)."""
        counts = [e.count for e in self.singles + self.pairs + self.carried]
        return min(counts) if counts else None


def _matches(value, claim: Claim) -> bool:
    if value is None or np.shape(value) != np.shape(np.asarray(claim.value, dtype=float)):
        return False
    return float(np.max(np.abs(value - np.asarray(claim.value, dtype=float)))) <= claim.tolerance()


def _evaluate(ev, claim, slips, carried=None):
    return claimed_value(ev, run(ev, slips, carried, stop=claim.name), claim)


def diagnose_claim(ev: Evaluation, verdict: Verdict, slips: list | None = None) -> Diagnosis:
    """The slips that reproduce one claimed value (see the module docstring for the order of the search)."""
    claim = verdict.claim
    slips = slips if slips is not None else slips_of(ev, upto=claim.name)
    slips = [s for s in slips if _reaches(ev.cell, s.equation, claim.name)]
    singles, alone = [], {}
    for s in slips:
        value = _evaluate(ev, claim, [s])
        alone[s] = value
        if _matches(value, claim):
            singles.append(Explanation((s,), value))
    pairs = []
    if not singles:
        changed = [s for s in slips if alone[s] is not None and not np.allclose(alone[s], verdict.computed)]
        here = [s for s in changed if s.equation == claim.name]
        for a, b in itertools.combinations(changed, 2):
            if a not in here and b not in here:
                continue
            value = _evaluate(ev, claim, [a, b])
            if _matches(value, claim):
                pairs.append(Explanation((a, b), value))
    carried = []
    earlier = {v.claim.name: np.asarray(v.claim.value, dtype=float) for v in ev.verdicts
               if not v.holds and v.claim.part is None and v.claim.name != claim.name
               and _reaches(ev.cell, v.claim.name, claim.name)}
    if earlier and claim.part is None:
        own = [s for s in slips if s.equation == claim.name]
        for s in own:
            value = _evaluate(ev, claim, [s], carried=earlier)
            if _matches(value, claim):
                carried.append(Explanation((s,), value, tuple(earlier)))
    return Diagnosis(verdict, verdict.computed, singles, pairs, carried)


def _reaches(cell: Cell, source: str, target: str) -> bool:
    """Whether the value of equation `source` flows into equation `target` (or is it)."""
    if source == target:
        return True
    reach = {source}
    for eq in cell.equations:
        if any(s.name in reach for s in eq.rhs.free_symbols):
            reach.add(eq.name)
        if eq.name == target:
            return target in reach
    return False


def keeping_right(ev: Evaluation, d: Diagnosis) -> Diagnosis:
    """`d` with only the explanations that leave the claims of `ev` that hold as they are, where any does
    (a slip in C̄ is not what went wrong where C̄ itself was written right); else all, fewest broken first."""
    held = [v.claim for v in ev.verdicts if v.holds]

    def broken(e: Explanation) -> int:
        env = run(ev, e.slips)
        return sum(not _matches(claimed_value(ev, env, c), c) for c in held)

    for found in (d.singles, d.pairs, d.carried):
        counts = {id(e): broken(e) for e in found}
        found.sort(key=lambda e: counts[id(e)])
        if found and counts[id(found[0])] == 0:
            found[:] = [e for e in found if counts[id(e)] == 0]
    return d


def diagnose(ev: Evaluation) -> list[Diagnosis]:
    """A diagnosis for every claimed value of `ev` that does not hold, in the order of the claims."""
    failing = [v for v in ev.verdicts if not v.holds]
    if not failing:
        return []
    everything = slips_of(ev)
    return [diagnose_claim(ev, v, everything) for v in failing]
