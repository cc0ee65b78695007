"""Lowering: a cell and its adjoint become the source of one Python module of Numba kernels.

`lower(cell, dtype)` returns that source as text. It holds two `@njit` functions, each one whole pass over a
batch of time-major sequences:

- `forward(inputs..., memories..., states0..., params..., sizes...)` runs the equations for t = 0 .. T-1
  and returns the tape: every value of every step;
- `backward(tape..., inputs..., memories..., params..., seeds..., finals..., sizes..., input_grads)` runs the
  adjoint (gategraph.derive) for t = T-1 .. 0, the reverse scan, and returns the gradients; with `input_grads`
  false it leaves out what only the per-step inputs' gradients read (their buffers are then not written).

How the equations become loops (docs/architecture.md, "From cell to kernel", has the whole picture):

- Each product `W · [h_{t-1}, x_t]` of a parameter matrix and a vector is split at the concatenation into
  blocks, `W[:, :H] · h_{t-1} + W[:, H:] · x_t`. Blocks that multiply the same vector are stacked into one
  matrix and done as one GEMM over the batch: for the LSTM, one GEMM per step for the four gates' h_{t-1}
  blocks, and one GEMM over all steps for their x_t blocks, before the time loop. Where each gate only ever
  adds the two (the LSTM's), each step's GEMM adds its products into the rows of the x_t blocks' (β = 1).
- In the adjoint, a sum `Σ_g W_gᵀ ā_g` is one GEMM `[ā_1, ā_2, ...] · [W_1; W_2; ...]`; the ā_g are written
  straight into the columns of one buffer. A slice of such a sum (`bar_x = bar_z[H:H+X]`) is the same sum
  over the slices of the W_g, so a gradient nothing in the recurrence needs (`bar_x`) becomes one GEMM over
  all steps after the loop.
- A parameter's gradient Σ_t ā_t zᵀ_t is one GEMM over all steps and the batch at the end, stacked over the
  parameters that share z.
- Everything elementwise is one loop per equation, its scalar form printed from SymPy after common
  subexpression elimination, with every number written in the kernel's dtype (a bare `1.0` would turn
  float32 arithmetic into float64).
- Anything else (a product with a memory, a softmax, a dot product) gets plain loops per sequence.
- What is the same at every step (a part whose leaves are only memories and parameters, as the keys M · U_aᵀ)
  is computed once, before the time loop. A gradient summed over the steps has the sum moved inside every op
  that is linear in its per-step parts, Σ_t P_t U_a = (Σ_t P_t) U_a, so such a product also runs once.

Names: the generated code never uses a declared name as it is where it could clash with Python or with
the generator's own names. Every name is mapped one to one to its name in the code (`code_names`): a
declared name stays as written unless it is a keyword, a builtin, starts with '_' or is one of the module's
globals (`np`, `DT`, `forward`, ...), when it becomes `_u_<name>`; a variable of the adjoint becomes
`_<role>_<name>` (`_bar_f`, `_pre_f`, `_dl_h`, `_carry_C`), an initial state `_init_<name>` and the gradient
of a final state `_final_<name>`. The generator's own names (`_T`, `_t`, `_m0`, `_g_W`, ...) start with '_'
and none of these prefixes, so a gate may be called `_T`, `np`, `h_init` or `bar_x`.

Which of these an op gets is written in its entry of the op table (`Op.kernel`, gategraph.ops): the function
its scalar form calls, or the strategy that computes it (a GEMM, a contraction, the softmax loop, ...). This
module dispatches on that and never on an op's name, except where the IR itself is rewritten around products
of parameter matrices: sums (Plus) of them, concatenations (Concat) that split them, slices (Slice) pushed into
them, transposed parameters (Transpose), and outer products (Outer) that become weight-gradient GEMMs.

Imports: sympy, gategraph.ops, gategraph.spec, gategraph.derive, gategraph.errors, gategraph.helpers.
The generated source imports numpy, numba and the helper module of its dtype (gategraph.helpers: exp, tanh, σ,
copies, the NaN check of one array); this module imports neither numpy nor numba.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from enum import Enum

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from gategraph import helpers
from gategraph.derive import Adjoint, Role, derive
from gategraph.errors import SpecError
from gategraph.ops import OPS, Op, Strategy, op_of
from gategraph.plan import DTYPES
from gategraph.spec import Cell, Decl, Equation, State, Var, infer_shape

INPUT_GRADS = "_input_grads"  # backward's last argument: make the per-step inputs' gradients (a bool)
# LLVM may reassociate, contract to FMA and use approximate reciprocals; NaN and inf keep their meaning
FASTMATH = '{"nsz", "arcp", "contract", "afn", "reassoc"}'
T_, B_ = sp.Symbol("_T"), sp.Symbol("_B")  # the sequence length and the batch size, in generated code
RESERVED = {"np", "numba", "njit", "DT", "forward", "backward"} | set(dir(builtins))
_ONE_STEP = re.compile(r"\w+(\[_t( \+ \d+)?\]|\[_t \* _B:\(_t \+ 1\) \* _B\])?")  # generated source of a whole
# buffer or of one step's rows (of a (T, B, n) buffer, or of a flat (T·B, n) one)


# --- the IR: vector expressions with parameter blocks made explicit ---------------------------------------

# the ops the IR itself rewrites around parameter products
PLUS, CONCAT, SLICE, OUTER, TRANSPOSE = (OPS[n] for n in ("Plus", "Concat", "Slice", "Outer", "Transpose"))


class Kind(Enum):
    """The IR's own node kinds. Every other node is an op of the table: its `N.op` is that `Op`."""

    LEAF = "leaf"  # args: (name,), a value the kernel stores or is passed
    NUM = "num"  # args: (number,)
    SIZE = "size"  # args: (size expression,), read as a number
    STEPS = "steps"  # args: (node,): Σ_t node, one value per sequence
    GEMM = "Gemm"  # args: (operand, Block): a block of a parameter matrix times a vector, by BLAS
    GEMM_SUM = "GemmSum"  # args: ((operand, Block), ...): a sum of such products, one BLAS call


PRODUCTS = (Kind.GEMM, Kind.GEMM_SUM)
# the dtypes whose weight gradients are computed transposed, vᵀ · U rather than Uᵀ · v (then copied into each
# parameter's gradient transposed), over T·B = 1600 to 6400 rows: MKL (an Intel Xeon with AVX-512, one thread) took
# 6-79% less time so in float32 and 16-65% in float64 (4H = 512, H = 128, T·B = 6400: 9.9 ms against 5.5 ms in
# float32); OpenBLAS's SkylakeX dgemm 10-20% less, its sgemm 3-13% more, where OpenBLAS is the step BLAS
FLIPPED_GRADIENTS = {"float32", "float64"}
COPIES = (Strategy.ENTRYWISE, Strategy.CONCAT)  # ops that only move entries
NAMED = (Kind.LEAF, Kind.NUM, Kind.SIZE)  # nodes read as they are, with nothing to compute


@dataclass(frozen=True)
class Block:
    """Rows r0:r1, columns c0:c1 of the parameter matrix `param`; `T`: used transposed.
    As a linear map it sends a vector of length `n_in` to one of length `n_out`."""

    param: str
    r0: sp.Expr
    r1: sp.Expr
    c0: sp.Expr
    c1: sp.Expr
    T: bool = False

    @property
    def n_out(self):
        return self.c1 - self.c0 if self.T else self.r1 - self.r0

    @property
    def n_in(self):
        return self.r1 - self.r0 if self.T else self.c1 - self.c0

    def rows_of_output(self, lo, hi) -> Block:
        """The block whose output is entries lo:hi of this one's."""
        if self.T:
            return Block(self.param, self.r0, self.r1, self.c0 + lo, self.c0 + hi, True)
        return Block(self.param, self.r0 + lo, self.r0 + hi, self.c0, self.c1, False)

    def cols_of_input(self, lo, hi) -> Block:
        """The block that reads entries lo:hi of this one's input."""
        if self.T:
            return Block(self.param, self.r0 + lo, self.r0 + hi, self.c0, self.c1, True)
        return Block(self.param, self.r0, self.r1, self.c0 + lo, self.c0 + hi, False)

    def entry_T(self, a: str, c: str) -> str:
        """Source for entry [a, c] of the (n_in, n_out) matrix Aᵀ, where A is the map `out = A · in`."""
        if self.T:
            return f"{self.param}[{_py(self.r0)} + {a}, {_py(self.c0)} + {c}]"
        return f"{self.param}[{_py(self.r0)} + {c}, {_py(self.c0)} + {a}]"


@dataclass(frozen=True)
class N:
    """One node: `op` is one of the IR's own kinds (`Kind`) or an op of the table (`Op`), with its arguments
    (nodes, and for an op with sizes, those last as SymPy expressions) and its shape."""

    op: Kind | Op
    args: tuple
    shape: tuple

    @property
    def children(self) -> tuple:
        if self.op is Kind.GEMM_SUM:
            return tuple(u for u, _ in self.args)
        return tuple(a for a in self.args if isinstance(a, N))


def _py(e) -> str:
    return str(sp.sympify(e))


def _shape_tuple(dims) -> str:
    """Source of a shape: `(B, H,)`, or `()` for a scalar."""
    return f"({', '.join(_py(d) for d in dims)},)" if len(dims) else "()"


def _leaves(node: N) -> set:
    if node.op is Kind.LEAF:
        return {node.args[0]}
    out = set()
    for c in node.children:
        out |= _leaves(c)
    return out


def _split_terms(node: N) -> list:
    if node.op is PLUS:
        return _split_terms(node.args[0]) + _split_terms(node.args[1])
    return [node]


def _plus(terms: list, shape) -> N:
    out = terms[0]
    for t in terms[1:]:
        out = N(PLUS, (out, t), shape)
    return out


class _ToIR:
    """SymPy op tree -> IR. Splits parameter products at concatenations; in the adjoint (`sums`), pushes
    slices into parameter products and merges sums of them into one `GemmSum`."""

    def __init__(self, shapes: dict, roles: dict, sizes: set, sums: bool, keep=frozenset()):
        self.shapes, self.roles, self.sizes, self.sums, self.keep = shapes, roles, sizes, sums, keep
        self.linear: dict = {}  # name -> IR of an adjoint equation that is a sum of parameter products

    def __call__(self, expr) -> N:
        if isinstance(expr, sp.Symbol) and expr.name in self.shapes:
            return N(Kind.LEAF, (expr.name,), tuple(self.shapes[expr.name]))
        if isinstance(expr, sp.Basic) and expr.is_number:
            return N(Kind.NUM, (sp.nsimplify(expr),), ())
        op = op_of(expr)
        if op is None and {s.name for s in expr.free_symbols} <= self.sizes:
            return N(Kind.SIZE, (expr,), ())
        if op is None:
            raise SpecError(f"the kernel generator cannot lower {expr!r}")
        if op.kernel is None:
            raise SpecError(f"op {op.name} has no kernel form: give it one in its entry in gategraph/ops.py")
        if op.kernel.strategy is Strategy.GEMM:
            return self.matmul(expr)
        if op is SLICE:
            return self.slice(self(expr.args[0]), expr.args[1], expr.args[2])
        values = len(expr.args) - op.sizes  # the last `op.sizes` arguments stay sizes
        args = tuple(self(a) for a in expr.args[:values]) + tuple(sp.sympify(a) for a in expr.args[values:])
        node = N(op, args, tuple(op.shape(*[a.shape for a in args[:values]], *args[values:])))
        return self.merge(node) if op is PLUS and self.sums else node

    def param_block(self, A):
        """A parameter matrix, or its transpose, as a Block; None for anything else."""
        op = op_of(A)
        T = op is TRANSPOSE
        M = A.args[0] if T else A
        if isinstance(M, sp.Symbol) and self.roles.get(M.name) == "param" and len(self.shapes[M.name]) == 2:
            m, k = self.shapes[M.name]
            return Block(M.name, sp.S.Zero, m, sp.S.Zero, k, T)
        return None

    def matmul(self, expr) -> N:
        A, v = expr.args
        block = self.param_block(A)
        if block is None or len(self.shapes_of(v)) != 1:
            args = (self(A), self(v))
            return N(op_of(expr), args, (args[0].shape[0],) + args[1].shape[1:])
        return self.gemm(block, v)

    def gemm(self, block: Block, v) -> N:
        op = op_of(v)
        if op is CONCAT:  # W [a, b] = W[:, :n_a] a + W[:, n_a:] b
            n_a = self.shapes_of(v.args[0])[0]
            left = self.gemm(block.cols_of_input(0, n_a), v.args[0])
            right = self.gemm(block.cols_of_input(n_a, block.n_in), v.args[1])
            return _plus([left, right], (block.n_out,))
        return N(Kind.GEMM, (self(v), block), (block.n_out,))

    def slice(self, child: N, lo, hi) -> N:
        """v[lo:hi], pushed into sums and parameter products where it can go."""
        if child.op is Kind.LEAF and child.args[0] in self.linear:
            child = self.linear[child.args[0]]
        if child.op is PLUS:
            return self.merge(N(PLUS, (self.slice(child.args[0], lo, hi), self.slice(child.args[1], lo, hi)),
                                (hi - lo,)))
        if child.op is Kind.GEMM:
            return N(Kind.GEMM, (child.args[0], child.args[1].rows_of_output(lo, hi)), (hi - lo,))
        if child.op is Kind.GEMM_SUM:
            return N(Kind.GEMM_SUM, tuple((u, b.rows_of_output(lo, hi)) for u, b in child.args), (hi - lo,))
        if child.op is CONCAT:
            n_a = child.args[0].shape[0]
            if sp.simplify(lo) == 0 and sp.simplify(hi - n_a) == 0:
                return child.args[0]
            if sp.simplify(lo - n_a) == 0 and sp.simplify(hi - n_a - child.args[1].shape[0]) == 0:
                return child.args[1]
        return N(SLICE, (child, sp.sympify(lo), sp.sympify(hi)), (hi - lo,))

    def merge(self, node: N) -> N:
        """A sum's parameter products (those the forward pass did not already compute) as one GemmSum."""
        terms = _split_terms(node)
        linear = [t for t in terms if t.op in PRODUCTS and t not in self.keep]
        if not linear or (len(linear) == 1 and linear[0].op is Kind.GEMM_SUM):
            return node
        pairs = []
        for t in linear:
            pairs += [(t.args[0], t.args[1])] if t.op is Kind.GEMM else list(t.args)
        rest = [t for t in terms if t not in linear]
        return _plus([N(Kind.GEMM_SUM, tuple(pairs), node.shape)] + rest, node.shape)

    def shapes_of(self, expr):
        return infer_shape(expr, self.shapes)


def _is_linear(node: N) -> bool:
    return node.op in PRODUCTS or (node.op is PLUS and all(_is_linear(a) for a in node.args))


# --- scalar code: SymPy's printer, numbers in the kernel's dtype --------------------------------------------


class _ScalarPrinter(NumPyPrinter):
    """Prints a scalar SymPy expression as Numba source. Placeholder symbols print as the array reads
    they stand for; every number is wrapped in the kernel's dtype; small integer powers are products."""

    def __init__(self, dtype: str, reads: dict):
        super().__init__({"fully_qualified_modules": False, "inline": True})
        self.dtype, self.reads, self.calls = dtype, reads, _calls()

    def _num(self, value) -> str:
        return f"np.{self.dtype}({float(value)!r})"

    def _print_Symbol(self, s):
        return self.reads.get(s, s.name)

    def _print_Integer(self, e):
        return self._num(e)

    _print_Rational = _print_Float = _print_NegativeOne = _print_One = _print_Zero = _print_Half = _print_Integer

    def _print_Pow(self, e, rational=False):
        base, n = e.args
        b = self.parenthesize(base, 100)
        if n.is_Integer and 0 < n <= 4:
            return "(" + " * ".join([b] * int(n)) + ")"
        if n.is_Integer and -4 <= n < 0:
            return f"({self._num(1)} / (" + " * ".join([b] * int(-n)) + "))"
        if n == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if n == -sp.S.Half:
            return f"({self._num(1)} / np.sqrt({self._print(base)}))"
        return f"{b} ** {self._num(n)}"

    def _print(self, expr, **kwargs):
        """A scalar function prints as the kernel call of the op whose scalar form it is (`Kernel.call`,
        gategraph.ops), and only so: SymPy's own names for functions are not the generated module's."""
        call = self.calls.get(type(expr))
        if call is not None:
            return call.format(*(self._print(a) for a in expr.args))
        if isinstance(expr, sp.Function):
            raise SpecError(f"the kernel generator has no scalar code for {type(expr).__name__}(): give the op "
                            "whose scalar form it is a kernel call (`call=`) in gategraph/ops.py")
        return super()._print(expr, **kwargs)


def _calls() -> dict:
    """Scalar SymPy function -> the kernel's call template, from the op table (`"_sigmoid({0})"`)."""
    return {op.scalar: op.kernel.call for op in OPS.values() if op.kernel.strategy is Strategy.CALL}


# --- the emitter: loops, GEMMs and buffers ------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """Where a value lives and how one entry is read.

    kind "seq": buf[t + shift, b, col + j ...] (a value of every step); "flat": buf[t·B + b, col + j ...];
    "batch": buf[b, col + j ...] (a memory, or a value of the current step only); "param": buf[j ...];
    "size": a size, read as a number. `width`: the buffer's last axis when `col` picks a part of it."""

    buf: str
    kind: str
    shift: int = 0
    col: sp.Expr = sp.S.Zero
    width: sp.Expr | None = None

    def read(self, idx: tuple, dtype: str) -> str:
        if self.kind == "size":
            return f"np.{dtype}({self.buf})"
        head = {"param": [], "seq": ["_t" if not self.shift else f"_t + {self.shift}", "_b"],
                "flat": ["_t * _B + _b"], "batch": ["_b"]}[self.kind]
        idx = list(idx)
        if idx and self.col != 0:
            idx[-1] = self.col + idx[-1]
        return f"{self.buf}[{', '.join(head + [_py(i) for i in idx]) or '()'}]"  # a scalar parameter: beta[()]

    @property
    def whole(self) -> bool:
        return self.width is None

    def entry(self, idx: tuple) -> tuple:
        """(buffer, kind, row, units): which entry `read(idx)` reads, as expressions of the loop indices."""
        units = list(idx)
        if units and self.col != 0:
            units[-1] = self.col + units[-1]
        return self.buf, self.kind, self.shift, tuple(units)


def _down_rows(entries: list, idx: tuple, s: sp.Symbol) -> bool:
    """A sum over s into a vector (idx = (j,)) that reads matrices down their rows: every entry read that
    depends on both j and s has j, not s, in its last index (Store.entry's units), and there is one."""
    if len(idx) != 1:
        return False
    (j,) = idx
    both = [units for _, _, _, units in entries
            if units and any(j in sp.sympify(u).free_symbols for u in units)
            and any(s in sp.sympify(u).free_symbols for u in units)]
    return bool(both) and all(s not in sp.sympify(units[-1]).free_symbols for units in both)


def _name_power_bases(temps: list, reduced: list, names) -> tuple[list, list]:
    """Give every compound base of an integer power its own local, ahead of the line that uses it."""
    out = []

    def lift(e):
        for p in sorted(e.atoms(sp.Pow), key=sp.count_ops):
            base, n = p.args
            if n.is_Integer and not base.is_Atom:
                name = next(names)
                out.append((name, base))
                e = e.xreplace({base: name})
        return e

    for sym, e in temps:
        out.append((sym, lift(e)))
    return out, [lift(e) for e in reduced]


def _sum(items):
    out = sp.S.Zero
    for i in items:
        out += i
    return out


class Emitter:
    """Writes one function body: allocations first, then loops and GEMMs in order. In "step" mode the
    code sits inside the time loop (per-step temporaries are (B, ...)); in "all" mode it runs over every
    step at once (temporaries are (T·B, ...))."""

    direct = True  # a value that is one GEMM is written by the GEMM itself

    def __init__(self, dtype: str, stores: dict):
        self.dtype, self.stores = dtype, stores
        self.allocs: list = []
        self.lines: list = []
        self.depth = 1
        self.mode = "all"
        self.memo: dict = {}  # node (or tuple of nodes side by side) -> Store, for values computed once per step
        # (or once in "all" mode)
        self.counts: dict = {}
        self.work: list = []  # (name, dims) of the buffers passed in
        self.long: set = set()  # seq buffers with T + 1 rows (states, carries)
        self.seq_stacks: dict = {}  # tuple of operand nodes -> seq buffer holding them side by side
        self.entries: list = []  # Store.entry of every array read while a statement is built
        self.zero: set = set()  # products added into another one's buffer (`_ForwardEmitter.fold`): they read as 0

    # -- text ------------------------------------------------------------------------------------------------
    def fresh(self, stem: str) -> str:
        k = self.counts.get(stem, 0)
        self.counts[stem] = k + 1
        return f"{stem}{k}"

    def line(self, text: str):
        self.lines.append("    " * self.depth + text)

    def alloc(self, name: str, dims: list, fill: str = "empty", kept: bool = False):
        """A buffer. One whose size grows with T, or is `kept` (the stacked weights, the weights' gradients
        before they are added into each parameter's), is not allocated here but passed in (the kernel's
        workspace, reused from call to call: fresh memory costs a page fault per 4 KiB, 9% of the LSTM's
        passes at H = 512 where these were allocated at every call)."""
        if kept or any(sp.sympify(d).has(T_) for d in dims):
            self.work.append((name, tuple(sp.sympify(d) for d in dims)))
        else:
            self.allocs.append(f"{name} = np.empty({_shape_tuple(dims)}, DT)")
        if fill == "zeros":  # np.empty and `_zero` (compiled once), not np.zeros: seconds less from an empty cache
            self.allocs.append(f"_zero({name})" if len(dims) == 1 else f"_zero({name}.reshape({name}.size))")

    def transient(self, stem: str, shape: tuple) -> Store:
        """A buffer for the current step ((B, ...)) or, in "all" mode, for every step ((T·B, ...))."""
        name = self.fresh(stem)
        self.alloc(name, [B_ if self.mode == "step" else T_ * B_] + list(shape))
        return Store(name, "batch" if self.mode == "step" else "flat")

    # -- scalars -----------------------------------------------------------------------------------------------
    def scalar(self, node: N, idx: tuple, reads: dict):
        """The SymPy scalar of `node` at `idx`; each array read becomes a placeholder symbol in `reads`."""
        if node.op is Kind.NUM:
            return node.args[0]
        if node in self.zero:
            return sp.S.Zero
        if node in self.memo or node.op is Kind.LEAF:
            store = self.memo[node] if node in self.memo else self.stores[node.args[0]]
            self.entries.append(store.entry(idx))
            return self.placeholder(store.read(idx, self.dtype), reads)
        if node.op is Kind.SIZE:
            return self.placeholder(Store(_py(node.args[0]), "size").read(idx, self.dtype), reads)
        op = node.op

        def at(k, i):
            return self.scalar(node.args[k], i, reads)

        if op.kind == "pointwise":  # a scalar argument broadcasts
            return op.scalar(*[at(k, idx if len(a.shape) == len(idx) else ()) for k, a in enumerate(node.args)])
        if op.kernel.strategy is Strategy.ENTRYWISE:
            return op.kernel.rule(at, idx, *node.args[len(node.args) - op.sizes:])
        raise SpecError(f"internal: {op.name} reached the elementwise printer before it was computed")

    @staticmethod
    def placeholder(text: str, reads: dict) -> sp.Symbol:
        """The symbol standing for the array read `text` in a scalar expression (one per distinct read)."""
        for s, t in reads.items():
            if t == text:
                return s
        s = sp.Symbol(f"_r{len(reads)}", real=True)
        reads[s] = text
        return s

    def printed(self, exprs: list, reads: dict) -> list:
        """Emit the common subexpressions of `exprs` as locals; return the printed reduced forms. The base of
        a power is a local too: `tanh²(C)` is printed as a product, which must not call tanh twice."""
        temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"), optimizations="basic")
        names = (sp.Symbol(f"_p{k}") for k in range(10**6))
        temps, reduced = _name_power_bases(temps, reduced, names)
        printer = _ScalarPrinter(self.dtype, reads)
        for sym, e in temps:
            self.line(f"{sym} = {printer.doprint(e)}")
        return [printer.doprint(e) for e in reduced]

    # -- loops ---------------------------------------------------------------------------------------------------
    def open_batch(self) -> int:
        if self.mode == "all":
            self.line("for _t in range(_T):")
            self.depth += 1
        self.line("for _b in range(_B):")
        self.depth += 1
        return 2 if self.mode == "all" else 1

    @staticmethod
    def units(shape) -> tuple:
        """The loop indices over a value's entries: _j over a vector, _i, _k over a matrix."""
        names = ("_j",) if len(shape) == 1 else ("_i", "_k")[: len(shape)]
        return tuple(sp.Symbol(name, integer=True) for name in names[: len(shape)])

    def open_units(self, shape) -> tuple:
        idx = self.units(shape)
        for i, n in zip(idx, shape, strict=True):
            self.line(f"for {i} in range({_py(n)}):")
            self.depth += 1
        return idx

    def elementwise(self, node: N, dest, op: str = "="):
        """dest(idx) (op) node[idx] for each sequence and unit, in a loop nest of its own: one statement per nest,
        whose few arrays LLVM vectorizes best (measured against nests shared by consecutive statements)."""
        self.prepare(node)
        idx = self.units(node.shape)
        reads: dict = {}
        self.entries = []
        value = self.scalar(node, idx, reads)
        depth = self.depth
        self.open_batch()
        self.open_units(node.shape)
        (text,) = self.printed([value], reads)
        self.line(f"{dest(idx)} {op} {text}")
        self.depth = depth

    def into(self, store: Store, node: N, op: str = "="):
        """store[...] (op) node[...]; a product of parameters lands in the store straight from its GEMM."""
        if self.direct and op == "=" and node.op in PRODUCTS and node not in self.memo:
            target = self.contiguous(store, node.shape[0]) if len(node.shape) == 1 else None
            if target is not None:
                return self.gemm(node, target)
        loops = self.loops(node)
        if op == "=" and loops is not None and node not in self.memo:
            for c in node.children:
                self.prepare(c)
            return loops(node, store)
        self.elementwise(node, lambda idx: store.read(idx, self.dtype), op)

    def hoist(self, irs: list, fixed: set):
        """Compute once, before the time loop, each largest part of `irs` that is the same at every step (its
        leaves are all in `fixed`: memories and parameters), e.g. the keys M · U_aᵀ; one value per sequence."""
        for node in dict.fromkeys(n for ir in irs for n in _invariant_parts(ir, fixed)):
            if node not in self.memo:
                store = self.transient("_K", node.shape)
                self.into(store, node)
                self.memo[node] = store

    # -- what needs its own loops or a GEMM --------------------------------------------------------------------
    def loops(self, node: N):
        """The method that computes `node` with loops of its own (a contraction, a softmax), or None for a node
        that is elementwise, a product of parameters, or read as it is."""
        if not isinstance(node.op, Op):
            return None
        return {Strategy.CONTRACTION: self.contraction, Strategy.GEMM: self.contraction,
                Strategy.SOFTMAX: self.softmax}.get(node.op.kernel.strategy)

    def prepare(self, node: N):
        """Compute, ahead of an elementwise loop, each part of `node` that is not elementwise."""
        if node in self.memo or node in self.zero or node.op in NAMED:
            return
        if node.op in PRODUCTS:
            return self.gemm(node)
        if node.op is Kind.STEPS:
            return self.steps(node)
        for c in node.children:
            self.prepare(c)
        if (loops := self.loops(node)) is not None:
            loops(node)
        elif node.op.kernel.strategy is Strategy.CONCAT:
            self.concat(node)

    def steps(self, node: N):
        """Σ_t v_t for each sequence, into a (B, ...) buffer."""
        store = Store(self.fresh("_Z"), "batch")
        self.alloc(store.buf, [B_] + list(node.shape), "zeros")
        self.accumulate(node, store)
        self.memo[node] = store

    def accumulate(self, node: N, store: Store):
        """store[...] += node[...], where `node` is Σ_t of something (`_over_steps`): over every step if the
        sum is outermost, else once."""
        mode, self.mode = self.mode, "all" if node.op is Kind.STEPS else "step"
        self.elementwise(node.args[0] if node.op is Kind.STEPS else node,
                         lambda idx: store.read(idx, self.dtype), "+=")
        self.mode = mode

    def concat(self, node: N):
        """[a, b] into one buffer, b's entries after a's."""
        store = self.transient("_m", node.shape)
        a, b = node.args
        self.into(store, a)
        self.elementwise(b, lambda idx: store.read((idx[0] + a.shape[0],), self.dtype))
        self.memo[node] = store

    def contraction(self, node: N, store: Store | None = None):
        """out[idx] = finish(Σ_s term(idx, s)), the length and the term from the op's kernel rule: MatMul
        Σ_s A[i, s] B[s(, l)]; Dot Σ_s a[s] b[s]; Sum Σ_s v[s]; ColSum Σ_s A[s, k]; Mean (Σ_s v[s]) / n.
        A vector whose sum runs down the rows of a matrix (c_j = Σ_s M[s, j] α_s: strided in s, contiguous in j)
        is summed with the loops swapped, s outside and j inside, so the inner loop runs along memory; each
        entry still adds its terms in the order s = 0, 1, ..., as the plain loops do, to the same bits. Only a
        term of two factors is swapped: in a longer product LLVM may group the factors that depend on s alone
        once j is inside (the `reassoc` flag), which rounds otherwise."""
        store = store or self.transient("_m", node.shape)
        s, kernel = sp.Symbol("_s", integer=True), node.op.kernel
        idx, reads, first = self.units(node.shape), {}, len(self.entries)
        n, term = kernel.rule(lambda k, i: self.scalar(node.args[k], i, reads), idx, s, [a.shape for a in node.args])
        opened = self.open_batch()
        out = store.read(idx, self.dtype)
        pair = isinstance(term, sp.Mul) and len(term.args) == 2
        if pair and kernel.finish is None and _down_rows(self.entries[first:], idx, s):
            self.open_units(node.shape)
            self.line(f"{out} = np.{self.dtype}(0.0)")
            self.depth -= 1
            self.line(f"for _s in range({_py(n)}):")
            self.depth += 1
            self.open_units(node.shape)
            (value,) = self.printed([term], reads)
            self.line(f"{out} += {value}")
            self.depth -= 2 + opened
            self.memo[node] = store
            return
        self.open_units(node.shape)
        self.line(f"_acc = np.{self.dtype}(0.0)")
        self.line(f"for _s in range({_py(n)}):")
        self.depth += 1
        (value,) = self.printed([term], reads)
        self.line(f"_acc += {value}")
        self.depth -= 1
        self.line(f"{out} = {self.finished(kernel, node)}")
        self.depth -= opened + len(idx)
        self.memo[node] = store

    def finished(self, kernel, node: N) -> str:
        """Source for a contraction's result from its sum `_acc` (a mean divides it by its length)."""
        if kernel.finish is None:
            return "_acc"
        acc = sp.Symbol("_acc", real=True)
        value = kernel.finish(acc, [a.shape for a in node.args])
        reads = {acc: "_acc"} | {n: Store(n.name, "size").read((), self.dtype) for n in value.free_symbols - {acc}}
        return _ScalarPrinter(self.dtype, reads).doprint(value)

    def softmax(self, node: N, store: Store | None = None):
        """p = exp(e - max e) / Σ exp(e - max e), one sequence at a time. NumPy's exp, not the generated
        `_exp`: over a memory's few rows it measured no faster, and its last-place differences moved the
        lecture's dates run to another final score."""
        store = store or self.transient("_m", node.shape)
        j = sp.Symbol("_j", integer=True)
        n, out = _py(node.shape[0]), store.read((j,), self.dtype)
        opened = self.open_batch()
        for head, body in ((f"_max = np.{self.dtype}(-np.inf)", "_max = max(_max, {e})"),
                           (f"_acc = np.{self.dtype}(0.0)", f"{out} = np.exp({{e}} - _max)\n_acc += {out}")):
            self.line(head)
            self.line(f"for _j in range({n}):")
            self.depth += 1
            reads: dict = {}
            (e,) = self.printed([self.scalar(node.args[0], (j,), reads)], reads)
            for text in body.format(e=e).split("\n"):
                self.line(text)
            self.depth -= 1
        self.line(f"for _j in range({n}):")
        self.line(f"    {out} = {out} / _acc")
        self.depth -= opened
        self.memo[node] = store

    # -- GEMMs -------------------------------------------------------------------------------------------------------
    def gemm(self, node: N, target: str | None = None):
        """Σ_g A_g u_g = [u_1, u_2, ...] · [A_1ᵀ; A_2ᵀ; ...], one GEMM over the batch (over all steps in
        "all" mode), into `target` (source of a contiguous array) or a new buffer."""
        terms = node.args if node.op is Kind.GEMM_SUM else ((node.args[0], node.args[1]),)
        S = self.stack([b for _, b in terms], axis=0)
        U = self.side_by_side([u for u, _ in terms])
        if target is None:
            out = self.transient("_q", node.shape)
            self.memo[node] = out
            target = out.buf
        self.product(U, S, target)

    def product(self, U: str, S: str, target: str, add: bool = False, col=0):
        """target = U · S, or target += U · S if `add` (into target's columns from `col` on, where it has more
        than S). In "step" mode, where both are a whole buffer or one step of one (contiguous), through the helper
        `_product`, which computes it as (Sᵀ · Uᵀ)ᵀ where that is faster (float32, S large, a batch of 8 to 64
        rows, 8 steps or more: gategraph.helpers.FLIP_AT); Sᵀ is made once per pass, before the loop, by
        `_flipped`."""
        if self.mode != "step" or not (_ONE_STEP.fullmatch(U) and _ONE_STEP.fullmatch(target)):
            if add or col != 0:
                raise SpecError("internal: a product added to its target outside the time loop")
            self.line(f"_dot({U}, {S}, {target}, False)")
            return
        ST, F = f"{S}T", f"_F{S[2:]}"  # _S1 -> _S1T, _F1: no other name is made so (each S is made for one product)
        self.allocs.append(f"{ST}, {F} = _flipped({S}, _B, _T, {add})")
        self.line(f"_product({U}, {S}, {ST}, {F}, {target}, {_py(col)}, {add})")

    def stack(self, blocks: list, axis: int) -> str:
        """The matrices A_gᵀ stacked along `axis` (0: rows, for a sum of products; 1: columns, for
        products of one operand), built once before the loops."""
        S = self.fresh("_S")
        n_in, n_out = _sum(b.n_in for b in blocks), _sum(b.n_out for b in blocks)
        self.alloc(S, [n_in, blocks[0].n_out] if axis == 0 else [blocks[0].n_in, n_out], kept=True)
        off = sp.S.Zero
        for b in blocks:
            at = f"{_py(off)}, 0" if axis == 0 else f"0, {_py(off)}"
            self.allocs.append(f"_copy({S}, {at}, {b.param}, {_py(b.r0)}, {_py(b.c0)}, {_py(b.n_in)}, "
                               f"{_py(b.n_out)}, {not b.T}, False)")
            off += b.n_in if axis == 0 else b.n_out
        return S

    def contiguous(self, store: Store, n) -> str | None:
        """Source for a stored value as a contiguous (rows, n) array, or None if it is not one."""
        if store.kind == "seq" and store.whole:
            if self.mode == "step":
                return f"{store.buf}[_t + {store.shift}]" if store.shift else f"{store.buf}[_t]"
            long = store.shift or store.buf in self.long
            rows = f"{store.buf}[{store.shift}:{store.shift} + _T]" if long else store.buf
            return f"{rows}.reshape(_T * _B, {_py(n)})"
        if store.whole and ((store.kind == "batch" and self.mode == "step") or
                            (store.kind == "flat" and self.mode == "all")):
            return store.buf
        if store.kind == "flat" and store.whole and self.mode == "step":
            return f"{store.buf}[_t * _B:(_t + 1) * _B]"
        return None

    def runs(self, us: list) -> list:
        """`us` cut into runs of operands that each lie side by side in one buffer already (the GRU's [ā_z, ā_r]
        and ā_h̃): a product with each run (Σ_t [ā_z, ā_r]ᵀ x_t, then Σ_t ā_h̃ᵀ x_t) reads them in place, where
        one product would first copy all of them side by side (at B = 64, H = 128, T = 100, 10 MB of reads and
        writes, and a tenth of the GRU's backward pass)."""
        if len(us) == 1 or tuple(us) in self.seq_stacks or self.memo.get(tuple(us)) is not None:
            return [list(us)]
        cut = next((j for j in range(len(us), 1, -1) if tuple(us[:j]) in self.seq_stacks), 1)
        return [list(us[:cut])] + self.runs(us[cut:])

    def side_by_side(self, us: list) -> str:
        """Source for [u_1, u_2, ...] over the batch as one contiguous array (copied together if need be)."""
        if tuple(us) in self.seq_stacks:
            buf, width = self.seq_stacks[tuple(us)]
            return self.contiguous(Store(buf, "seq"), width)
        if len(us) == 1:
            u = us[0]
            store = self.memo.get(u) or (self.stores.get(u.args[0]) if u.op is Kind.LEAF else None)
            if store is not None and (src := self.contiguous(store, u.shape[0])) is not None:
                return src
        width = _sum(u.shape[0] for u in us)
        stacked = self.memo.get(tuple(us))  # these operands side by side already (the GRU's x- and W-gradient)
        if stacked is not None and (src := self.contiguous(stacked, width)) is not None:
            return src
        out = self.transient("_U", (width,))
        off = sp.S.Zero
        for u in us:
            self.into(Store(out.buf, out.kind, col=off, width=width), u)
            off += u.shape[0]
        self.memo[us[0] if len(us) == 1 else tuple(us)] = out
        return out.buf


class _ForwardEmitter(Emitter):
    """Products of parameter blocks with one operand are computed together: before the time loop when the
    operand is an input, else once per step, into a buffer kept for the backward pass, or added straight into
    the rows of an input's products where it is only ever summed with them (`fold`)."""

    direct = False

    def __init__(self, dtype, stores, groups: dict):
        super().__init__(dtype, stores)
        self.groups = groups  # operand -> [Gemm nodes]
        self.kept: dict = {}  # Gemm node or materialized operand -> Store, for the tape
        self.folds: dict = {}  # per-step operand -> (the input into whose products' rows its products are added,
        # the first of their columns)
        self.sums: set = set()  # the input's products that then hold those sums (not on the tape)

    def fold(self, irs: list, fixed: set):
        """W_h h_{t-1} + W_x x_t, a gate's two products, in one buffer: where the products of a per-step operand
        (h_{t-1}, or r ⊙ h_{t-1}) are each only ever a term of a sum of two, whose other term is a product of an
        input (x_t) of the same width, the input's products are computed before the loop with those in a run of
        columns, in the same order, and each step's GEMM adds its products into those columns of the input's
        rows (β = 1). The gates then read one buffer: the LSTM's four, the GRU's z, r and candidate. The summed
        products are not on the tape: the buffer holds their sums."""
        parents: dict = {}
        for node in (n for ir in irs for n in _walk(ir)):
            for c in node.children:
                parents.setdefault(c, set()).add(node)

        def summed(m: N, o: N) -> bool:  # m's and o's only use: m + o (neither is an equation's whole value)
            return (m.shape == o.shape and m not in irs and o not in irs
                    and all(p.op is PLUS and set(p.args) == {m, o} for p in parents[m] | parents[o]))

        def pairs(members: list, x: N) -> list | None:  # x's products that members are summed with, in order
            found: list = []
            for m in members:
                o = next((o for o in self.groups[x] if o not in found and o not in self.sums and summed(m, o)),
                         None)
                if o is None:
                    return None
                found.append(o)
            return found

        inputs = [x for x in self.groups if _leaves(x) <= fixed]
        for v, members in self.groups.items():
            if v in inputs:
                continue
            x, found = next(((x, found) for x in inputs if (found := pairs(members, x)) is not None), (None, None))
            if x is not None:  # x's products: those summed already, these, then the rest
                before = [o for o in self.groups[x] if o in self.sums]
                self.folds[v] = (x, _sum(o.shape[0] for o in before))
                self.groups[x] = before + found + [o for o in self.groups[x] if o not in self.sums and o not in found]
                self.sums.update(found)

    def gemm(self, node: N, target: str | None = None):
        v = node.args[0]
        members = self.groups[v]
        S = self.stack([m.args[1] for m in members], axis=1)
        width = _sum(m.shape[0] for m in members)
        if self.mode == "step" and v.op is not Kind.LEAF and v not in self.memo:  # e.g. r ⊙ h_{t-1}: kept for
            store = Store(self.fresh("_v"), "seq")  # the weight gradient
            self.alloc(store.buf, [T_, B_, v.shape[0]])
            self.into(store, v)
            self.memo[v] = self.kept[v] = store
        if self.mode == "step" and v in self.folds:
            x, col = self.folds[v]
            rows = self.memo[self.groups[x][0]].buf
            self.product(self.side_by_side([v]), S, f"{rows}[_t * _B:(_t + 1) * _B]", add=True, col=col)
            self.zero.update(members)
            return
        P = self.fresh("_P")
        if self.mode == "all":
            self.alloc(P, [T_ * B_, width])
            self.line(f"_dot({self.side_by_side([v])}, {S}, {P}, False)")
            kind = "flat"
        else:
            self.alloc(P, [T_, B_, width])
            self.product(self.side_by_side([v]), S, f"{P}[_t]")
            kind = "seq"
        off = sp.S.Zero
        for m in members:
            self.memo[m] = Store(P, kind, col=off, width=width)
            if m not in self.sums:
                self.kept[m] = self.memo[m]
            off += m.shape[0]


def _invariant_parts(node: N, fixed: set) -> list:
    """The largest subtrees of `node` that read only names in `fixed` and compute something (a copy, as in
    Mᵀ or [M, M], is read in place); products of parameters are left out (they already run over all steps at
    once, as GEMMs)."""
    if node.op in NAMED:
        return []
    leaves, nodes = _leaves(node), list(_walk(node))
    if (leaves and leaves <= fixed and not any(n.op in PRODUCTS for n in nodes)
            and any(n.op.kernel.strategy not in COPIES for n in nodes if isinstance(n.op, Op))):
        return [node]
    return [part for c in node.children for part in _invariant_parts(c, fixed)]


def _linear_in(op: Op, varying: tuple, shapes: list, sizes: tuple) -> bool:
    """Whether an entry of `op` is linear in the arguments marked in `varying`, read from its scalar form or
    its kernel rule: op(x + y) = op(x) + op(y) and op(λx) = λ op(x), x and y those arguments, the others held.
    (Scaling alone would pass x_1 x_2 / (x_1 + x_2), whose sum over steps is not that of the sums.)"""
    lam = sp.Symbol("_lambda")
    syms: dict = {}

    def entry(k, i, other=False):
        return syms.setdefault((k, tuple(i), other), sp.Symbol(f"_a{k}_{len(syms)}"))

    idx = Emitter.units(op.shape(*shapes, *sizes)) if op.kind != "pointwise" else ()

    def value(given):
        """op's entry, an argument's entry (k, i) being given(k, i) where `varying`, else its own symbol."""
        def at(k, i):
            return given(k, i) if varying[k] else entry(k, i)

        if op.kind == "pointwise":
            return op.scalar(*[at(k, ()) for k in range(len(shapes))])
        if op.kernel.strategy is Strategy.ENTRYWISE:
            return op.kernel.rule(at, idx, *sizes)
        return op.kernel.rule(at, idx, sp.Symbol("_s", integer=True), shapes)[1]

    if op.kind != "pointwise" and op.kernel.strategy not in (Strategy.ENTRYWISE, Strategy.CONTRACTION,
                                                             Strategy.GEMM):
        return False
    x, y = value(entry), value(lambda k, i: entry(k, i, True))
    return (x != 0 and sp.simplify(value(lambda k, i: lam * entry(k, i)) - lam * x) == 0
            and sp.simplify(value(lambda k, i: entry(k, i) + entry(k, i, True)) - x - y) == 0)


def _over_steps(node: N, fixed: set) -> N:
    """Σ_t node, the sum moved inside every op that is linear in its parts that change from step to step:
    Σ_t (A X_t) = A (Σ_t X_t) for an A the same at every step (its leaves in `fixed`), so that the product
    runs once rather than at every step."""
    if node.op in NAMED and (node.op is not Kind.LEAF or node.args[0] in fixed):
        return N(Kind.STEPS, (node,), node.shape)
    children = [a for a in node.args if isinstance(a, N)]
    varying = tuple(not (_leaves(a) <= fixed) for a in children)
    if (isinstance(node.op, Op) and any(varying) and not any(n.op in PRODUCTS for n in _walk(node))
            and _linear_in(node.op, varying, [a.shape for a in children], node.args[len(children):])):
        args = tuple(_over_steps(a, fixed) if v else a for a, v in zip(children, varying, strict=True))
        return N(node.op, args + node.args[len(children):], node.shape)
    return N(Kind.STEPS, (node,), node.shape)


def _walk(node: N):
    yield node
    for c in node.children:
        yield from _walk(c)


def _uses(expr, name: str, under_slice=False):
    """For each occurrence of the symbol `name` in a SymPy tree: whether it is the sliced argument of a Slice."""
    if isinstance(expr, sp.Symbol):
        return [under_slice] if expr.name == name else []
    op = op_of(expr)
    out = []
    for k, a in enumerate(expr.args):
        out += _uses(a, name, op is SLICE and k == 0)
    return out


@dataclass
class Lowered:
    """The generated module's source and the argument lists of its two functions. Names in the lists are
    names in the code; `arguments` says what each argument is, by declared name."""

    source: str
    forward_args: list  # names, in order: inputs, memories, initial states, parameters, sizes
    tape: list  # the buffers forward writes every step into, in order (among forward_work)
    backward_args: list  # tape, inputs, memories, parameters, seeds, final adjoints, sizes, the input_grads switch
    backward_returns: list  # (kind, name): ("param", W), ("input", x), ("memory", M), ("state", h)
    state_buffers: dict  # state -> its (T+1, B, n) buffer in the tape (row 0: the initial state)
    output_stores: dict  # output -> (buffer, shift)
    forward_work: list  # (name, dims): buffers the caller passes to forward, after its arguments
    backward_work: list
    carry_buffers: dict  # state -> the (T + 1, B, n) backward buffer whose row t + 1 is ∂L/∂s_t from step t + 1 on
    arguments: dict  # argument -> (kind, declared name); kind: input, memory, init, param, size, seed, final,
    # tape, switch (backward's input_grads)
    value_stores: dict  # every equation's name -> (buffer in the tape, shift)
    sizes: dict  # size name -> its name in the code (the workspace's dimensions are written with these)
    state_adjoints: dict  # state -> (buffer, column, width) of ∂L/∂s_t for every t in the backward workspace


def _adjoint_code(role: Role, of_code: str) -> str:
    """The code name of an adjoint variable, from the code name of the forward name it belongs to."""
    return f"_{role.value}_{of_code}"


def code_names(cell: Cell, adj: Adjoint) -> dict:
    """Every name of `cell` and its adjoint -> its name in the generated code (see the module docstring);
    sizes under ("size", name). One to one, and never one of the generator's own names."""
    def plain(name):
        return f"_u_{name}" if keyword.iskeyword(name) or name.startswith("_") or name in RESERVED else name

    codes = {}
    for name in adj.shapes:
        var = adj.vars.get(name)
        codes[name] = plain(name) if var is None else _adjoint_code(var.role, plain(var.of))
    for s in cell.sizes:
        code = plain(s.name)
        codes[("size", s.name)] = f"_size_{s.name}" if s.name in adj.shapes else code
    for st in cell.states:
        codes[("init", st.name)] = f"_init_{codes[st.name]}"
        codes[("final", st.name)] = f"_final_{codes[st.name]}"
    taken: dict = {}
    for name, code in codes.items():
        if not code.isidentifier() or keyword.iskeyword(code) or code in taken:
            raise SpecError(f"internal: cell {cell.name!r}: {name!r} and {taken.get(code)!r} share the code name "
                            f"{code!r}")
        taken[code] = name
    return codes


def _coded(cell: Cell, adj: Adjoint, codes: dict) -> tuple[Cell, Adjoint]:
    """The cell and its adjoint with every name replaced by its name in the code."""
    sizes = {s: s if codes[("size", s.name)] == s.name else sp.Symbol(codes[("size", s.name)], **s.assumptions0)
             for s in cell.sizes}
    swap = dict(sizes)
    for name in adj.shapes:
        swap[adj.vars.get(name) or Var(name)] = Var(codes[name])

    def c(e):
        return sp.sympify(e).xreplace(swap)

    def shape(dims):
        return tuple(c(d) for d in dims)

    decls = tuple(Decl(Var(codes[d.name]), shape(d.shape), d.role, codes[d.state] if d.state else None, d.title)
                  for d in cell.decls)
    states = tuple(State(codes[st.name], Var(codes[st.prev.name]), shape(st.shape)) for st in cell.states)
    equations = tuple(Equation(Var(codes[eq.name]), c(eq.rhs), eq.title) for eq in cell.equations)
    coded = Cell(cell.name, tuple(sizes.values()), decls, states, equations, tuple(codes[o] for o in cell.outputs),
                 cell.doc, coded=True)
    out = Adjoint(coded, [Equation(Var(codes[eq.name]), c(eq.rhs)) for eq in adj.equations],
                  {codes[p]: c(g) for p, g in adj.grads.items()},
                  {codes[st]: codes[b] if b else None for st, b in adj.carries.items()},
                  {codes[n]: codes[b] for n, b in adj.inputs.items()},
                  {codes[o]: codes[n] for o, n in adj.seeds.items()},
                  {codes[n]: c(e) for n, e in adj.named.items()},
                  {codes[n]: shape(dims) for n, dims in adj.shapes.items()})
    return coded, out


def lower(cell: Cell, dtype: str = "float32", adjoint: Adjoint | None = None) -> Lowered:
    """The Numba module for `cell`: forward and backward over batches of sequences, in `dtype`."""
    if dtype not in DTYPES:
        raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not cell.by_role("input"):
        raise SpecError(f"cell {cell.name!r} has no per-step input: a kernel runs over sequences of inputs")
    if any(len(st.shape) != 1 for st in cell.states):
        raise SpecError(f"cell {cell.name!r}: a kernel carries vector states only")
    adj = adjoint or derive(cell)
    codes = code_names(cell, adj)
    coded, coded_adj = _coded(cell, adj, codes)
    state_bars = {codes[st.name]: codes[adj.state_adjoint(st.name)] for st in cell.states if adj.state_adjoint(st.name)}
    lowered = _Lowering(coded, dtype, coded_adj, state_bars).run(cell)
    user = {code: name for name, code in codes.items() if isinstance(name, str)}
    arguments = {codes[d.name]: (d.role, d.name) for d in cell.decls if d.role in ("input", "memory", "param")}
    arguments.update({codes[n]: ("seed", o) for o, n in adj.seeds.items()})
    arguments.update({code: name for name, code in codes.items() if isinstance(name, tuple)})  # sizes, init, final
    arguments.update({buf: ("tape", buf) for buf in lowered.tape})
    arguments[INPUT_GRADS] = ("switch", "input_grads")
    lowered.arguments = arguments
    lowered.backward_returns = [(kind, user[name]) for kind, name in lowered.backward_returns]
    lowered.state_buffers = {user[st]: buf for st, buf in lowered.state_buffers.items()}
    lowered.output_stores = {user[o]: where for o, where in lowered.output_stores.items()}
    lowered.carry_buffers = {user[st]: buf for st, buf in lowered.carry_buffers.items()}
    lowered.value_stores = {user[n]: where for n, where in lowered.value_stores.items()}
    lowered.state_adjoints = {user[st]: where for st, where in lowered.state_adjoints.items()}
    lowered.sizes = {s.name: codes[("size", s.name)] for s in cell.sizes}
    return lowered


@dataclass
class ForwardPlan:
    """The forward pass, planned: where every value lives, the buffers of the tape, the arguments."""

    emitter: _ForwardEmitter  # holds the emitted lines, the workspace and the products kept on the tape
    stores: dict  # name -> Store
    tape: list
    args: list
    source: str


@dataclass
class Schedule:
    """The adjoint step as IR, split by where it runs: inside the reverse time loop (what the carries need)
    or after it, over all steps at once (what only the input and weight gradients need)."""

    irs: dict  # adjoint name -> IR
    grad_irs: dict  # parameter -> IR of its per-step gradient
    loop: list
    post: list
    summed: set  # memories' adjoints read by nothing else: summed over the steps as they are computed
    for_inputs: list  # after the loop, read by the per-step inputs' gradients only: made when a call asks for them
    # (a part of them the same at every step is still hoisted before the loop, unconditionally: no cell has one)


@dataclass
class BackwardPlan:
    """The reverse scan, planned: where every adjoint lives, the carries, what is returned, the arguments."""

    emitter: Emitter
    stores: dict
    carry_bufs: dict  # state -> its (T + 1, B, n) carry buffer
    returns: list  # (kind, name) of each returned gradient
    args: list
    source: str


class _Lowering:
    """Works on the cell and adjoint with every name already its name in the code (`_coded`). Each stage is a
    step that returns its plan: `forward()` a ForwardPlan; `backward(fwd)` a BackwardPlan, through
    `schedule`, `plan_storage`, `gradients` and `gather_returns`; `run` joins them into a Lowered."""

    def __init__(self, cell: Cell, dtype: str, adj: Adjoint, state_bars: dict):
        self.cell, self.dtype, self.adj = cell, dtype, adj
        self.state_bars = state_bars  # state -> its adjoint ∂L/∂s_t, kept at every step for Kernel.backward
        self.per_step = [d.name for d in cell.by_role("input")]
        self.memories = [d.name for d in cell.by_role("memory")]
        self.params = [p.name for p in cell.params]
        self.sizes = [s.name for s in cell.sizes]
        self.states = list(cell.states)
        self.shapes = adj.shapes
        self.fixed = set(self.memories) | set(self.params)  # the same at every step

    def run(self, declared: Cell) -> Lowered:
        fwd = self.forward()
        bwd = self.backward(fwd)
        state_names = {st.name for st in self.states}
        values = {eq.name: (eq.name, 1 if eq.name in state_names else 0) for eq in self.cell.equations}
        outputs = {o: values[o] for o in self.cell.outputs}
        kept = {st: bwd.stores[bar] for st, bar in self.state_bars.items()}
        kept = {st: (s.buf, s.col, s.width or self.shapes[self.state_bars[st]][0]) for st, s in kept.items()}
        return Lowered(_module(declared, self.dtype, fwd, bwd), fwd.args, fwd.tape,
                       bwd.args, bwd.returns, {st.name: st.name for st in self.states}, outputs,
                       fwd.emitter.work, bwd.emitter.work, dict(bwd.carry_bufs), {}, values, {}, kept)

    # -- forward: t = 0 .. T-1 -------------------------------------------------------------------------------
    def forward(self) -> ForwardPlan:
        """h_t = step(x_t, h_{t-1}): the inputs' products before the loop, the rest once per step."""
        stores = {n: Store(n, "seq") for n in self.per_step}
        stores.update({n: Store(n, "batch") for n in self.memories})
        stores.update({n: Store(n, "param") for n in self.params})
        fw = _ForwardEmitter(self.dtype, stores, {})
        for st in self.states:  # one (T + 1, B, n) buffer: row t is s_{t-1}, row t + 1 is s_t
            stores[st.name], stores[st.prev.name] = Store(st.name, "seq", shift=1), Store(st.name, "seq")
            fw.alloc(st.name, [T_ + 1, B_] + list(st.shape))
            fw.long.add(st.name)
            fw.allocs.append(f"_copy({st.name}[0], 0, 0, _init_{st.name}, 0, 0, _B, {_py(st.shape[0])}, False, False)")
        lets = [eq.name for eq in self.cell.equations if eq.name not in {st.name for st in self.states}]
        for name in lets:
            stores[name] = Store(name, "seq")
            fw.alloc(name, [T_, B_] + list(self.shapes[name]))
        conv = _ToIR(self.shapes, dict(self.cell.roles), set(self.sizes), sums=False)
        eqs = [(eq.name, conv(eq.rhs)) for eq in self.cell.equations]
        for node in (n for _, ir in eqs for n in _walk(ir)):
            if node.op is Kind.GEMM and node not in fw.groups.get(node.args[0], []):
                fw.groups.setdefault(node.args[0], []).append(node)
        fixed = set(self.per_step) | set(self.memories) | set(self.params)
        fw.fold([ir for _, ir in eqs], fixed)
        fw.mode = "all"
        for v, members in fw.groups.items():  # products with inputs: one GEMM over all steps
            if _leaves(v) <= fixed:
                fw.gemm(members[0])
        fw.mode = "step"
        fw.hoist([ir for _, ir in eqs], self.fixed)
        fw.line("for _t in range(_T):")
        fw.depth += 1
        for name, ir in eqs:
            fw.into(stores[name], ir)
        fw.depth -= 1
        tape = [st.name for st in self.states] + lets
        tape += sorted({s.buf for s in fw.kept.values()}, key=lambda b: (b[:2], int(b[2:])))
        args = self.per_step + self.memories + [f"_init_{st.name}" for st in self.states] + self.params + self.sizes
        given = self.per_step + self.memories + [f"_init_{st.name}" for st in self.states] + self.params
        source = _function("forward", args, self.per_step[0], fw, given)
        return ForwardPlan(fw, stores, tape, args, source)

    # -- backward: t = T-1 .. 0, then everything the recurrence does not need ----------------------------------
    def backward(self, fwd: ForwardPlan) -> BackwardPlan:
        """The reverse scan over the adjoint step (gategraph.derive); input and weight gradients after it."""
        adj = self.adj
        seeds = [adj.seeds[o] for o in self.cell.outputs]
        finals = [f"_final_{st.name}" for st in self.states]
        stores = {**fwd.stores, **{s: Store(s, "seq") for s in seeds}}
        bw = Emitter(self.dtype, stores)
        bw.long = set(fwd.emitter.long)
        carry_bufs = {}
        for st, final in zip(self.states, finals, strict=True):  # row t + 1 is read at t, row t written at t
            buf = adj.carries.get(st.name) or _adjoint_code(Role.BAR, st.prev.name)
            carry_bufs[st.name] = buf
            stores[_adjoint_code(Role.CARRY, st.name)], stores[buf] = Store(buf, "seq", shift=1), Store(buf, "seq")
            bw.alloc(buf, [T_ + 1, B_] + list(st.shape), "zeros")
            bw.long.add(buf)
            bw.allocs.append(f"_copy({buf}[_T], 0, 0, {final}, 0, 0, _B, {_py(st.shape[0])}, False, False)")
        plan = self.schedule(fwd, carry_bufs)
        self.plan_storage(plan, bw, stores, carry_bufs)
        bw.mode = "step"
        bw.hoist([plan.irs[n] for n in plan.loop + plan.post + plan.for_inputs] + list(plan.grad_irs.values()),
                 self.fixed)
        for p in plan.grad_irs:
            bw.alloc(f"_g_{p}", list(self.shapes[p]), "zeros")
        base = dict(fwd.emitter.kept) | bw.memo  # the forward pass's products and operands, read from the tape
        bw.memo = dict(base)
        if plan.loop:
            bw.line("for _t in range(_T - 1, -1, -1):")
            bw.depth += 1
            for name in plan.loop:
                bw.into(stores[name], plan.irs[name])
            self.column_sums(plan, bw, stores, set(plan.loop))
            bw.depth -= 1
        bw.memo, bw.mode = dict(base), "all"
        for name in plan.post:
            bw.into(stores[name], plan.irs[name])
        self.column_sums(plan, bw, stores, set(stores) - set(plan.loop))
        self.gradients(plan, bw, stores)
        values, returns = self.gather_returns(plan, bw, stores, carry_bufs)
        if plan.for_inputs:  # ∂L/∂x_t, last: nothing else reads it, and a call for data (tokens) leaves it out
            bw.line(f"if {INPUT_GRADS}:")
            bw.depth += 1
            start, top, bw.allocs = len(bw.lines), bw.allocs, []
            for name in plan.for_inputs:
                bw.into(stores[name], plan.irs[name])
            bw.lines[start:start] = ["    " * bw.depth + a for a in bw.allocs]  # (its stacked weights: here too)
            bw.allocs = top
            bw.depth -= 1
        args = fwd.tape + self.per_step + self.memories + self.params + seeds + finals + self.sizes + [INPUT_GRADS]
        given = self.per_step + self.memories + self.params + seeds + finals
        source = _function("backward", args, self.per_step[0], bw, given, f"return ({', '.join(values)},)")
        return BackwardPlan(bw, stores, carry_bufs, returns, args, source)

    def schedule(self, fwd: ForwardPlan, carry_bufs: dict) -> Schedule:
        """The adjoint equations the carries need (inside the time loop), and those only the input and
        weight gradients need (after it, over all steps at once)."""
        adj = self.adj
        conv = _ToIR(self.shapes, dict(self.cell.roles), set(self.sizes), sums=True,
                     keep=frozenset(fwd.emitter.kept))
        every = [eq.rhs for eq in adj.equations] + list(adj.grads.values())
        required = {b for b in adj.carries.values() if b} | set(adj.inputs.values()) | set(self.state_bars.values())
        irs = {}
        for eq in adj.equations:
            ir = conv(eq.rhs)
            if eq.name not in required and _is_linear(ir) and all(all(_uses(e, eq.name)) for e in every):
                conv.linear[eq.name] = ir  # only ever sliced (bar_z): each slice is its own product
            else:
                irs[eq.name] = ir
        grads = {p: conv(g) for p, g in adj.grads.items() if g != 0}
        _inline_single_uses(irs, grads, required | set(carry_bufs.values()))
        deps = {n: _leaves(ir) & set(irs) for n, ir in irs.items()}

        def closure(names):
            out, todo = set(), list(names)
            while todo:
                n = todo.pop()
                if n in irs and n not in out:
                    out.add(n)
                    todo += deps[n]
            return out

        cone = closure(b for b in adj.carries.values() if b)
        later = closure(set(adj.inputs.values()) | set(self.state_bars.values())
                        | set().union(*[_leaves(g) for g in grads.values()]))
        order = [eq.name for eq in adj.equations if eq.name in irs]
        read = set().union(*[_leaves(ir) for ir in [*irs.values(), *grads.values()]])
        summed = {adj.inputs[m] for m in self.memories if adj.inputs.get(m) in irs} - read - cone
        summed -= set(self.state_bars.values())
        post = [n for n in order if n in later and n not in cone | summed]
        read_by_others = closure(set(self.state_bars.values()) | set().union(*[_leaves(g) for g in grads.values()])
                                 | {adj.inputs[m] for m in self.memories if adj.inputs.get(m)})
        return Schedule(irs, grads, [n for n in order if n in cone], [n for n in post if n in read_by_others], summed,
                        [n for n in post if n not in read_by_others])

    def plan_storage(self, plan: Schedule, bw: Emitter, stores: dict, carry_bufs: dict):
        """Adjoints that a sum of products reads side by side (ā_f, ā_i, ā_C, ā_o) are written side by side,
        into the columns of one buffer; every other adjoint gets its own (T, B, n) buffer (into `stores`)."""
        assigned = set(carry_bufs.values())
        for node in (n for name in plan.loop for n in _walk(plan.irs[name])):
            if node.op is not Kind.GEMM_SUM or len(node.args) < 2:
                continue
            us = tuple(u for u, _ in node.args)
            names = [u.args[0] if u.op is Kind.LEAF else None for u in us]
            if (us in bw.seq_stacks or None in names or len(set(names)) < len(names)
                    or any(n not in plan.loop or n in assigned for n in names)):
                continue
            buf, width, off = bw.fresh("_U"), _sum(u.shape[0] for u in us), sp.S.Zero
            bw.alloc(buf, [T_, B_, width])
            for n, u in zip(names, us, strict=True):
                stores[n] = Store(buf, "seq", col=off, width=width)
                assigned.add(n)
                off += u.shape[0]
            bw.seq_stacks[us] = (buf, width)
        for name in plan.loop + plan.post + plan.for_inputs:
            if name not in stores:
                stores[name] = Store(name, "seq")
                bw.alloc(name, [T_, B_] + list(self.shapes[name]))

    @staticmethod
    def _column_sum(term: N, stores: dict) -> bool:
        """Whether a term of a gradient is a stored adjoint summed over steps and sequences (dL/db = Σ_t Σ_b ā_t)."""
        return term.op is Kind.LEAF and len(term.shape) == 1 and stores[term.args[0]].kind == "seq"

    def column_sums(self, plan: Schedule, bw: Emitter, stores: dict, names: set):
        """dL/db += Σ_b ā_t (or, after the loop, Σ_t Σ_b ā_t) for the gradients' terms that are stored adjoints
        among `names`: inside the loop, each step's rows are summed while they are still in the cache, rather
        than all of them again after it (the LSTM at B = 64, H = 128, T = 100: ā is 13 MB, and its backward
        pass took 0.5 to 0.9 ms less of about 25 ms)."""
        for p, g in plan.grad_irs.items():
            for term in _split_terms(g):
                if self._column_sum(term, stores) and term.args[0] in names:
                    st = stores[term.args[0]]
                    rows = bw.contiguous(Store(st.buf, "seq", st.shift), st.width or term.shape[0])
                    bw.line(f"_colsum(_g_{p}, {rows}, {_py(st.col)}, {_py(term.shape[0])})")

    def gradients(self, plan: Schedule, bw: Emitter, stores: dict):
        """dL/dW = Σ_t Σ_b (gradient at step t, sequence b): outer products as one GEMM per operand they
        share and run of adjoints side by side (Σ_t ā_t [h_{t-1}, x_t]ᵀ; in FLIPPED_GRADIENTS' dtypes its
        transpose, Σ_t [h_{t-1}, x_t] ā_tᵀ, copied back transposed), anything else by loops; the sums of stored
        adjoints by column are `column_sums`'."""
        shapes = self.shapes
        outer: dict = {}  # operand v -> [(block of the parameter, u)]
        for p, g in plan.grad_irs.items():
            acc = Store(f"_g_{p}", "param")  # allocated, zeros, before the loop (`column_sums` adds to it there)
            for term in _split_terms(g):
                if term.op is OUTER and len(shapes[p]) == 2 and all(len(a.shape) == 1 for a in term.args):
                    u, v = term.args
                    whole = Block(p, sp.S.Zero, shapes[p][0], sp.S.Zero, shapes[p][1])
                    for part, block in _split_concat(v, whole):
                        outer.setdefault(part, []).append((block, u))
                elif self._column_sum(term, stores):
                    continue
                else:
                    bw.accumulate(_over_steps(term, self.fixed), acc)
        flip = self.dtype in FLIPPED_GRADIENTS
        for v, items in outer.items():
            V, runs = bw.side_by_side([v]), bw.runs([u for _, u in items])
            for run, pieces in zip(runs, _cut(items, [len(run) for run in runs]), strict=True):
                width, D, off = _sum(u.shape[0] for u in run), bw.fresh("_D"), sp.S.Zero
                bw.alloc(D, [v.shape[0], width] if flip else [width, v.shape[0]], kept=True)
                U = bw.side_by_side(run)
                bw.line(f"_dot({V}, {U}, {D}, True)" if flip else f"_dot({U}, {V}, {D}, True)")
                for block, u in pieces:
                    at = f"0, {_py(off)}" if flip else f"{_py(off)}, 0"
                    bw.line(f"_copy(_g_{block.param}, {_py(block.r0)}, {_py(block.c0)}, {D}, {at}, "
                            f"{_py(u.shape[0])}, {_py(block.c1 - block.c0)}, {flip}, True)")
                    off += u.shape[0]

    def gather_returns(self, plan: Schedule, bw: Emitter, stores: dict, carry_bufs: dict) -> tuple[list, list]:
        """Source of each returned gradient, and what each one is: ("param", W), ("input", x), ..."""
        adj, values, returns = self.adj, [], []

        def zeros(dims):
            return f"np.zeros({_shape_tuple(dims)}, DT)"

        for p in self.params:
            returns.append(("param", p))
            values.append(f"_g_{p}" if p in plan.grad_irs else zeros(self.shapes[p]))
        for d in self.cell.inputs:
            kind, bar = ("input" if d.role == "input" else "memory"), adj.inputs.get(d.name)
            returns.append((kind, d.name))
            if bar is None:
                values.append(zeros(([T_, B_] if kind == "input" else [B_]) + list(d.shape)))
            elif kind == "input":
                values.append(stores[bar].buf)
            else:  # a memory is read at every step: its gradient is the sum over them
                acc = Store(f"_g_{d.name}", "batch")
                bw.alloc(acc.buf, [B_] + list(d.shape), "zeros")
                bw.accumulate(_over_steps(plan.irs.get(bar) if bar in plan.summed else
                                          N(Kind.LEAF, (bar,), tuple(d.shape)), self.fixed), acc)
                values.append(acc.buf)
        for st in self.states:
            returns.append(("state", st.name))
            values.append(f"{carry_bufs[st.name]}[0]")
        return values, returns


def _cut(items: list, lengths: list) -> list:
    """`items` cut into consecutive pieces of the given lengths."""
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    return [items[a:a + n] for a, n in zip(starts, lengths, strict=True)]


def _substitute(node: N, name: str, value: N) -> N:
    if node.op is Kind.LEAF:
        return value if node.args[0] == name else node
    if node.op is Kind.GEMM_SUM:
        return N(Kind.GEMM_SUM, tuple((_substitute(u, name, value), b) for u, b in node.args), node.shape)
    return N(node.op, tuple(_substitute(a, name, value) if isinstance(a, N) else a for a in node.args), node.shape)


def _count(node: N, name: str) -> int:
    return sum(1 for n in _walk(node) if n.op is Kind.LEAF and n.args[0] == name)


def _inline_single_uses(irs: dict, grad_irs: dict, keep: set):
    """Fold an elementwise adjoint used exactly once into its consumer (`bar_f` into `bar_a_f`): one loop
    and one buffer fewer, the same arithmetic."""
    for name in list(irs):
        ir = irs[name]
        pointwise = all(n.op in NAMED or (isinstance(n.op, Op) and n.op.kind == "pointwise") for n in _walk(ir))
        if name in keep or not pointwise:
            continue
        users = [(d, k) for d in (irs, grad_irs) for k, other in d.items() if k != name and _count(other, name)]
        if len(users) != 1 or _count(users[0][0][users[0][1]], name) != 1:
            continue
        d, k = users[0]
        if any(n.op in PRODUCTS and any(c.op is Kind.LEAF and c.args[0] == name for c in n.children)
               for n in _walk(d[k])):
            continue  # an operand of a product stays a stored array
        d[k] = _substitute(d[k], name, ir)
        del irs[name]


def _split_concat(v: N, block: Block):
    """u [a, b]ᵀ = [u aᵀ, u bᵀ]: the parts of an outer product's right factor, with the columns each fills."""
    if v.op is CONCAT:
        a, b = v.args
        n_a = a.shape[0]
        return (_split_concat(a, Block(block.param, block.r0, block.r1, block.c0, block.c0 + n_a))
                + _split_concat(b, Block(block.param, block.r0, block.r1, block.c0 + n_a, block.c1)))
    return [(v, block)]


def _function(name: str, args: list, first_input: str, em: Emitter, given: list, ret: str | None = None) -> str:
    """The source of a pass, its loops vectorized as wide as the processor allows (`_wide`, gategraph.helpers).
    Before it writes anything, it checks the arrays it was `given` (flat, helpers.CHECKED to a call of the
    helper `_nonfinite`: checks inline slowed the backward pass's loops by a quarter) and raises
    FloatingPointError(k) if the k-th of them holds NaN or inf. Each is made flat by `a.ravel()`:
    `a.reshape(a.size)` compiles faster, but then LLVM vectorizes almost none of the pass's loops (measured: the
    LSTM's passes ran twice as long)."""
    head = [f"@njit(cache=True, error_model=\"numpy\", nogil=True, fastmath={FASTMATH})",
            f"def {name}({', '.join(args + [w for w, _ in em.work])}):",
            "    _wide()",
            f"    _T, _B = {first_input}.shape[0], {first_input}.shape[1]"]
    flat, n = [f"{a}.ravel()" for a in given], helpers.CHECKED
    if len(flat) % n:
        head.append("    _none = np.empty(0, DT)")
        flat += ["_none"] * (n - len(flat) % n)
    for first in range(0, len(flat), n):
        call = f"_nonfinite(({', '.join(flat[first:first + n])},), {first})"
        head += [f"    _bad = {call}"] if first == 0 else ["    if _bad < 0:", f"        _bad = {call}"]
    head += ["    if _bad >= 0:",
             "        raise FloatingPointError(_bad)"]
    tail = [] if ret is None else ["    " + ret]
    return "\n".join(head + ["    " + a for a in em.allocs] + em.lines + tail) + "\n"


def _docstring(text: str) -> str:
    """`text` as a triple-quoted string literal that holds it and nothing more: every backslash and quote
    in it is escaped, so no text a user wrote (a cell's name) can end the literal and go on as code."""
    return '"""' + text.replace("\\", "\\\\").replace('"', '\\"') + '"""'


def _module(cell: Cell, dtype: str, fwd: ForwardPlan, bwd: BackwardPlan) -> str:
    """The module's source: its docstring (the cell's equations), the imports of the helpers, the two passes."""
    imports = "\n".join(f"from {helpers.name(dtype, part)} import {', '.join(helpers.NAMES[part])}"
                        for part in helpers.PARTS)
    eqs = "\n".join(f"    {eq.name} = {eq.rhs}" for eq in cell.equations)
    doc = _docstring(f"""Kernels for the cell {cell.name!r} in {dtype}, generated by gategraph.lower from

{eqs}

and its adjoint. Do not edit: the file is rebuilt whenever the cell or the generator changes.
""")
    return f'''{doc}

import numpy as np
from numba import njit

{imports}

DT = np.{dtype}


{fwd.source}

{bwd.source}'''
