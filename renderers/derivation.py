"""Derivations written out: the adjoint of a step, the BPTT recurrences, and the chain rule for one
parameter as a lecture slide writes it.

Notation (`notation="bar"`, the default, or `"frac"`):
- `\\bar{v}_t` (or ∂L/∂v_t) is the adjoint of v_t; `\\bar{a}_{f,t}` that of the argument of σ in f_t;
- ∂ℓ_t/∂h_t is what the loss at step t sends to an output directly;
- what step t+1 sends back to a carried state is written out, one step later: the cell state's adjoint
  receives `\\bar{C}_{t+1} \\odot f_{t+1}`;
- a shared concatenation gets a name, stated under the equations (`z_t = [h_{t-1}, x_t]`).

Imports: gategraph.derive, gategraph.ops, gategraph.spec, gategraph.renderers.latex.
"""

from __future__ import annotations

import sympy as sp

from gategraph.derive import Adjoint, AdjointVar, Role, adjoint_name
from gategraph.ops import ADD, NODES, op_of
from gategraph.renderers.latex import GategraphLatexPrinter, GategraphTextPrinter, _width, symbol, times
from gategraph.spec import Var

LOSS = {"latex": r"\mathcal{L}", "text": "L"}
Hadamard = NODES["Hadamard"]


def _frac(num: str, den: str, style: str) -> str:
    return rf"\frac{{\partial {num}}}{{\partial {den}}}" if style == "latex" else f"∂{num}/∂{den}"


class _AdjointNotation:
    """Prints the adjoint's variables (f̄, ā_f, ∂ℓ_t/∂h_t, what step t+1 sends to C) in the chosen notation,
    by their role."""

    def _setup(self, adj: Adjoint, notation: str):
        self._adj, self._notation = adj, notation
        self._names.update({name: (name, 0) for name in adj.named})

    def _forward(self, name):
        """(base, time) of a forward name or a named subexpression."""
        return self._names.get(name, (name, 0))

    def _print_AdjointVar(self, expr):
        role, of, style = expr.role, expr.of, self.style
        if role is Role.SEED:
            base, time = self._forward(of)
            return _frac(_loss_at(style, self._time(0), "="), symbol(base, self._time(time), style), style)
        if role is Role.CARRY:
            return self._carry(of)
        if expr.name in self._adj.carries.values():  # what step t sends back to h_{t-1}: ∂L_{≥t}/∂h_{t-1}
            state = next(s for s, bar in self._adj.carries.items() if bar == expr.name)
            return _frac(_loss_at(style, self._time(0), "≥"), symbol(state, self._time(-1), style), style)
        base, time = (f"a_{of}", 0) if role is Role.PRE else self._forward(of)
        if self._notation == "frac":
            return _frac(LOSS[style], symbol(base, self._time(time), style), style)
        return symbol(base, self._time(time), style, bar=True)

    def _carry(self, state: str) -> str:
        """What step t+1 sends back to state s_t: written out one step later when it is one term
        (C̄_{t+1} ⊙ f_{t+1}), else by its name ∂L_{>t}/∂s_t."""
        bar = self._adj.carries.get(state)
        if bar is None:
            return "0"
        rhs = self._adj.equation(bar).rhs
        if op_of(rhs) is not None and op_of(rhs).name in ("Plus", "Minus"):
            return _frac(_loss_at(self.style, self._time(0), ">"), symbol(state, self._time(0), self.style),
                         self.style)
        self.shift += 1
        try:
            return self._wrap(rhs, ADD + 1)
        finally:
            self.shift -= 1


def _loss_at(style: str, time: int, rel: str) -> str:
    """ℓ_t (the loss at step t, rel "="), L_{>t} (at the steps after t), L_{≥t}."""
    t = {0: "t", 1: "t+1", -1: "t-1"}.get(time, f"t{time:+d}")
    if rel == "=":
        return rf"\ell_{{{t}}}" if style == "latex" else (f"ℓ_{t}" if len(t) == 1 else f"ℓ_{{{t}}}")
    sign = {">": ">", "≥": r"\geq " if style == "latex" else "≥"}[rel]
    return rf"{LOSS[style]}_{{{sign}{t}}}" if style == "latex" else f"L_{{{sign}{t}}}"


class AdjointLatexPrinter(_AdjointNotation, GategraphLatexPrinter):
    pass


class AdjointTextPrinter(_AdjointNotation, GategraphTextPrinter):
    pass


def adjoint_printer(adj: Adjoint, style: str = "latex", notation: str = "bar"):
    cls = AdjointLatexPrinter if style == "latex" else AdjointTextPrinter
    p = cls(times(adj.cell))
    p._setup(adj, notation)
    return p


def adjoint_lhs(adj: Adjoint, name: str, style: str = "latex", notation: str = "bar") -> str:
    return adjoint_printer(adj, style, notation).doprint(adj.var(name))


def gradient_lhs(param: str, style: str) -> str:
    return _frac(LOSS[style], symbol(param, None, style), style)


def _sum_t(p, expr, style) -> str:
    """Σ_t over a per-step expression, in parentheses when it is a sum (Σ_t (a + b), not Σ_t a + b)."""
    op = op_of(expr)
    body = p._wrap(expr, ADD + 1) if op is not None and op.name in ("Plus", "Minus") else p.doprint(expr)
    return rf"\sum_t {body}" if style == "latex" else f"Σ_t {body}"


def _where(adj: Adjoint, style: str, exprs) -> list[tuple[str, str]]:
    """`z_t = [h_{t-1}, x_t]` for each named subexpression whose adjoint the expressions read (a carry from
    step t+1 reads what its equation reads)."""
    names: set = set()
    todo = list(exprs)
    while todo:
        for v in todo.pop().atoms(Var):
            names.add(v.name)
            if isinstance(v, AdjointVar) and v.role is Role.CARRY and adj.carries.get(v.of):
                todo.append(adj.equation(adj.carries[v.of]).rhs)
    fp = GategraphLatexPrinter(times(adj.cell)) if style == "latex" else GategraphTextPrinter(times(adj.cell))
    return [(symbol(n, 0, style), fp.doprint(e)) for n, e in adj.named.items() if adjoint_name(Role.BAR, n) in names]


def adjoint_rows(adj: Adjoint, style: str = "latex", notation: str = "bar") -> list[tuple[str, str]]:
    """(left, right) of every backward equation, then ∂L/∂θ = Σ_t ... for every parameter, then `where`
    lines for the named subexpressions."""
    p = adjoint_printer(adj, style, notation)
    memories = {adjoint_name(Role.BAR, d.name): d.name for d in adj.cell.by_role("memory")}
    rows = [(gradient_lhs(memories[eq.name], style), _sum_t(p, eq.rhs, style)) if eq.name in memories
            else (p.doprint(eq.lhs), p.doprint(eq.rhs)) for eq in adj.equations]
    rows += [(gradient_lhs(name, style), _sum_t(p, g, style)) for name, g in adj.grads.items() if g != 0]
    return rows + _where(adj, style, [eq.rhs for eq in adj.equations])


def align(rows: list[tuple], style: str) -> str:
    """An `aligned` block (LaTeX) or lines aligned on `=` (text). A row is (left, right) or, to go on with a
    long sum on the next line, ("", term, "+") (or "-")."""
    if not rows:
        return ""
    lines = []
    width = max(_width(r[0]) for r in rows)
    for left, right, *rel in rows:
        plus = rel and rel[0] in ("+", "-")
        if style == "latex":
            lines.append(rf"  &\quad {rel[0]} {right}" if plus else f"  {left} &= {right}")
        else:
            pad = " " * (width + 3 if plus else width - _width(left))
            lines.append(f"{pad}{rel[0]} {right}" if plus else f"{pad}{left} = {right}")
    if style == "latex":
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
    return "\n".join(lines)


def adjoint_equations(adj: Adjoint, style: str = "latex", notation: str = "bar") -> str:
    """The whole backward step, in evaluation order, and the parameter gradients as sums over t."""
    return align(adjoint_rows(adj, style, notation), style)


def bptt_rows(adj: Adjoint, style: str = "latex", notation: str = "bar") -> list[tuple[str, str]]:
    """The recurrences through time: the adjoint of each carried state, with what step t+1 sends back
    written out (for the LSTM, `\\bar{C}_t = \\bar{C}_{t+1} \\odot f_{t+1} + ...`)."""
    p = adjoint_printer(adj, style, notation)
    eqs = [adj.equation(adjoint_name(Role.BAR, st.name)) for st in adj.cell.states]
    eqs += [adj.equation(adj.carries[st.name]) for st in adj.cell.states if adj.carries.get(st.name)]
    return [(p.doprint(eq.lhs), p.doprint(eq.rhs)) for eq in eqs] + _where(adj, style, [eq.rhs for eq in eqs])


def derivation_steps(adj: Adjoint, param: str, style: str = "latex", notation: str = "bar") -> list[tuple[str, str]]:
    """The chain rule for ∂L/∂θ as the lecture writes it, each factor then replaced by its derived value,
    ending in the formula the adjoint uses, and where its adjoints come from:

        ∂L/∂W_f = Σ_t ∂L/∂C_t ∂C_t/∂f_t ∂f_t/∂W_f
                = Σ_t ∂L/∂C_t [C_{t-1}] [(f_t ⊙ (1 - f_t)) [h_{t-1}, x_t]ᵀ]
                = Σ_t (C̄_t ⊙ C_{t-1} ⊙ f_t ⊙ (1 - f_t)) [h_{t-1}, x_t]ᵀ
                = Σ_t ā_{f,t} [h_{t-1}, x_t]ᵀ
    The chain climbs through names with a single consumer and stops at the first adjoint with several
    sources (a carried state, an output, a value used twice)."""
    if param not in adj.grads:
        raise KeyError(f"{param!r} is not a parameter of {adj.cell.name!r}; its parameters are {', '.join(adj.grads)}")
    eq_name, path, first_bar, pre_factor = _chain(adj, param)
    p = adjoint_printer(adj, style, notation)
    names = times(adj.cell)

    def sym(name):
        return symbol(*names[name], style) if name in names else symbol(name, None, style)

    top = path[-1][1] if path else eq_name
    factors = [_frac(LOSS[style], sym(top), style)]
    factors += [_frac(sym(to), sym(frm), style) for frm, to, _ in reversed(path)]
    factors.append(_frac(sym(eq_name), symbol(param, None, style), style))
    sigma = r"\sum_t " if style == "latex" else "Σ_t "
    rows = [(gradient_lhs(param, style), sigma + " ".join(factors))]
    grad = adj.grads[param]
    if all(d is not None for _, _, d in path) and pre_factor is not None:
        param_factor = grad.xreplace({adj.var(first_bar): pre_factor})
        values = [p.doprint(d) for _, _, d in reversed(path)] + [p.doprint(param_factor)]
        if style == "latex":
            braced = [rf"\underbrace{{{f}}}_{{{v}}}" for f, v in zip(factors[1:], values, strict=True)]
        else:
            braced = [f"[{v}]" for v in values]
        rows.append(("", sigma + " ".join([factors[0]] + braced)))
        composed = AdjointVar(Role.BAR, top)
        for _, _, d in reversed(path):
            composed = composed if d == 1 else Hadamard(composed, d)
        composed = composed if pre_factor == 1 else Hadamard(composed, pre_factor)
        rows.append(("", _sum_t(p, grad.xreplace({adj.var(first_bar): composed}), style)))
    rows.append(("", _sum_t(p, grad, style)))
    bars = [adjoint_name(Role.BAR, frm) for frm, _, _ in path] + [adjoint_name(Role.BAR, top)]
    for name in [first_bar] + [b for b in bars[:-1] if b != first_bar] + bars[-1:]:
        if name in adj.names:
            eq = adj.equation(name)
            row = (p.doprint(eq.lhs), p.doprint(eq.rhs))
            if row not in rows:
                rows.append(row)
    return rows


def _chain(adj: Adjoint, param: str):
    """The equation that reads a parameter; the path from it up through single consumers,
    [(name, consumer, factor)] with the adjoint of name = that of consumer ⊙ factor (None where it is not
    elementwise); the adjoint the parameter's gradient reads (ā_f or f̄); and the σ' factor
    between them (1 without a pre-activation)."""
    cell = adj.cell
    eq_name = next(eq.name for eq in cell.equations if Var(param) in eq.rhs.atoms(Var))
    pre, bar = adjoint_name(Role.PRE, eq_name), adjoint_name(Role.BAR, eq_name)
    if pre in adj.names:
        first_bar, pre_factor = pre, _factor(adj.equation(pre).rhs, AdjointVar(Role.BAR, eq_name))
    else:
        first_bar, pre_factor = bar, sp.S.One
    path, name = [], eq_name
    while True:
        consumers = [eq.name for eq in cell.equations if Var(name) in eq.rhs.atoms(Var)]
        if len(consumers) != 1 or name in cell.outputs or any(st.name == name for st in cell.states):
            break
        path.append((name, consumers[0], _factor(adj.equation(adjoint_name(Role.BAR, name)).rhs,
                                                 AdjointVar(Role.BAR, consumers[0]))))
        name = consumers[0]
    return eq_name, path, first_bar, pre_factor


def _factor(expr, bar):
    """D in `bar ⊙ D` (1 for `bar` itself); None if `expr` is not of that form."""
    if expr == bar:
        return sp.S.One
    op = op_of(expr)
    if op is not None and op.name == "Hadamard" and expr.args[0] == bar:
        return expr.args[1]
    return None


def _factor_text(p, f, style) -> str:
    latex = style == "latex"
    if f.kind == "diag":
        if f.expr == -1:
            return "-"
        inner = p.doprint(f.expr)
        return rf"\operatorname{{diag}}({inner})" if latex else f"diag({inner})"
    if f.kind == "scalar":
        return p._wrap(f.expr, 100)
    if f.kind in ("column", "row"):
        v = (r"\mathbf{1}" if latex else "1") if f.expr is None else p._wrap(f.expr, 100)
        return v if f.kind == "column" else (rf"{v}^\top" if latex else f"{v}ᵀ")
    if f.kind == "matrix":
        m = p._wrap(f.expr, 100)
        if f.start is None:
            return m
        cols = f"{p.doprint(f.start + 1)}:{p.doprint(f.stop)}"
        if latex:
            return f"({m})_{{:,{cols}}}" if "_" in m else f"{m}_{{:,{cols}}}"
        return f"{m}[:, {cols}]"
    cols = f"{p.doprint(f.start + 1)}:{p.doprint(f.stop)}"
    return rf"E_{{{cols}}}" if latex else f"E[{cols}]"


def jacobian_rows(adj: Adjoint, state: str, style: str = "latex") -> list[tuple]:
    """∂s_t/∂s_{t-1} with the other states held fixed, one term per line, and the product of k such steps:
    the whole ∂s_t/∂s_{t-k} for a cell with one state, the path along s alone for a cell with several
    (the LSTM's C also reaches later steps through h and the gates)."""
    from gategraph.jacobian import step_jacobian

    J = step_jacobian(adj, state)
    latex = style == "latex"
    others = [st.name for st in adj.cell.states if st.name != state]

    def term_text(p, term):
        text = " ".join(_factor_text(p, f, style) for f in _merge_diagonals(term))
        identity = r"\mathbf{I}" if latex else "I"
        return {"": identity, "-": f"- {identity}"}.get(text, text)

    def qualified(frac, note):
        if not others:
            return frac
        return rf"\left.{frac}\right|_{{\text{{{note}}}}}" if latex else f"{frac} ({note})"

    p = adjoint_printer(adj, style)
    fixed = ", ".join(symbol(o, -1, style) for o in others)
    one = qualified(_frac(symbol(state, 0, style), symbol(state, -1, style), style),
                    f"${fixed}$ fixed" if latex else f"{fixed} fixed")
    terms = [term_text(p, t) for t in J.terms] or ["0"]
    rows = [(one, terms[0])] + [("", t[2:], "-") if t.startswith("- ") else ("", t, "+") for t in terms[1:]]
    pj = adjoint_printer(adj, style)
    pj.shift = "j"
    if len(J.terms) == 1:
        body = term_text(pj, J.terms[0])
    else:
        body = _frac(symbol(state, "t-j", style), symbol(state, "t-j-1", style), style)
    prod = rf"\prod_{{j=0}}^{{k-1}} {body}" if latex else f"Π_{{j=0..k-1}} {body}"
    many = qualified(_frac(symbol(state, 0, style), symbol(state, "t-k", style), style),
                     f"along ${symbol(state, None, style)}$ only" if latex else f"along {state} only")
    rows.append((many, prod))
    return rows


def _merge_diagonals(term):
    """diag(a) diag(b) = diag(a ⊙ b)."""
    from gategraph.jacobian import Factor

    out = []
    for f in term:
        if f.kind == "diag" and out and out[-1].kind == "diag" and out[-1].expr != -1 and f.expr != -1:
            out[-1] = Factor("diag", Hadamard(out[-1].expr, f.expr))
        else:
            out.append(f)
    return out


def jacobian_factor_text(adj: Adjoint, state: str, t: int, style: str = "text") -> str:
    """∂s_t/∂s_{t-1} at an absolute step t (diag(f_3)), for labels of unrolled graphs; long ones, and those
    that are no product of matrices (a recurrence through a softmax over a memory), by name."""
    from gategraph.errors import UsageError
    from gategraph.jacobian import step_jacobian

    try:
        terms = step_jacobian(adj, state).terms
    except UsageError:  # not a product of matrices: the label names it
        terms = ()
    p = adjoint_printer(adj, style)
    p.shift = ("abs", t)
    if len(terms) == 1:
        return " ".join(_factor_text(p, f, style) for f in _merge_diagonals(terms[0]))
    return _frac(symbol(state, str(t), style), symbol(state, str(t - 1), style), style)


def derivation_table(adj: Adjoint, params: list[str], style: str = "latex") -> str:
    """The gradients of several parameters side by side, one row each, to show they follow one pattern:
    ∂L/∂W = Σ_t ā_t [h_{t-1}, x_t]ᵀ | ā_t = v̄_t ⊙ (the gate's derivative) | v̄_t = (what the gate feeds)."""
    rows = []
    for param in params:
        steps = derivation_steps(adj, param, style)
        last = max(k for k, (left, _) in enumerate(steps) if not left)
        where = steps[last + 1: last + 3]
        rows.append([f"{steps[0][0]} = {steps[last][1]}"] + [f"{left} = {right}" for left, right in where])
    if style != "latex":
        return "\n".join("   ".join(row) for row in rows)
    width = max(len(row) for row in rows)
    gap = r"\qquad "  # between the columns (KaTeX knows no @{...} in an array's preamble)
    body = r" \\[8pt] ".join(" & ".join(rf"{gap if k else ''}\displaystyle {c}"
                                         for k, c in enumerate(row + [""] * (width - len(row)))) for row in rows)
    return rf"\begin{{array}}{{{'l' * width}}} {body} \end{{array}}"
