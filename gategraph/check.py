"""Gradient checks: the derived adjoint (BPTT) against finite differences and against SymPy's own `diff`.

Both checks take the loss L = Σ_t Σ_outputs ⟨g_t, y_t⟩ + Σ_states ⟨g_T, s_T⟩ with random weights g (any
loss's gradient reaches the cell as such weights, so this is no restriction) and compare ∂L/∂θ from
`reference.backward` with
- central finite differences in float64, for every scalar of every parameter, input and initial state;
- SymPy: the loss written out as one scalar expression in symbols for every parameter, input and initial
  state (the weights g random rationals), and the adjoint's gradient evaluated on the same symbols; each
  entry must equal SymPy's derivative of the loss as an identity in all the symbols. `ScalarProgram`
  proves it fast: both sides cut at their function applications (u = σ(b), ...), the loss differentiated
  by the chain rule over those named intermediates, and the two compared as exact polynomials. Every
  built-in cell is proved so in seconds at the sizes of `EXACT_SIZES` and T = 2.

Imports: numpy, sympy, gategraph.derive, gategraph.reference, gategraph.numeric, gategraph.spec.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
                names=None, progress: Callable | None = None) -> list[Row]:
    """SymPy's derivative of the written-out loss equals the adjoint's gradient for every value of every
    quantity: an identity, not a numerical agreement.

    Every parameter, input and initial state is a real SymPy symbol (only the loss weights are random
    rationals), so the loss L is one scalar expression in all of them, and the adjoint's gradient G_i
    (`reference.backward` evaluating `derive(cell)`, or `adjoint`) is one expression per entry θ_i.
    `ScalarProgram` cuts both at every function application and proves G_i = ∂L/∂θ_i as an equality of
    polynomials (see there why that is a proof). An entry the cut cannot show equal fails if the two sides
    differ at a random point; otherwise `_is_zero` decides it on the fully written-out difference, exactly
    and slowly. `names` limits the check to some
    quantities. The polynomials grow quickly with T (a GRU: T = 2 takes a second, T = 3 minutes); T = 2
    already sends a carry back through a whole step into the initial states. Each row's seconds leave out
    the setup all rows share (the run, the cut and the loss's partial derivatives).

    `progress(done, total, what)` is told what is being proven, in entries: before the setup (0 done), before
    each quantity and at the end (done == total)."""
    problem = symbolic_problem(random_problem(cell, sizes or EXACT_SIZES, T, seed, exact=True))
    chosen = {k: v for k, v in problem.quantities().items() if names is None or k in names}
    total, done = sum(v.size for v in chosen.values()), 0
    tell = progress or (lambda done, total, what: None)
    tell(0, total, "the loss and the gradients, cut at σ, tanh, exp, ...")
    loss = problem.loss(exact=True)
    grads = problem.gradient(exact=True, adjoint=adjoint)
    program = ScalarProgram(loss, [g for v in grads.values() for g in np.ravel(v)])
    rows = []
    for name, value in chosen.items():
        tell(done, total, name)
        done += value.size
        start = time.perf_counter()
        failed = sum(not _proven(program, loss, grads[name][idx], value[idx]) for idx in np.ndindex(value.shape))
        gap = 0.0 if failed == 0 else None  # an identity holds or it does not: no size to report
        rows.append(Row(name, "sympy", gap, gap, failed == 0, value.size, failed, time.perf_counter() - start))
    tell(total, total, "")
    return rows


def _proven(program: ScalarProgram, loss, grad, leaf) -> bool:
    """grad = ∂loss/∂leaf identically: equal polynomials (fast); else refuted if the two differ at a random
    point; else decided on the written-out expressions (slow)."""
    gap = program.poly(grad) - program.derivative(leaf)
    if not gap:
        return True
    value = program.at_random_point(gap)
    if value is not None and abs(value) > 1e-20:
        return False
    return _is_zero(sp.diff(loss, leaf) - grad)


class ScalarProgram:
    """Scalar expressions cut into a straight-line program at every function application, and the chain
    rule over it.

    Cutting replaces each application f(b) (σ, tanh, exp, ..., and b^r for r not a positive integer) by
    a fresh symbol u_k = f_k(b_k), innermost first, so b_k is a polynomial in the symbols of the problem
    and in u_1 .. u_{k-1}, and every expression becomes a polynomial P(θ, u) with rational coefficients,
    held in a SymPy polynomial ring (canonical: two polynomials are equal exactly when they have the same
    terms). The same application gets the same u wherever it occurs; e^{nb} = (e^b)^n and
    b^{-n} = (b^{-1})^n, so SymPy's own rewriting of products of powers cannot hide one.

    The loss L(θ) = P_L(θ, u(θ)) is then differentiated by the chain rule through the program, forward,
    one symbol θ_i at a time:
        du_k/dθ_i = Σ_j f_k'(b_k)_j · (∂b_kj/∂θ_i + Σ_{m<k} ∂b_kj/∂u_m · du_m/dθ_i)
        D_i       = ∂P_L/∂θ_i + Σ_k ∂P_L/∂u_k · du_k/dθ_i
    with f_k' from SymPy's `diff` of f_k, written back in u_k (σ' = u(1 - u), tanh' = 1 - u², exp' = u).
    This is the derivative SymPy's `diff` takes of the fully written-out L, organised around the named
    intermediates instead of expanding them: D_i(θ, u(θ)) = ∂L/∂θ_i for all θ.

    Why equality is a proof: if a gradient G_i(θ) = P_G(θ, u(θ)) has P_G = D_i as polynomials in
    independent symbols θ and u, the two agree whatever values u takes, in particular at u = u(θ), so
    G_i(θ) = ∂L/∂θ_i(θ) identically. (No point is sampled and no relation between the u is used, such as
    σ(a) + σ(-a) = 1 or Σ softmax = 1; a gradient that holds only through such a relation is not shown
    equal here, and `sympy_exact` decides it on the written-out expressions instead.)"""

    def __init__(self, loss, others=()):
        self.atoms: dict = {}  # u_k -> (f_k, cut arguments b_k), in the order made (innermost first)
        self._made: dict = {}  # (f, arguments) -> u
        self._cut: dict = {}
        self.loss = self.cut(loss)
        for e in others:
            self.cut(e)
        self.rules = {u: self._rule(u) for u in self._read_by(self.loss)}  # may add atoms: done before the ring
        leaves = sorted(set().union(*(e.free_symbols for e in self._cut.values())) - set(self.atoms), key=str)
        self.ring = sp.ring([*leaves, *self.atoms], sp.QQ)[0]
        self._gen = dict(zip([*leaves, *self.atoms], self.ring.gens, strict=True))
        self._poly: dict = {}
        self._point: dict | None = None  # a random θ and the u there, for `at_random_point`
        self._partials = {u: self._partial(u) for u in self.rules}
        loss = self.poly_of(self.loss)
        self._loss_partials = {s: loss.diff(self._gen[s]) for s in self.loss.free_symbols}

    # -- cutting ---------------------------------------------------------------------------------
    def cut(self, e):
        """`e` with every function application replaced by its u (a polynomial in symbols and u)."""
        out = self._cut.get(e)
        if out is None:
            out = self._cut[e] = self._cut_new(e)
        return out

    def _cut_new(self, e):
        e = sp.sympify(e)  # an exact evaluation may leave a plain int (a sum over no terms)
        if e.is_Atom:  # a symbol, a rational, or a constant such as e or π (a u of no arguments)
            return e if e.is_Symbol or e.is_Rational else self._atom(e, ())
        if isinstance(e, sp.Add | sp.Mul):
            return e.func(*[self.cut(a) for a in e.args])
        if isinstance(e, sp.Pow) and e.exp.is_Rational:  # b^(p/q) = (b^(1/q))^p, b^(-n) = (b^(-1))^n
            base, r = self.cut(e.base), e.exp
            if r.q > 1:
                base = self._atom(sp.Pow, (base, sp.Rational(1, r.q)))
            return base**r.p if r.p > 0 else self._atom(sp.Pow, (base, sp.S.NegativeOne)) ** -r.p
        args = tuple(self.cut(a) for a in e.args)
        if e.func is sp.exp:
            c, rest = args[0].as_coeff_Mul()
            if c.is_Integer and abs(c) > 1:  # e^{±nb} = (e^{±b})^n, as SymPy merges e^b e^b
                return self._atom(sp.exp, (sp.sign(c) * rest,)) ** abs(c)
        return self._atom(e.func, args)

    def _atom(self, f, args):
        u = self._made.get((f, args))
        if u is None:
            u = self._made[(f, args)] = sp.Dummy(f"u{len(self.atoms)}", real=True)
            self.atoms[u] = (f, args)
        return u

    def written_out(self, e):
        """A cut expression with every u replaced by what it stands for: the inverse of `cut`."""
        back: dict = {}
        for u, (f, args) in self.atoms.items():
            back[u] = f(*(b.xreplace(back) for b in args)) if args else f
        return e.xreplace(back)

    def _read_by(self, e) -> list:
        """The u that `e` reads, directly or through the arguments of other u, in program order."""
        seen, todo = set(), [s for s in e.free_symbols if s in self.atoms]
        while todo:
            u = todo.pop()
            if u not in seen:
                seen.add(u)
                todo += [s for b in self.atoms[u][1] for s in b.free_symbols if s in self.atoms]
        return [u for u in self.atoms if u in seen]

    def _rule(self, u) -> list:
        """∂f/∂b_j for u = f(b_1, ...), from SymPy's diff of f, written with u and the cut arguments."""
        f, args = self.atoms[u]
        if not args:
            return []
        if f is sp.Pow and args[1].is_Rational:  # u = b^r, r = -1 or 1/q: du/db = r b^(r-1) = r u^(1 - 1/r)
            b, r = args
            return [self.cut(r * u ** (1 - 1 / r)), sp.S.Zero]
        ys = [sp.Dummy(real=True) for _ in args]
        back = {f(*ys): u, **dict(zip(ys, args, strict=True))}
        return [self.cut(sp.diff(f(*ys), y).xreplace(back)) for y in ys]

    # -- the polynomials and the chain rule ---------------------------------------------------------
    def poly(self, e):
        """The polynomial P(θ, u) of an expression in the problem's symbols (one given to the constructor,
        or one that applies no function the program has not seen)."""
        return self.poly_of(self.cut(e))

    def poly_of(self, e):
        """The polynomial of an already cut expression."""
        out = self._poly.get(e)
        if out is None:
            if e.is_Symbol:
                if e not in self._gen:
                    raise ValueError(f"{e} is not in this program: give every expression to compare when making it")
                out = self._gen[e]
            elif e.is_Rational:
                out = self.ring(e)
            elif e.is_Add:
                out = sum((self.poly_of(a) for a in e.args), self.ring.zero)
            elif e.is_Mul:
                out = self.ring.one
                for a in e.args:
                    out *= self.poly_of(a)
            elif e.is_Pow and e.exp.is_Integer and e.exp > 0:
                out = self.poly_of(e.base) ** int(e.exp)
            else:
                raise TypeError(f"not a polynomial after cutting: {e}")
            self._poly[e] = out
        return out

    def _partial(self, u) -> dict:
        """symbol or earlier u -> ∂u/∂(it) through u's arguments (only those it reads)."""
        out: dict = {}
        for b, rule in zip(self.atoms[u][1], self.rules[u], strict=False):
            b_poly, rule_poly = self.poly_of(b), self.poly_of(rule)
            for s in b.free_symbols:
                out[s] = out.get(s, self.ring.zero) + rule_poly * b_poly.diff(self._gen[s])
        return out

    def at_random_point(self, p):
        """p(θ, u(θ)) to 30 digits at a random rational θ, each u computed from its arguments (None where
        that point is outside p's domain)."""
        if self._point is None:
            rng = np.random.default_rng(0)
            self._point = {s: sp.Rational(int(rng.choice([-9, -7, -5, -3, -2, 2, 3, 5, 7, 9])), 7)
                           for s in self._gen if s not in self.atoms}
            for u, (f, args) in self.atoms.items():
                self._point[u] = sp.N(f(*(b.xreplace(self._point) for b in args)) if args else f, 30)
        value = sp.N(p.as_expr().xreplace(self._point), 30)
        return value if value.is_number and value.is_finite else None

    def derivative(self, leaf):
        """D = dL/d(leaf) by the chain rule through the program (forward: leaf first, then each u)."""
        d = {leaf: self.ring.one}
        for u, partials in self._partials.items():
            du = sum((p * d[s] for s, p in partials.items() if s in d), self.ring.zero)
            if du:
                d[u] = du
        return sum((p * d[s] for s, p in self._loss_partials.items() if s in d), self.ring.zero)


def _is_zero(expr) -> bool:
    """Exactly zero, as an identity, decided on the fully written-out expression (slow: only for what
    `ScalarProgram` cannot show).

    A clearly non-zero value at a random point settles it at once. Otherwise, first in the atoms: every
    σ(·), tanh(·), exp(·) becomes an independent symbol (both sides hold the very same atoms) and the
    difference must expand to the zero polynomial; an identity in independent symbols holds whatever values
    the atoms take. SymPy merges e^a e^b into e^(a+b), so a softmax's ratios can need the whole expression
    over a common denominator."""
    rng = np.random.default_rng(0)
    value = expr.xreplace({s: sp.Float(rng.integers(-9, 10) / 7, 30) for s in expr.free_symbols})
    if value.is_Number and abs(value) > 1e-20:
        return False
    atoms = {a: sp.Dummy() for a in expr.atoms(sp.Function)}
    if sp.expand(expr.xreplace(atoms)) == 0:
        return True
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
