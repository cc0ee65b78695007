"""Notation: a cell's equations as LaTeX (a SymPy LatexPrinter subclass) and as plain text.

The printer owns the notation of the lecture: names at step t get the subscript t (`f_t`), carried
states are read as `h_{t-1}`, `C_tilde` is `\\tilde{C}_t`, `W · [h_{t-1}, x_t]` keeps its brackets, and
every op prints through its own template in `gategraph.ops`, in the order the cell was written.

>>> from gategraph.cells import lstm
>>> print(equation(lstm(), "f"))
f_t = \\sigma(W_f \\cdot [h_{t-1}, x_t] + b_f)

Imports: sympy, gategraph.ops, gategraph.spec.
"""

from __future__ import annotations

import re
import unicodedata

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from gategraph.ops import ADD, ATOM, MUL, op_of
from gategraph.spec import Cell

GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu", "pi", "rho", "sigma",
         "tau", "phi", "psi", "omega"}
GREEK_TEXT = dict(zip(sorted(GREEK), "αβδεηγλμωφπψρστθ", strict=True))
ACCENTS = {"tilde": ("\\tilde{{{}}}", "{}\u0303"), "hat": ("\\hat{{{}}}", "{}\u0302"),
           "bar": ("\\bar{{{}}}", "{}\u0304")}
TIME = {0: "t", -1: "t-1", 1: "t+1", 2: "t+2", -2: "t-2"}
FUNCTION_TEMPLATE = re.compile(r"^\\?[A-Za-z]+(\{\{[A-Za-z]+\}\})?\(\{0\}\)$")  # \tanh({0}), \operatorname{{ReLU}}({0})


def symbol(name: str, time: int | None = None, style: str = "latex", bar: bool = False) -> str:
    """The printed form of a name: `C_tilde` at time 0 -> `\\tilde{C}_t`; `W_f` -> `W_f`; `alpha` -> `\\alpha_t`.

    An accent word (tilde, hat, bar) marks the part before it: `a_C_tilde` -> a_{\\tilde{C},t}.
    `bar=True` writes the adjoint: a bar over the base (\\bar{h}_{t-1}).

    >>> symbol("C_tilde", 0), symbol("h", -1), symbol("W_hz"), symbol("a_f", 0), symbol("alpha", 0, "text")
    ('\\\\tilde{C}_t', 'h_{t-1}', 'W_{hz}', 'a_{f,t}', 'α_t')
    >>> symbol("a_C_tilde", 0, bar=True)
    '\\\\bar{a}_{\\\\tilde{C},t}'
    """
    latex = style == "latex"
    parts: list[str] = []
    for word in name.split("_"):
        if word in ACCENTS and parts:
            parts[-1] = ACCENTS[word][0 if latex else 1].format(parts[-1])
        elif word in GREEK:
            parts.append(f"\\{word}" if latex else GREEK_TEXT[word])
        else:
            parts.append(word)
    base, subs = parts[0], parts[1:]
    if bar:
        base = ACCENTS["bar"][0 if latex else 1].format(base)
    if time is not None:
        subs.append(TIME[time] if isinstance(time, int) else time)
    sub = ",".join(subs)
    text = base if not sub else f"{base}_{sub}" if len(sub) == 1 else f"{base}_{{{sub}}}"
    return text if latex else unicodedata.normalize("NFC", text)  # ā as one character where Unicode has it


def times(cell: Cell) -> dict[str, tuple[str, int | None]]:
    """name -> (printed base name, time index) for every symbol of the cell."""
    table = {}
    for name in cell.shapes:
        d = cell.decl(name)
        table[name] = (d.state or name, d.time)
    return table


class _Notation:
    """Shared by the LaTeX and the text printer: symbols by role and time, ops by their templates."""

    style = "latex"

    def _init_notation(self, names):
        self._names = names or {}
        self.shift = 0  # print every time index this many steps later (t -> t+1)

    def _time(self, time):
        if time is None:
            return None
        if isinstance(self.shift, str):  # a symbolic step back: t -> t-j, t-1 -> t-j-1
            return f"t-{self.shift}" + (f"{time:+d}" if time else "")
        if isinstance(self.shift, tuple):  # ("abs", 3): absolute steps, t -> 3, t-1 -> 2
            return str(self.shift[1] + time)
        return time + self.shift

    def _print_Var(self, expr):
        base, time = self._names.get(expr.name, (expr.name, None))
        return symbol(base, self._time(time), self.style)

    def _print_OpNode(self, expr):
        op = op_of(expr)
        if op.name == "Scale" and expr.args[0] == -1:
            return "-" + self._wrap(expr.args[1], MUL + 1)
        inner_op = op_of(expr.args[0])
        if op.name == "Square" and inner_op is not None and FUNCTION_TEMPLATE.match(inner_op.latex):
            inner = self._print(expr.args[0])  # tanh(C_t)² is written tanh²(C_t)
            name, _, rest = inner.partition("(")
            return f"{name}^2({rest}" if self.style == "latex" else f"{name}²({rest}"
        if op.name == "Slice":  # 1-based, as a mathematician indexes: [z̄_t]_{1:H}
            start, stop = expr.args[1] + 1, expr.args[2]
            inner = self._print(expr.args[0])
            bounds = f"{self._print(start)}:{self._print(stop)}"
            return f"[{inner}]_{{{bounds}}}" if self.style == "latex" else f"{inner}[{bounds}]"
        template = op.latex if self.style == "latex" else op.text
        need = op.latex_arg_prec if self.style == "latex" and op.latex_arg_prec else op.arg_prec
        parts = [self._wrap(a, need[i]) for i, a in enumerate(expr.args)]
        return template.format(*parts)

    def _wrap(self, arg, need):
        s = self._print(arg)
        return f"({s})" if _prec(arg) < need else s


def _prec(expr) -> int:
    op = op_of(expr)
    if op is not None:
        return op.prec
    if isinstance(expr, sp.Number) and expr.is_negative:
        return ADD
    if isinstance(expr, sp.Rational) and not expr.is_Integer:
        return MUL
    return ATOM


class GategraphLatexPrinter(_Notation, LatexPrinter):
    """LaTeX in the lecture's notation; `names` maps a symbol to (base name, time)."""

    style = "latex"

    def __init__(self, names=None, settings=None):
        LatexPrinter.__init__(self, settings)
        self._init_notation(names)


class GategraphTextPrinter(_Notation, StrPrinter):
    """Plain text in the same notation: `f_t = σ(W_f · [h_{t-1}, x_t] + b_f)`."""

    style = "text"

    def __init__(self, names=None, settings=None):
        StrPrinter.__init__(self, settings)
        self._init_notation(names)


def printer(cell: Cell, style: str = "latex"):
    cls = {"latex": GategraphLatexPrinter, "text": GategraphTextPrinter}[style]
    return cls(times(cell))


def expr(cell: Cell, e, style: str = "latex") -> str:
    """One expression of `cell`, printed."""
    return printer(cell, style).doprint(e)


def lhs(cell: Cell, name: str, style: str = "latex") -> str:
    base, time = times(cell)[name]
    return symbol(base, time, style)


def equation(cell: Cell, name: str, style: str = "latex") -> str:
    """`f_t = \\sigma(W_f \\cdot [h_{t-1}, x_t] + b_f)`: one equation of the cell."""
    p = printer(cell, style)
    return f"{lhs(cell, name, style)} = {p.doprint(cell.equation(name).rhs)}"


def equations(cell: Cell, style: str = "latex") -> str:
    """All equations of one step: an `aligned` block in LaTeX, aligned lines in text."""
    p = printer(cell, style)
    rows = [(lhs(cell, eq.name, style), p.doprint(eq.rhs)) for eq in cell.equations]
    if style == "latex":
        body = " \\\\\n".join(f"  {left} &= {right}" for left, right in rows)
        return "\\begin{aligned}\n" + body + "\n\\end{aligned}"
    width = max(_width(left) for left, _ in rows)
    return "\n".join(" " * (width - _width(left)) + f"{left} = {right}" for left, right in rows)


def _width(text: str) -> int:
    """Columns a string takes on a terminal (combining accents take none)."""
    return sum(not unicodedata.combining(ch) for ch in text)


TEXT_MATH = {"σ": r"\sigma", "·": r"\cdot", "≈": r"\approx", "⊙": r"\odot", "−": "-", "α": r"\alpha",
             "ᵀ": r"^\top", "∂": r"\partial", "ℓ": r"\ell", "²": "^2", "→": r"\to", "✓": r"\checkmark", "′": "'"}
TEXT_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "^": r"\textasciicircum{}", "&": r"\&", "%": r"\%",
                "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}"}


def text_in_latex(text: str) -> str:
    """Plain prose (which may hold σ, ·, ≈, o_t) as the argument of \\text{...}: specials escaped, math
    symbols in $...$, so both pdflatex and KaTeX accept it."""
    out = []
    for ch in text:
        if ch in TEXT_MATH:
            out.append(f"${TEXT_MATH[ch]}$")
        else:
            out.append(TEXT_ESCAPES.get(ch, ch))
    return "".join(out)


def standalone(blocks: list[str], title: str = "") -> str:
    """A complete LaTeX document showing `blocks` (each an `aligned` block or a line of math) as displayed
    equations: what pdflatex compiles to check that the notation is valid LaTeX."""
    head = ("\\documentclass[11pt]{article}\n\\usepackage[margin=1.5cm,landscape]{geometry}\n"
            "\\usepackage{amsmath,amssymb}\n\\begin{document}\n")
    if title:
        head += f"\\section*{{{text_in_latex(title)}}}\n"
    body = "\n".join(f"\\[\n{b}\n\\]" for b in blocks)
    return head + body + "\n\\end{document}\n"
