"""Reverse mode over a cell: the adjoint of one step, written with the forward names.

`derive(cell)` walks the equations backwards. Every name v gets its adjoint v̄ = ∂L/∂v_t, the sum of what
its consumers send back:
- an output also receives ∂ℓ_t/∂v_t from the loss at step t (its seed);
- a carried state also receives its carry, what step t+1 sent back to it (the adjoint of v_prev, one step on);
- a pointwise part of an equation (σ, tanh, ⊙, +, 1 - z ...) passes `bar ⊙ ∂g/∂leaf` to each leaf,
  with ∂g/∂leaf from SymPy's `diff` on the scalar form and written back with the forward names
  (σ' as `f ⊙ (1 - f)`, tanh' as `1 - tanh²(C)`);
- an equation `v = σ(a)` or `tanh(a)` names the adjoint of its argument ā_v (the pre-activation);
- structural ops pass adjoints by their own VJP rules (ops.py); each concatenation [h_{t-1}, x_t] gets a
  name (`z`) so its adjoint is written once and split by Slice.

The result is itself a straight-line program (`Adjoint.equations`) plus, per parameter, its per-step
gradient contribution (`Adjoint.grads`: dL/dW = Σ_t grads[W] at step t).

Every variable of the adjoint is an `AdjointVar`: its role (`Role.BAR` v̄, `Role.PRE` ā_v, `Role.SEED`
∂ℓ_t/∂v_t, `Role.CARRY` what step t+1 sends back) and the forward name it belongs to. Its SymPy name,
`role:name` (`bar:f`, `pre:f`, `dl:h`, `carry:C`), holds a colon, which no declared name can (they are
identifiers): a gate may be called `a_h` or `bar_x` and nothing collides. Readers dispatch on the role,
never on the spelling of a name.

BPTT is a reverse scan over this adjoint step, with the carries as the scan's carry:

    carry = {s: 0 for s in states}
    for t = T-1, ..., 0:
        bars = adjoint step at t (forward values of step t, dl at t, carry)
        carry = {s: bars[carries[s]] for s in states}          # what flows into step t-1
        grads += {W: grads[W] at t}
    the initial states' gradients are the last carry

(`gategraph.reference.backward` runs exactly this loop.)

Imports: sympy, gategraph.ops, gategraph.spec, gategraph.errors.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum

import sympy as sp

from gategraph.errors import SpecError
from gategraph.ops import NODES, OPS, op_of
from gategraph.spec import Cell, Decl, Equation, Var, find_equation, infer_shape, is_size

Hadamard, Plus, Minus, Scale, Square, Sum, Divide, Sqrt = (
    NODES[n] for n in ("Hadamard", "Plus", "Minus", "Scale", "Square", "Sum", "Divide", "Sqrt"))


class Role(Enum):
    """What a variable of the adjoint is, for the forward name v it belongs to."""

    BAR = "bar"  # v̄_t = ∂L/∂v_t
    PRE = "pre"  # ā_{v,t}: the adjoint of the argument a of σ or tanh in the equation v = σ(a)
    SEED = "dl"  # ∂ℓ_t/∂v_t, what the loss at step t sends to an output v directly
    CARRY = "carry"  # what step t+1 sends back to the carried state v (v̄_prev, one step on)


class AdjointVar(Var):
    """A variable of the adjoint: `role` and `of`, the forward name it belongs to (an equation, a declared
    symbol, or a named subexpression such as z). Its SymPy name is `role:of`, which no declared name can be."""

    def __new__(cls, role: Role, of: str):
        var = super().__new__(cls, f"{role.value}:{of}")
        var.role, var.of = role, of
        return var

    def __getnewargs_ex__(self):
        return (self.role, self.of), {}


def adjoint_name(role: Role, of: str) -> str:
    """The name of the adjoint variable of `of` in `role`: adjoint_name(Role.BAR, "C") is the name of C̄."""
    return AdjointVar(role, of).name


NAME_CANDIDATES = ("z", "u", "s", "v", "w", "k", "g", "q")


@dataclass
class Adjoint:
    """The adjoint of one step of `cell`.

    equations: backward equations in evaluation order (f̄ = C̄ ⊙ C_prev, ...), each left side an AdjointVar.
    grads: parameter name -> its gradient contribution at one step (summed over t).
    carries: state name -> the equation whose value flows into step t-1 (the adjoint of C_prev), or None.
    inputs: input name -> the equation giving its gradient (x̄).
    seeds: output name -> the name of ∂ℓ_t/∂(output).
    named: names given to shared forward subexpressions (`z` -> [h_{t-1}, x_t]).
    shapes: shapes of every forward and adjoint name.
    vars: adjoint name -> its AdjointVar, for every adjoint variable (equations, seeds, carries).
    """

    cell: Cell
    equations: list = field(default_factory=list)
    grads: dict = field(default_factory=dict)
    carries: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    named: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)

    def equation(self, name: str) -> Equation:
        return find_equation(self.equations, name, f"the adjoint of {self.cell.name!r}")

    @property
    def names(self) -> list[str]:
        return [eq.name for eq in self.equations]

    def var(self, name: str) -> AdjointVar:
        """The adjoint variable of that name (its role and the forward name it belongs to)."""
        return self.vars[name]

    def program(self) -> Cell:
        """The forward step and this adjoint as one straight-line program: the forward equations, then the
        adjoint's, then each nonzero gradient as an equation `grad:W = ...`, reading the seeds ∂ℓ_t/∂y_t and
        the carries as inputs. Anything that evaluates or rewrites a cell's equations (a worked example, the
        slip catalogue) then works on the backward step unchanged."""
        cell = self.cell
        seeds = [Decl(self.vars[name], cell.shapes[out], "input") for out, name in self.seeds.items()]
        carries = [Decl(AdjointVar(Role.CARRY, st.name), st.shape, "input") for st in cell.states]
        grads = [Equation(Var(f"grad:{p}"), g) for p, g in self.grads.items() if g != 0]
        return Cell(f"{cell.name} backward", cell.sizes, (*cell.decls, *seeds, *carries), cell.states,
                    (*cell.equations, *self.equations, *grads), cell.outputs, coded=True)

    def state_adjoint(self, state: str) -> str | None:
        """The equation giving ∂L/∂s_t for a carried state s (all of it: the loss at t, step t+1 and every
        other use at step t), or None if nothing reaches s_t."""
        name = adjoint_name(Role.BAR, state)
        return name if name in self.shapes else None


def derive(cell: Cell) -> Adjoint:
    """The adjoint of one step of `cell` (see the module docstring for the rules)."""
    return _Deriver(cell).run()


class _Deriver:
    def __init__(self, cell: Cell):
        self.cell = cell
        self.adj = Adjoint(cell, shapes=dict(cell.shapes))
        self.order = {eq.name: k for k, eq in enumerate(cell.equations)}
        self.flows: dict = {}  # name or named subexpression -> [(order key, adjoint expression)]
        self.names: dict = {}  # shared subexpression -> its given name
        self.first_use: dict = {}  # equation name -> subexpressions named there (preorder)
        self._name_subexpressions()

    # -- bookkeeping --------------------------------------------------------------------------------
    def _name_subexpressions(self):
        taken = {n.split("_")[0] for n in self.cell.shapes} | set(self.cell.shapes)
        free = itertools.chain((c for c in NAME_CANDIDATES if c not in taken),
                               (f"z{k}" for k in itertools.count() if f"z{k}" not in taken))
        for eq in self.cell.equations:
            for node in sp.preorder_traversal(eq.rhs):
                if op_of(node) is not None and op_of(node).name == "Concat" and node not in self.names:
                    name = next(free)
                    self.names[node] = name
                    self.adj.named[name] = node
                    self.adj.shapes[name] = infer_shape(node, self.cell.shapes)
                    self.first_use.setdefault(eq.name, []).append(node)

    def send(self, target, expr, key):
        self.flows.setdefault(target, []).append((key, expr))

    def total(self, target):
        terms = [e for _, e in sorted(self.flows.pop(target, []), key=lambda t: t[0])]
        if not terms:
            return None
        out = terms[0]
        for t in terms[1:]:
            out = Plus(out, t)
        return out

    def emit(self, role: Role, of: str, expr) -> AdjointVar:
        var = AdjointVar(role, of)
        if var.name in self.adj.vars:
            raise SpecError(f"internal: the adjoint defines {role.name.lower()} of {of!r} twice")
        self.adj.equations.append(Equation(var, expr))
        self.adj.shapes[var.name] = infer_shape(expr, self.adj.shapes)
        self.adj.vars[var.name] = var
        return var

    def seed(self, role: Role, name: str, key: float) -> AdjointVar:
        var = AdjointVar(role, name)
        self.adj.shapes[var.name] = self.cell.shapes[name]
        self.adj.vars[var.name] = var
        self.send(name, var, key)
        return var

    # -- the walk -----------------------------------------------------------------------------------
    def run(self) -> Adjoint:
        for out in self.cell.outputs:
            self.adj.seeds[out] = self.seed(Role.SEED, out, -2).name
        for st in self.cell.states:
            self.seed(Role.CARRY, st.name, -1)
        for eq in reversed(self.cell.equations):
            bar = self.total(eq.name)
            if bar is not None:
                self.backprop(eq.rhs, self.emit(Role.BAR, eq.name, bar), eq.name, root=True)
            for node in self.first_use.get(eq.name, []):
                bar = self.total(node)
                if bar is not None:
                    self.backprop(node, self.emit(Role.BAR, self.names[node], bar), eq.name, root=True)
        for d in self.cell.decls:
            bar = self.total(d.name)
            if d.role == "param":
                self.adj.grads[d.name] = bar if bar is not None else sp.S.Zero
            elif bar is not None:
                var = self.emit(Role.BAR, d.name, bar)
                if d.role == "state":
                    self.adj.carries[d.state] = var.name
                else:
                    self.adj.inputs[d.name] = var.name
            elif d.role == "state":
                self.adj.carries[d.state] = None
        return self.adj

    def backprop(self, expr, bar, eq_name: str, root: bool = False) -> None:
        """Send `bar` (the adjoint of `expr`) down to the names `expr` reads."""
        key = self.order[eq_name]
        if isinstance(expr, Var):
            self.send(expr.name, bar, key)
            return
        if expr.is_number or is_size(expr):  # a constant: nothing flows back
            return
        if expr in self.names and not root:
            self.send(expr, bar, key)
            return
        op = op_of(expr)
        if op.kind == "pointwise":
            arg = expr.args[0]
            if root and op.arity == 1 and not isinstance(arg, Var) and eq_name in self.order:
                d = _partials(expr, [arg], named={expr: Var(eq_name)}, leaves=[arg])[0]
                pre = self.emit(Role.PRE, eq_name, _times(bar, d))
                self.backprop(arg, pre, eq_name)
                return
            named = {expr: Var(eq_name)} if root and eq_name in self.order else {}
            leaves = _leaves(expr)
            out_shape = infer_shape(expr, self.adj.shapes)
            for leaf, d in zip(leaves, _partials(expr, leaves, named), strict=True):
                if d != 0:
                    flow = _times(bar, d)
                    if infer_shape(leaf, self.adj.shapes) == () and out_shape != ():
                        flow = Sum(flow)  # a scalar broadcast over a vector gets back the sum: 1ᵀ(bar ⊙ d)
                    self.backprop(leaf, flow, eq_name)
            return
        if op.vjp is None:
            raise SpecError(f"equation {eq_name!r}: op {op.name} has no VJP rule, so nothing flows through it")
        out = Var(eq_name) if root and eq_name in self.order else expr
        shapes = [infer_shape(a, self.adj.shapes) if not a.is_number else () for a in expr.args]
        for a, adj in zip(expr.args, op.vjp(bar, out, expr.args, shapes), strict=True):
            if adj is not None:
                self.backprop(a, adj, eq_name)


# --- pointwise calculus through SymPy's scalar diff ---------------------------------------------------


def _leaves(expr) -> list:
    """The non-pointwise subexpressions (symbols, products, concatenations) a pointwise region reads."""
    found: list = []

    def walk(e):
        op = op_of(e)
        if op is not None and op.kind == "pointwise":
            for a in e.args:
                walk(a)
        elif not (e.is_number or is_size(e)) and e not in found:
            found.append(e)

    walk(expr)
    return found


def _scalar(expr, stand_in: dict):
    """The scalar SymPy form of a pointwise region, each leaf replaced by its stand-in symbol."""
    if expr in stand_in:
        return stand_in[expr]
    if expr.is_number or is_size(expr):
        return expr
    return op_of(expr).scalar(*(_scalar(a, stand_in) for a in expr.args))


def _partials(expr, wrt: list, named: dict, leaves: list | None = None) -> list:
    """∂expr/∂leaf for each leaf in `wrt`, as vector expressions in the forward names.

    `named` maps subexpressions to the names that hold their values (σ(a) -> f), so σ' comes out as
    f ⊙ (1 - f) rather than σ(a) ⊙ (1 - σ(a)). `leaves` (default: all of them) are the subexpressions
    that count as variables."""
    stand_in = {leaf: sp.Symbol(f"_leaf{k}") for k, leaf in enumerate(leaves or _leaves(expr))}
    g = _scalar(expr, stand_in)
    known = {_scalar(e, stand_in): sp.Symbol(f"_named{k}") for k, e in enumerate(named)}
    back = {s: leaf for leaf, s in stand_in.items()}
    back.update({s: var for (e, var), s in zip(named.items(), known.values(), strict=True)})
    out = []
    for leaf in wrt:
        d = sp.diff(g, stand_in[leaf])
        d = d.subs(known)
        out.append(to_vector(sp.factor_terms(d), back))
    return out


def _functions() -> dict:
    """Scalar SymPy function -> the op node whose scalar form it is (σ -> Sigmoid, max -> Maximum)."""
    return {op.scalar: op.node for op in OPS.values()
            if op.kind == "pointwise" and isinstance(op.scalar, sp.FunctionClass)}


def to_vector(e, back: dict):
    """A scalar SymPy expression as a vector expression: products become ⊙, quotients /, x**2 Square,
    x**(1/2) Sqrt, σ Sigmoid.

    Terms are ordered as a reader writes them: a number first (1 - f), names before compound factors."""
    if e in back:
        return back[e]
    if e.is_Number or is_size(e):
        return e
    if isinstance(e, sp.Add):
        terms = sorted(e.args, key=lambda t: (not t.is_Number, t.could_extract_minus_sign()))
        out = to_vector(terms[0], back)
        for t in terms[1:]:
            out = Minus(out, to_vector(-t, back)) if t.could_extract_minus_sign() else Plus(out, to_vector(t, back))
        return out
    if _is_reciprocal(e) or isinstance(e, sp.Mul) and any(_is_reciprocal(f) for f in e.args):
        # a / b: the factors with negative powers go below the line
        coeff, factors = e.as_coeff_mul() if isinstance(e, sp.Mul) else (sp.S.One, (e,))
        over = sp.Mul(*[1 / f for f in factors if _is_reciprocal(f)])
        top = [f for f in factors if not _is_reciprocal(f)]
        out = Divide(to_vector(sp.Mul(*top), back) if top else sp.S.One, to_vector(over, back))
        return out if coeff == 1 else Scale(coeff, out)
    if isinstance(e, sp.Mul):
        coeff, factors = e.as_coeff_mul()
        factors = sorted(factors, key=lambda f: f not in back)
        out = to_vector(factors[0], back)
        for f in factors[1:]:
            out = Hadamard(out, to_vector(f, back))
        return out if coeff == 1 else Scale(coeff, out)
    if isinstance(e, sp.Pow) and e.exp.is_Rational and e.exp.q == 2:  # a^(k/2) = a^((k-1)/2) ⊙ √a
        root = Sqrt(to_vector(e.base, back))
        return root if e.exp.p == 1 else Hadamard(to_vector(e.base ** ((e.exp.p - 1) // 2), back), root)
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 1:
        return _power(to_vector(e.base, back), int(e.exp))
    functions = _functions()
    if type(e) in functions:
        return functions[type(e)](*(to_vector(a, back) for a in e.args))
    raise SpecError(f"cannot write {e} with the vector ops: add an op for it in gategraph/ops.py")


def _is_reciprocal(f) -> bool:
    return isinstance(f, sp.Pow) and f.exp.is_negative


def _power(base, k: int):
    """base^k for k ≥ 1: the base itself for 1, a Square for 2, products of the base beyond."""
    if k == 2:
        return Square(base)
    out = base
    for _ in range(k - 1):
        out = Hadamard(out, base)
    return out


def _times(bar, d):
    """bar ⊙ d, simplified where d is a number."""
    if d == 1:
        return bar
    if d.is_number:
        return Scale(d, bar)
    return Hadamard(bar, d)
