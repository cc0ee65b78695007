"""Cells: one time step of a recurrent network as a small straight-line program over typed symbols.

A `Cell` holds
- sizes (SymPy symbols such as X, H, S);
- inputs (`x`, read as x_t), carried states (`h`, read as h_{t-1} through the symbol `h_prev`),
  parameters (`W_f`: (H, H + X)), each with a shape;
- equations `name = expr`, in order, each name assigned once, each expr built from earlier names;
  an equation named like a state is that state's update (`h = ...` is h_t, written back as h_{t-1}
  of the next step);
- outputs: the names emitted at every step.

`CellBuilder` declares one in a few lines; `Cell` validates on construction with one-line errors that
name the equation.

Imports: sympy, gategraph.ops, gategraph.errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from gategraph.errors import ShapeError, SpecError, ValueInputError
from gategraph.ops import NODES, OpNode, Shape, VecOps, fmt_shape, op_of, same_shape

ROLES = ("input", "memory", "state", "param", "let")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # what a symbol may be called


class Var(VecOps, sp.Symbol):
    """A named vector or matrix symbol. Its shape and role live in the Cell that declares it."""


@dataclass(frozen=True)
class Decl:
    """A declared symbol: its name, shape and role.

    role: "input" (x_t, new every step), "memory" (an input fixed over the sequence, e.g. the encoder
    states attention reads), "state" (the carried value before the step, h_{t-1}), "param", or "let"
    (a name an equation defines at step t).
    """

    var: Var
    shape: Shape
    role: str
    state: str | None = None  # for a carried state's previous value: the state's name
    title: str = ""  # what the name is ("forget gate"), for graphs and slides

    @property
    def name(self) -> str:
        return self.var.name

    @property
    def time(self) -> int | None:
        """0 for values at step t, -1 for carried states read at t-1, None for time-free symbols."""
        return {"input": 0, "let": 0, "state": -1}.get(self.role)


@dataclass(frozen=True)
class Equation:
    """`lhs = rhs`: one line of the step."""

    lhs: Var
    rhs: sp.Basic
    title: str = ""

    @property
    def name(self) -> str:
        return self.lhs.name


@dataclass(frozen=True)
class State:
    """A carried state: `prev` is its value read at t-1, the equation named `name` writes it at t."""

    name: str
    prev: Var
    shape: Shape


@dataclass(frozen=True)
class Cell:
    """One step of a recurrent cell, validated on construction."""

    name: str
    sizes: tuple
    decls: tuple  # of Decl: inputs, memories, state reads and params (lets come from equations)
    states: tuple  # of State
    equations: tuple  # of Equation
    outputs: tuple  # of names
    doc: str = ""
    # a copy the kernel generator renamed into code names (`_bar_f`): those follow no user's naming rule
    coded: bool = field(default=False, repr=False, compare=False)
    shapes: dict = field(init=False, repr=False, compare=False)
    roles: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "shapes", {})
        object.__setattr__(self, "roles", {})
        _validate(self, self.coded)

    # -- lookups --------------------------------------------------------------------------------
    def decl(self, name: str) -> Decl:
        return self._decls_by_name[name]

    @property
    def _decls_by_name(self) -> dict:
        table = {d.name: d for d in self.decls}
        for eq in self.equations:
            table[eq.name] = Decl(eq.lhs, self.shapes[eq.name], "let", title=eq.title)
        return table

    def by_role(self, role: str) -> list[Decl]:
        return [d for d in self.decls if d.role == role]

    @property
    def inputs(self) -> list[Decl]:
        return self.by_role("input") + self.by_role("memory")

    @property
    def params(self) -> list[Decl]:
        return self.by_role("param")

    def equation(self, name: str) -> Equation:
        return find_equation(self.equations, name, f"cell {self.name!r}")

    @property
    def names(self) -> list[str]:
        return [eq.name for eq in self.equations]

    def shape(self, name: str) -> Shape:
        return self.shapes[name]

    def with_sizes(self, **sizes: int) -> dict:
        """The concrete shapes of every symbol for given sizes, e.g. `lstm().with_sizes(X=3, H=2)`."""
        subs = {s: sizes[s.name] for s in self.sizes if s.name in sizes}
        missing = [s.name for s in self.sizes if s.name not in sizes]
        if missing:
            raise SpecError(f"cell {self.name!r} needs sizes {', '.join(missing)}; got {', '.join(sizes) or 'none'}")
        return {n: tuple(int(sp.sympify(d).subs(subs)) for d in shape) for n, shape in self.shapes.items()}

    def bind_sizes(self, arrays: dict) -> dict[str, int]:
        """The sizes (H, X, ...) that the shapes of `arrays` (by symbol name) imply, checking every array.

        A wrong shape is a ValueInputError naming the argument, e.g.
        `value for 'W_f' has shape (2, 4), expected (H, H + X) = (2, 5)`."""
        sizes: dict = {}
        for name, arr in arrays.items():  # in the order given: H from W_f's rows, then X from its H + X columns
            for dim, n in zip(self.shapes[name], arr.shape, strict=False):
                if isinstance(dim, sp.Symbol):
                    sizes.setdefault(dim, n)
                    continue
                unknown = sp.sympify(dim).free_symbols - set(sizes)
                if len(unknown) == 1:
                    (size,) = unknown
                    solved = sp.solve(sp.Eq(sp.sympify(dim).subs(sizes), n), size)
                    if solved and solved[0].is_integer and solved[0] > 0:
                        sizes[size] = int(solved[0])
        for name, arr in arrays.items():
            want = tuple(sp.sympify(d).subs(sizes) for d in self.shapes[name])
            if arr.shape != tuple(int(d) if d.is_number else -1 for d in want):
                shown = self.decl(name).state or name
                raise ValueInputError(f"value for {shown!r} has shape {arr.shape}, expected "
                                      f"{fmt_shape(self.shapes[name])} = {fmt_shape(want)}")
        return {s.name: int(n) for s, n in sizes.items()}

    def check_keys(self, what: str, given, kind: str) -> None:
        """A one-line ValueInputError if `given` (keys of d_final, state0 or d_outputs) names a state or an
        output (`kind`) that this cell does not have: a value for it would be dropped without a word."""
        have = [st.name for st in self.states] if kind == "state" else list(self.outputs)
        unknown = sorted(set(given) - set(have), key=str)
        if unknown:
            raise ValueInputError(f"{what} names {kind} {', '.join(map(repr, unknown))}, which cell {self.name!r} "
                                  f"does not have: its {kind}s are {', '.join(have) or 'none'}")

    def __str__(self) -> str:
        lines = [f"{eq.name} = {eq.rhs}" for eq in self.equations]
        return f"Cell {self.name!r}:\n  " + "\n  ".join(lines)


def find_equation(equations, name: str, owner: str) -> Equation:
    """The equation named `name`, or a SpecError that lists the names there are."""
    for eq in equations:
        if eq.name == name:
            return eq
    raise SpecError(f"{owner} has no equation {name!r}; it has {', '.join(eq.name for eq in equations)}")


def _validate(cell: Cell, coded: bool = False) -> None:
    """Check the declaration in order; fill `cell.shapes` and `cell.roles`. One-line SpecError otherwise."""
    shapes, roles = cell.shapes, cell.roles
    check_name = (lambda name, what: None) if coded else _check_name
    if not isinstance(cell.name, str):
        raise SpecError(f"a cell's name must be text, got {type(cell.name).__name__} {cell.name!r}")
    if not cell.name.strip():
        raise SpecError("a cell needs a name: CellBuilder('my_cell', 'what it does')")
    if not isinstance(cell.doc, str):
        raise SpecError(f"cell {cell.name!r}: its description must be text, got {type(cell.doc).__name__} "
                        f"{cell.doc!r}")
    for size in cell.sizes:
        check_name(size.name, "size")
    size_names = {s.name for s in cell.sizes}
    for d in cell.decls:
        check_name(d.state or d.name, d.role)
        if d.role not in ROLES or d.role == "let":
            raise SpecError(f"symbol {d.name!r}: role must be one of input, memory, state, param; got {d.role!r}")
        if d.name in shapes:
            raise SpecError(f"symbol {d.name!r} is declared twice")
        for dim in d.shape:
            unknown = {s.name for s in sp.sympify(dim).free_symbols} - size_names
            if unknown:
                raise SpecError(f"symbol {d.name!r}: shape {fmt_shape(d.shape)} uses undeclared size "
                                f"{', '.join(sorted(unknown))}")
        shapes[d.name], roles[d.name] = d.shape, d.role
    state_names = {s.name for s in cell.states}
    used: set[str] = set()
    for eq in cell.equations:
        where = f"equation {eq.name!r}"
        if not isinstance(eq.lhs, Var):
            raise SpecError(f"{where}: the left side must be a name, got {eq.lhs!r}")
        check_name(eq.name, "equation")
        if eq.name in shapes:
            what = "a declared symbol" if roles[eq.name] != "let" else "an earlier equation"
            raise SpecError(f"{where}: name {eq.name!r} is assigned twice (it is already {what})")
        for sym in symbols_of(eq.rhs):
            if sym.name not in shapes:
                later = any(e.name == sym.name for e in cell.equations)
                hint = "define it earlier" if later else "declare it as an input, state or parameter"
                raise SpecError(f"{where}: uses {sym.name!r} before it is defined ({hint})")
            used.add(sym.name)
        try:
            shape = infer_shape(eq.rhs, shapes)
        except ShapeError as e:
            raise ShapeError(f"{where}: {e}") from None
        if eq.name in state_names:
            st = next(s for s in cell.states if s.name == eq.name)
            if not same_shape(shape, st.shape):
                raise ShapeError(f"{where}: updates state {eq.name!r} of shape {fmt_shape(st.shape)} "
                                 f"with a value of shape {fmt_shape(shape)}")
        shapes[eq.name], roles[eq.name] = shape, "let"
    for st in cell.states:
        if st.name not in shapes or roles[st.name] != "let":
            raise SpecError(f"state {st.name!r} is never updated: add an equation named {st.name!r}")
    for d in cell.decls:
        if d.name not in used:
            raise SpecError(f"{d.role} {d.name!r} is never used by any equation (remove it or use it)")
    for name in cell.outputs:
        if roles.get(name) != "let":
            raise SpecError(f"output {name!r} is not an equation of cell {cell.name!r}")
    if not cell.outputs:
        raise SpecError(f"cell {cell.name!r} has no outputs")


def _check_name(name, what: str) -> None:
    """A declared name is letters, digits and '_', starting with a letter: it is printed in LaTeX, drawn,
    and becomes a kernel's variable; the derivation's own names (`bar:f`) hold a colon, so they can never
    be one of these."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        what = {"param": "parameter"}.get(what, what)
        raise SpecError(f"{what} name {name!r}: a name is letters, digits and '_', starting with a letter "
                        "(W_f, h_tilde)")


def symbols_of(expr) -> list[Var]:
    """The symbols an expression reads, in first-use order."""
    found: dict[str, Var] = {}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, Var):
            found.setdefault(node.name, node)
    return list(found.values())


def infer_shape(expr, shapes: dict) -> Shape:
    """The shape of an expression from the shapes of its symbols and the ops' shape rules."""
    if isinstance(expr, Var):
        return shapes[expr.name]
    if expr.is_number or is_size(expr):
        return ()
    if isinstance(expr, sp.Symbol):
        raise ShapeError(f"{expr} is a plain SymPy symbol: declare it with CellBuilder.input/state/param")
    op = op_of(expr)
    if op is None:
        raise ShapeError(f"{expr} is not built from gategraph ops (use sigmoid, tanh, @, concat, ...)")
    values = len(expr.args) - op.sizes  # the last `op.sizes` arguments are sizes, passed as they are
    return op.shape(*(infer_shape(a, shapes) for a in expr.args[:values]), *expr.args[values:])


def is_size(expr) -> bool:
    """A size or an expression in sizes (H, H + X, 1/H): a number as far as shapes go."""
    return (op_of(expr) is None and bool(expr.free_symbols)
            and all(not isinstance(s, Var) and s.is_integer and s.is_positive for s in expr.free_symbols))


class CellBuilder:
    """Declare a cell in a few lines:

    >>> b = CellBuilder("rnn")
    >>> X, H = b.sizes("X H")
    >>> x, h = b.input("x", X), b.state("h", H)
    >>> W, bias = b.param("W", (H, H + X)), b.param("b", H)
    >>> _ = b.let("h", tanh(W @ concat(h, x) + bias))
    >>> print(b.cell())
    Cell 'rnn':
      h = Tanh(Plus(MatMul(W, Concat(h_prev, x)), b))
    """

    def __init__(self, name: str, doc: str = ""):
        self.name, self.doc = name, doc
        self._sizes: list[sp.Symbol] = []
        self._decls: list[Decl] = []
        self._states: list[State] = []
        self._equations: list[Equation] = []

    def sizes(self, names: str):
        syms = sp.symbols(names, integer=True, positive=True, seq=True)
        self._sizes.extend(syms)
        return syms if len(syms) > 1 else syms[0]

    def _declare(self, name, shape, role, **kw) -> Var:
        shape = shape if isinstance(shape, tuple) else (shape,)
        var = Var(name)
        self._decls.append(Decl(var, tuple(sp.sympify(s) for s in shape), role, **kw))
        return var

    def input(self, name: str, shape, title: str = "") -> Var:
        """x_t: a new value every step."""
        return self._declare(name, shape, "input", title=title)

    def memory(self, name: str, shape, title: str = "") -> Var:
        """An input fixed over the sequence (e.g. the S encoder states that attention reads)."""
        return self._declare(name, shape, "memory", title=title)

    def state(self, name: str, shape, title: str = "") -> Var:
        """A carried state (zero before the first step unless given); returns its previous value
        (h_{t-1}); `let(name, ...)` writes h_t."""
        var = self._declare(f"{name}_prev", shape, "state", state=name, title=title)
        self._states.append(State(name, var, self._decls[-1].shape))
        return var

    def param(self, name: str, shape, title: str = "") -> Var:
        return self._declare(name, shape, "param", title=title)

    def let(self, name: str, expr, title: str = "") -> Var:
        """`name = expr` at step t; returns the new name for use in later equations."""
        var = Var(name)
        self._equations.append(Equation(var, expr, title))
        return var

    def cell(self, outputs=None) -> Cell:
        outputs = tuple(outputs) if outputs else (self._states[0].name,) if self._states else ()
        return Cell(self.name, tuple(self._sizes), tuple(self._decls), tuple(self._states),
                    tuple(self._equations), outputs, self.doc)


# user-facing lowercase spellings of the ops, as a cell is written on a slide (a / b is Python's own `/`)
sigmoid, tanh, relu, exp = NODES["Sigmoid"], NODES["Tanh"], NODES["Relu"], NODES["Exp"]
concat, softmax, dot, transpose = NODES["Concat"], NODES["Softmax"], NODES["Dot"], NODES["Transpose"]
rowplus = NODES["RowPlus"]
sqrt, log, absolute, maximum, minimum = NODES["Sqrt"], NODES["Log"], NODES["Abs"], NODES["Maximum"], NODES["Minimum"]
mean = NODES["Mean"]

__all__ = ["Cell", "CellBuilder", "Decl", "Equation", "OpNode", "State", "Var", "absolute", "concat", "dot", "exp",
           "infer_shape", "log", "maximum", "mean", "minimum", "relu", "rowplus", "sigmoid", "softmax", "sqrt",
           "tanh", "transpose"]
