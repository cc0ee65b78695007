"""The op vocabulary of gategraph: the one extension point.

Every op is one `Op` record, registered with `defop`, holding everything the pipeline needs from it:

- how it prints (a LaTeX and a plain-text template, and how tightly it binds);
- its shape rule (argument shapes -> result shape, a `ShapeError` otherwise);
- how it differentiates: a pointwise op gives its scalar form in SymPy (`scalar`), and SymPy's `diff`
  does the rest; a structural op (matrix product, concatenation, softmax, ...) gives a vector-level
  VJP rule (`vjp`), one line per argument;
- how it evaluates on NumPy arrays (float arrays, or object arrays of exact SymPy numbers);
- how it lowers to a kernel (`Kernel`): the function the generated code calls on one entry, or the
  strategy of the kernel generator that computes it (a GEMM, a contraction, the softmax loop, ...).

Expressions are SymPy trees whose nodes are `OpNode` subclasses, one per op, built by Python operators
in the order they are written (`(1 - z) * h` stays `(1 - z) ⊙ h`; SymPy never reorders it).

Adding an op (say `swish`) touches only this file: one `pointwise(...)` or `structural(...)` line. The tests
parametrize over `OPS`.

Imports: sympy, numpy, gategraph.errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np
import sympy as sp

from gategraph.errors import ShapeError

Shape = tuple  # of SymPy size expressions: () scalar, (n,) vector, (m, n) matrix


# --- scalar functions that SymPy differentiates in the compact form ---------------------------------


class sigma(sp.Function):
    """The logistic function σ(a) = 1 / (1 + e^{-a}), with σ' = σ(1 - σ) (compact and NaN-free)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return self * (1 - self)

    @classmethod
    def eval(cls, a):
        if a.is_Float:
            return 1 / (1 + sp.exp(-a))
        if a.is_zero:
            return sp.Rational(1, 2)
        return None

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return 1 / (1 + sp.exp(-a))

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)

    # 0 < σ(a) < 1 for real a: SymPy need not evaluate σ numerically to know its sign
    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_extended_positive(self):
        return self.args[0].is_extended_real

    def _eval_is_zero(self):
        return False if self.args[0].is_extended_real else None


class step(sp.Function):
    """The unit step: 1 for a > 0, else 0 (the derivative of ReLU; 0 at a = 0 by convention)."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if a.is_extended_real and a.is_number:
            return sp.S.One if a > 0 else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero


class relu(sp.Function):
    """ReLU(a) = max(0, a), with ReLU'(a) = step(a)."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if a.is_extended_real and a.is_number:
            return a if a > 0 else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return step(self.args[0])


class sign(sp.Function):
    """sign(a): 1 for a > 0, -1 for a < 0, 0 at 0 (the derivative of |a|; 0 at a = 0 by convention)."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if a.is_extended_real and a.is_number:
            return sp.sign(a)
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero


class absolute(sp.Function):
    """|a|, with |a|' = sign(a) (SymPy's own Abs differentiates through re and im of a complex symbol)."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if a.is_extended_real and a.is_number:
            return abs(a)
        return None

    def fdiff(self, argindex=1):
        return sign(self.args[0])


class maximum(sp.Function):
    """max(a, b), with ∂/∂a = step(a - b) and ∂/∂b = 1 - step(a - b): at a tie the gradient goes to b."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_extended_real and b.is_extended_real and a.is_number and b.is_number:
            return a if a > b else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return step(a - b) if argindex == 1 else 1 - step(a - b)


class minimum(sp.Function):
    """min(a, b), with ∂/∂a = step(b - a) and ∂/∂b = 1 - step(b - a): at a tie the gradient goes to b."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_extended_real and b.is_extended_real and a.is_number and b.is_number:
            return a if a < b else b
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return step(b - a) if argindex == 1 else 1 - step(b - a)


# NumPy versions of the scalar functions above, for `sympy.lambdify(expr, modules=[NUMPY_SCALARS, "numpy"])`
NUMPY_SCALARS = {
    "sigma": lambda a: 1 / (1 + np.exp(-a)),
    "step": lambda a: (a > 0) * 1.0,
    "relu": lambda a: np.maximum(a, 0),
    "sign": np.sign,
    "absolute": np.abs,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


# --- expression nodes -----------------------------------------------------------------------------


def _is_number(x) -> bool:
    return isinstance(x, int | float) or (isinstance(x, sp.Basic) and x.is_number)


def _as_arg(x):
    return sp.sympify(x) if _is_number(x) else x


class VecOps:
    """Python operators on vector expressions: they build op nodes in the order written."""

    _op_priority = 20.0  # above SymPy's own, so `1 - z` reaches our __rsub__

    def __add__(self, other):
        return Plus(self, _as_arg(other))

    def __radd__(self, other):
        return Plus(_as_arg(other), self)

    def __sub__(self, other):
        return Minus(self, _as_arg(other))

    def __rsub__(self, other):
        return Minus(_as_arg(other), self)

    def __mul__(self, other):
        return Scale(_as_arg(other), self) if _is_number(other) else Hadamard(self, other)

    def __rmul__(self, other):
        return Scale(_as_arg(other), self) if _is_number(other) else Hadamard(other, self)

    def __truediv__(self, other):
        return Scale(1 / sp.sympify(other), self) if _is_number(other) else Divide(self, other)

    def __rtruediv__(self, other):
        return Divide(_as_arg(other), self)

    def __neg__(self):
        return Scale(sp.S.NegativeOne, self)

    def __matmul__(self, other):
        return MatMul(self, other)

    def __rmatmul__(self, other):
        return MatMul(other, self)

    @property
    def T(self):
        return Transpose(self)


class OpNode(VecOps, sp.Function):
    """A node of a vector-level expression; `type(node).op` is its `Op` record. Never auto-evaluates."""

    op: Op

    @classmethod
    def eval(cls, *args):
        return None

    # SymPy printers try these methods before dispatching on the class name, so an op named like a
    # SymPy class (MatMul, Transpose) never reaches SymPy's own printer for that class.
    def _sympystr(self, printer):
        own = getattr(printer, "_print_OpNode", None)
        return own(self) if own else f"{type(self).__name__}({', '.join(printer._print(a) for a in self.args)})"

    _latex = _sympystr


# --- the op record and the registry ---------------------------------------------------------------


class Strategy(Enum):
    """How the kernel generator (gategraph.lower) computes an op."""

    ARITHMETIC = "arithmetic"  # pointwise: SymPy's printer writes the scalar form (+, -, ⊙, ², /, √)
    CALL = "call"  # pointwise: one function call per entry, `Kernel.call`
    ENTRYWISE = "entrywise"  # each entry is made of entries of the arguments: `Kernel.rule(at, idx, *sizes)`
    CONTRACTION = "contraction"  # out[idx] = finish(Σ_s term), a loop per entry: `Kernel.rule`, `Kernel.finish`
    GEMM = "gemm"  # a BLAS GEMM when the matrix is a parameter, else a contraction (`Kernel.rule`)
    SOFTMAX = "softmax"  # the max-shifted exponentials and their sum, one vector per sequence
    CONCAT = "concat"  # the parts written side by side into one buffer


@dataclass(frozen=True)
class Kernel:
    """An op's kernel form.

    call: CALL only: the generated code's call on one entry, a template over the printed arguments
        (`"_sigmoid({0})"`: gategraph.helpers defines `_sigmoid`, `_tanh`, `_exp`, `_step`, `_relu`; NumPy's
        and Python's own scalar functions need nothing defined).
    rule: ENTRYWISE: `rule(at, idx, *sizes)` -> the SymPy scalar of the result at `idx`, where `at(k, i)` is
        the scalar of argument k at index `i` (a tuple of index symbols or expressions);
        CONTRACTION, GEMM: `rule(at, idx, s, shapes)` -> (the length of the sum, its term at summation index s).
    finish: CONTRACTION: the result from the accumulated sum, `finish(acc, shapes)` (a mean divides it).
    """

    strategy: Strategy
    call: str = ""
    rule: Callable | None = None
    finish: Callable | None = None


ARITHMETIC = Kernel(Strategy.ARITHMETIC)


@dataclass(frozen=True, eq=False)  # an op is itself: compared and hashed by identity
class Op:
    """Everything the pipeline needs from one op.

    latex, text: templates over the printed arguments `{0}`, `{1}`, ...
    prec: how tightly the printed form binds; an argument binding less tightly than `arg_prec[i]`
        is put in parentheses.
    shape: argument shapes -> result shape; raises ShapeError.
    kind: "pointwise" (one loop over units), "affine" (BLAS), or "reduction" (loops over a memory).
    scalar: pointwise ops only: the op on scalar SymPy arguments; derivatives come from `sp.diff`.
    vjp: structural ops: (bar, out, args, shapes) -> one adjoint expression per argument (None: no flow).
    numpy: evaluation on NumPy arrays (float, or object arrays of SymPy numbers for exact arithmetic).
    glyph: the op's mark in a drawn graph.
    kernel: how the kernel generator computes it (`Kernel`; None: it cannot, and says so at `compile`).
    sizes: how many of the last arguments are sizes (a slice's bounds, a length), not values.
    positive: defined for positive arguments only (log, √, a divisor): tests draw them there.
    latex_arg_prec: `arg_prec` for the LaTeX template where it differs (a fraction needs no parentheses).
    """

    name: str
    arity: int
    latex: str
    text: str
    prec: int
    arg_prec: tuple
    shape: Callable
    kind: str
    numpy: Callable
    scalar: Callable | None = None
    vjp: Callable | None = None
    doc: str = ""
    glyph: str = ""  # the op's mark in a graph node: σ, ⊙, +, ...
    kernel: Kernel = ARITHMETIC
    sizes: int = 0
    positive: bool = False
    latex_arg_prec: tuple | None = None

    @property
    def node(self) -> type[OpNode]:
        return NODES[self.name]


OPS: dict[str, Op] = {}
NODES: dict[str, type[OpNode]] = {}


def defop(op: Op) -> type[OpNode]:
    """Register `op` and return its SymPy node class (named after the op)."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is defined twice")
    node = type(op.name, (OpNode,), {"nargs": op.arity, "op": op, "__doc__": op.doc})
    OPS[op.name] = op
    NODES[op.name] = node
    return node


def op_of(expr) -> Op | None:
    """The Op of an expression node, or None for a symbol or a number."""
    return getattr(type(expr), "op", None)


# --- shape rules ------------------------------------------------------------------------------------


def fmt_shape(shape: Shape) -> str:
    """`(H,)`, `(H, H + X)`, `()` — as a user writes them."""
    inner = ", ".join(str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def same_size(a, b) -> bool:
    return sp.expand(sp.sympify(a) - sp.sympify(b)) == 0


def same_shape(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(same_size(x, y) for x, y in zip(a, b, strict=True))


def _pointwise_shape(name):
    def rule(*shapes):
        full = [s for s in shapes if s != ()]
        for s in full[1:]:
            if not same_shape(s, full[0]):
                raise ShapeError(f"{name} needs equal shapes, got {fmt_shape(full[0])} and {fmt_shape(s)}")
        return full[0] if full else ()

    return rule


def _matmul_shape(a, b):
    if len(a) != 2 or len(b) not in (1, 2):
        raise ShapeError(f"MatMul needs a matrix times a vector or a matrix, got {fmt_shape(a)} and {fmt_shape(b)}")
    if not same_size(a[1], b[0]):
        raise ShapeError(
            f"MatMul needs {fmt_shape(a)} times ({a[1]}, ...), got {fmt_shape(a)} times {fmt_shape(b)}"
        )
    return (a[0],) + tuple(b[1:])


def _vectors(name, *shapes):
    for s in shapes:
        if len(s) != 1:
            raise ShapeError(f"{name} needs vectors, got {fmt_shape(s)}")


def _concat_shape(a, b):
    _vectors("Concat", a, b)
    return (a[0] + b[0],)


def _dot_shape(a, b):
    _vectors("Dot", a, b)
    if not same_size(a[0], b[0]):
        raise ShapeError(f"Dot needs vectors of one length, got {fmt_shape(a)} and {fmt_shape(b)}")
    return ()


def _outer_shape(a, b):
    _vectors("Outer", a, b)
    return (a[0], b[0])


def _transpose_shape(a):
    if len(a) != 2:
        raise ShapeError(f"Transpose needs a matrix, got {fmt_shape(a)}")
    return (a[1], a[0])


def _softmax_shape(a):
    _vectors("Softmax", a)
    return a


def _rowplus_shape(a, v):
    if len(a) != 2 or len(v) != 1 or not same_size(a[1], v[0]):
        raise ShapeError(f"RowPlus needs a (S, K) matrix and a (K,) vector, got {fmt_shape(a)} and {fmt_shape(v)}")
    return a


def _colsum_shape(a):
    if len(a) != 2:
        raise ShapeError(f"ColSum needs a matrix, got {fmt_shape(a)}")
    return (a[1],)


def _sum_shape(a):
    _vectors("Sum", a)
    return ()


def _slice_shape(a, start, stop):
    _vectors("Slice", a)
    return (stop - start,)


def _mean_shape(a):
    _vectors("Mean", a)
    return ()


def _fill_shape(s, n):
    if s != ():
        raise ShapeError(f"Fill needs a scalar, got {fmt_shape(s)}")
    return (n,)


# --- numeric evaluation (float arrays, or object arrays of exact SymPy numbers) ------------------


def _exp(a):
    return np.vectorize(sp.exp, otypes=[object])(a) if a.dtype == object else np.exp(a)


def _sigmoid(a):
    return np.where(a >= 0, 1 / (1 + np.exp(-np.abs(a))), np.exp(-np.abs(a)) / (1 + np.exp(-np.abs(a))))


def _softmax(s):
    e = _exp(s) if s.dtype == object else np.exp(s - s.max())  # exact arithmetic cannot overflow
    return e / e.sum()


def _slice(a, start, stop):
    return a[int(start) : int(stop)]


def _fill(s, n):
    return np.repeat(np.asarray(s)[None], int(n))  # keeps exact SymPy numbers as objects


# --- kernel forms of the structural ops: the SymPy scalar of one entry, `at(k, i)` reading argument k ------


def _matmul_entry(at, i, s, shapes):
    return shapes[0][-1], at(0, i[:1] + (s,)) * at(1, (s,) + i[1:])


def _dot_entry(at, i, s, shapes):
    return shapes[0][0], at(0, (s,)) * at(1, (s,))


def _sum_entry(at, i, s, shapes):  # Σ_s v[s]; Σ_s A[s, k] for the column sums
    return shapes[0][0], at(0, (s,) + i)


def _slice_entry(at, i, start, stop):
    return at(0, i[:-1] + (i[-1] + start,))


# --- the ops ----------------------------------------------------------------------------------------

FUNC, ATOM, PROD, MUL, ADD = 100, 100, 30, 20, 10  # binding strengths of printed forms


def pointwise(name, arity, latex, text, glyph, scalar, numpy, prec=FUNC, arg_prec=None, doc="", call="",
              positive=False, latex_arg_prec=None):
    """Register an elementwise op: its scalar SymPy form gives its derivative through `sp.diff`. `call`: the
    kernel's call on one entry (`"np.log({0})"`) when the scalar form is a function SymPy does not print
    as arithmetic."""
    kernel = Kernel(Strategy.CALL, call=call) if call else ARITHMETIC
    return defop(Op(name, arity, latex, text, prec, arg_prec or (0,) * arity, _pointwise_shape(name),
                    "pointwise", numpy, scalar=scalar, glyph=glyph, doc=doc, kernel=kernel, positive=positive,
                    latex_arg_prec=latex_arg_prec))


def structural(name, arity, latex, text, glyph, shape, kind, numpy, vjp=None, prec=FUNC, arg_prec=None, doc="",
               kernel=None, sizes=0, latex_arg_prec=None):
    """Register an op that mixes units (a product, a concatenation, a softmax): it brings its own VJP rule,
    `vjp(bar, out, args, shapes)` -> one adjoint expression per argument, and its kernel form."""
    return defop(Op(name, arity, latex, text, prec, arg_prec or (0,) * arity, shape, kind, numpy,
                    vjp=vjp, glyph=glyph, doc=doc, kernel=kernel, sizes=sizes, latex_arg_prec=latex_arg_prec))


# elementwise: name, arity, LaTeX, text, glyph, scalar form, NumPy (, the kernel's call)
Sigmoid = pointwise("Sigmoid", 1, r"\sigma({0})", "σ({0})", "σ", sigma, _sigmoid, doc="σ(a)", call="_sigmoid({0})")
Tanh = pointwise("Tanh", 1, r"\tanh({0})", "tanh({0})", "tanh", sp.tanh, np.tanh, doc="tanh(a)", call="_tanh({0})")
Relu = pointwise("Relu", 1, r"\operatorname{{ReLU}}({0})", "ReLU({0})", "ReLU", relu, lambda a: np.maximum(a, 0),
                 doc="max(0, a)", call="_relu({0})")
Exp = pointwise("Exp", 1, r"\exp({0})", "exp({0})", "exp", sp.exp, np.exp, doc="e^a", call="_exp({0})")
Hadamard = pointwise("Hadamard", 2, r"{0} \odot {1}", "{0} ⊙ {1}", "⊙", lambda a, b: a * b, np.multiply,
                     MUL, (MUL, MUL), doc="a ⊙ b, the elementwise product (associative: no parentheses)")
Plus = pointwise("Plus", 2, "{0} + {1}", "{0} + {1}", "+", lambda a, b: a + b, np.add,
                 ADD, (ADD, ADD + 1), doc="a + b (a scalar broadcasts)")
Minus = pointwise("Minus", 2, "{0} - {1}", "{0} - {1}", "−", lambda a, b: a - b, np.subtract,
                  ADD, (ADD, ADD + 1), doc="a - b (a scalar broadcasts: `1 - z` is Minus(1, z))")
Square = pointwise("Square", 1, "{0}^2", "{0}²", "²", lambda a: a**2, np.square, FUNC, (ATOM,),
                   doc="a², elementwise (tanh' = 1 - tanh²)")
Step = pointwise("Step", 1, r"\mathbb{{1}}[{0} > 0]", "1[{0} > 0]", "1[>0]", step, lambda a: (a > 0).astype(float),
                 doc="1 where a > 0, else 0 (the derivative of ReLU)", call="_step({0})")
Scale = pointwise("Scale", 2, "{0} {1}", "{0} {1}", "×", lambda c, a: c * a, np.multiply,
                  MUL, (FUNC, MUL + 1), doc="c a, a vector scaled by a scalar")
Divide = pointwise("Divide", 2, r"\frac{{{0}}}{{{1}}}", "{0} / {1}", "÷", lambda a, b: a / b, np.divide,
                   MUL, (MUL, MUL + 1), doc="a / b, elementwise (a scalar broadcasts)", positive=True,
                   latex_arg_prec=(0, 0))
Sqrt = pointwise("Sqrt", 1, r"\sqrt{{{0}}}", "√({0})", "√", sp.sqrt, np.sqrt, doc="√a, elementwise (a > 0)",
                 positive=True, latex_arg_prec=(0,))  # a power: SymPy's printer writes np.sqrt
Log = pointwise("Log", 1, r"\log({0})", "log({0})", "log", sp.log, np.log, doc="ln a, elementwise (a > 0)",
                call="np.log({0})", positive=True)
Abs = pointwise("Abs", 1, r"\lvert {0} \rvert", "|{0}|", "|·|", absolute, np.abs, doc="|a|, elementwise",
                call="abs({0})")
Sign = pointwise("Sign", 1, r"\operatorname{{sign}}({0})", "sign({0})", "sign", sign, np.sign,
                 doc="-1, 0 or 1 as a < 0, = 0, > 0 (the derivative of |a|)", call="np.sign({0})")
Maximum = pointwise("Maximum", 2, r"\max({0}, {1})", "max({0}, {1})", "max", maximum, np.maximum,
                    doc="max(a, b), elementwise", call="max({0}, {1})")
Minimum = pointwise("Minimum", 2, r"\min({0}, {1})", "min({0}, {1})", "min", minimum, np.minimum,
                    doc="min(a, b), elementwise", call="min({0}, {1})")


# structural: name, arity, LaTeX, text, glyph, shape rule, kind, NumPy, VJP rule (bar, out, args, shapes)
def transposed(A):
    """Aᵀ, simplified: (Aᵀ)ᵀ = A, (A · B)ᵀ = Bᵀ · Aᵀ, (a bᵀ)ᵀ = b aᵀ."""
    op = op_of(A)
    if op is not None and op.name == "Transpose":
        return A.args[0]
    if op is not None and op.name == "MatMul" and len(A.args) == 2:
        return MatMul(transposed(A.args[1]), transposed(A.args[0]))
    if op is not None and op.name == "Outer":
        return Outer(A.args[1], A.args[0])
    return Transpose(A)


def _matmul_vjp(bar, out, args, shapes):
    A, B = args
    bar_A = Outer(bar, B) if len(shapes[1]) == 1 else MatMul(bar, transposed(B))
    return bar_A, MatMul(transposed(A), bar)


def _concat_vjp(bar, out, args, shapes):
    n_a, n_b = shapes[0][0], shapes[1][0]
    return Slice(bar, 0, n_a), Slice(bar, n_a, n_a + n_b)


MatMul = structural("MatMul", 2, r"{0} \cdot {1}", "{0} · {1}", "·", _matmul_shape, "affine",
                    lambda A, B: A @ B, _matmul_vjp, PROD, (FUNC, PROD), doc="A · v or A · B",
                    kernel=Kernel(Strategy.GEMM, rule=_matmul_entry))
Transpose = structural("Transpose", 1, r"{0}^\top", "{0}ᵀ", "ᵀ", _transpose_shape, "affine",
                       lambda A: A.T, lambda bar, out, args, shapes: (transposed(bar),), arg_prec=(FUNC,), doc="Aᵀ",
                       kernel=Kernel(Strategy.ENTRYWISE, rule=lambda at, i: at(0, i[::-1])))
Concat = structural("Concat", 2, "[{0}, {1}]", "[{0}, {1}]", "[ , ]", _concat_shape, "affine",
                    lambda a, b: np.concatenate([a, b]), _concat_vjp, doc="[a, b], two vectors stacked",
                    kernel=Kernel(Strategy.CONCAT))
Slice = structural("Slice", 3, "[{0}]_{{{1}:{2}}}", "{0}[{1}:{2}]", "[:]", _slice_shape, "affine",
                   _slice, doc="v[start:stop], the part of a concatenation's adjoint that goes to one operand",
                   kernel=Kernel(Strategy.ENTRYWISE, rule=_slice_entry), sizes=2)
Outer = structural("Outer", 2, r"{0} {1}^\top", "{0} {1}ᵀ", "⊗", _outer_shape, "affine", np.outer,
                   lambda bar, out, args, shapes: (MatMul(bar, args[1]), MatMul(transposed(bar), args[0])),
                   PROD, (FUNC, FUNC), doc="a bᵀ, the gradient of the matrix in a matrix-vector product",
                   kernel=Kernel(Strategy.ENTRYWISE, rule=lambda at, i: at(0, i[:1]) * at(1, i[1:])))
Dot = structural("Dot", 2, r"{0}^\top {1}", "{0}ᵀ {1}", "·ᵀ", _dot_shape, "reduction", lambda a, b: a @ b,
                 lambda bar, out, args, shapes: (Scale(bar, args[1]), Scale(bar, args[0])),
                 PROD, (FUNC, PROD + 1), doc="aᵀ b", kernel=Kernel(Strategy.CONTRACTION, rule=_dot_entry))
Softmax = structural("Softmax", 1, r"\operatorname{{softmax}}({0})", "softmax({0})", "softmax", _softmax_shape,
                     "reduction", _softmax,
                     lambda bar, out, args, shapes: (Hadamard(out, Minus(bar, Dot(out, bar))),),
                     doc="e^{s_i} / Σ_j e^{s_j}; its VJP is p ⊙ (p̄ - pᵀ p̄)", kernel=Kernel(Strategy.SOFTMAX))
RowPlus = structural("RowPlus", 2, r"{0} + \mathbf{{1}} {1}^\top", "{0} + 1 {1}ᵀ", "+ 1ᵀ", _rowplus_shape,
                     "affine", lambda A, v: A + v[None, :], lambda bar, out, args, shapes: (bar, ColSum(bar)),
                     ADD, (ADD, FUNC), doc="A + 1 vᵀ, v added to every row of A (additive attention)",
                     kernel=Kernel(Strategy.ENTRYWISE, rule=lambda at, i: at(0, i) + at(1, i[1:])))
ColSum = structural("ColSum", 1, r"{0}^\top \mathbf{{1}}", "{0}ᵀ 1", "Σ rows", _colsum_shape, "reduction",
                    lambda A: A.sum(axis=0), prec=PROD, arg_prec=(FUNC,),
                    doc="Aᵀ 1, the sums of A's columns, as a column (the adjoint of RowPlus)",
                    kernel=Kernel(Strategy.CONTRACTION, rule=_sum_entry))
Fill = structural("Fill", 2, r"{0} \mathbf{{1}}_{{{1}}}", "{0} 1_{1}", "1_n", _fill_shape, "affine", _fill,
                  lambda bar, out, args, shapes: (Sum(bar), None), PROD, (FUNC, ATOM),
                  doc="s 1_n, a scalar repeated n times (what the adjoint of a sum sends to every entry)",
                  kernel=Kernel(Strategy.ENTRYWISE, rule=lambda at, i, n: at(0, ())), sizes=1,
                  latex_arg_prec=(MUL, ATOM))  # a fraction before 1_n needs no parentheses
Sum = structural("Sum", 1, r"\mathbf{{1}}^\top {0}", "1ᵀ {0}", "Σ", lambda a: _sum_shape(a), "reduction",
                 lambda a: a.sum(), lambda bar, out, args, shapes: (Fill(bar, shapes[0][0]),),
                 prec=PROD, arg_prec=(PROD + 1,),
                 doc="1ᵀ v, the sum of a vector's entries (what a scalar broadcast over a vector gets back)",
                 kernel=Kernel(Strategy.CONTRACTION, rule=_sum_entry))
Mean = structural("Mean", 1, r"\operatorname{{mean}}({0})", "mean({0})", "mean", _mean_shape, "reduction",
                  lambda a: a.sum() / a.shape[0],
                  lambda bar, out, args, shapes: (Fill(Divide(bar, shapes[0][0]), shapes[0][0]),),
                  doc="(1/n) 1ᵀ v, the mean of a vector's n entries (LayerNorm's centre and variance)",
                  kernel=Kernel(Strategy.CONTRACTION, rule=_sum_entry, finish=lambda acc, shapes: acc / shapes[0][0]))
