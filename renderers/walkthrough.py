"""A worked example written out: every equation with its numbers substituted, as LaTeX or plain text.

For each equation of an `Evaluation` (gategraph.worked) the walkthrough shows, as a lecture slide does:
the equation; the equation with the numbers put in; each product W · [a, b] block by block; the value
inside σ or tanh; the exact value; its decimal value; and, where a source claimed a value, the claim
beside the computed one, marked as holding or not to the precision the source wrote.

Imports: numpy, sympy, gategraph.ops, gategraph.worked, gategraph.renderers.latex.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from gategraph.backprop import BackwardExample
from gategraph.numeric import to_float, value_of
from gategraph.ops import op_of
from gategraph.renderers.derivation import (
    AdjointLatexPrinter,
    AdjointTextPrinter,
    adjoint_lhs,
    adjoint_printer,
    gradient_lhs,
)
from gategraph.renderers.latex import (
    GategraphLatexPrinter,
    GategraphTextPrinter,
    _width,
    lhs,
    printer,
    text_in_latex,
    times,
)
from gategraph.spec import Var, symbols_of
from gategraph.worked import Evaluation, Step

CHECK = {"latex": (r"\checkmark", r"\times"), "text": ("✓", "✗")}


def number(v, style: str = "latex") -> str:
    """An exact or float number as a reader wants it: 7/10 -> 0.7, 1/3 -> 1/3, σ(1) -> σ(1), 3.7e-44."""
    if isinstance(v, float | np.floating):
        return _float(float(v), style)
    v = sp.sympify(v)
    if v.is_Integer:
        return str(int(v))
    if v.is_Rational:
        q = int(v.q)
        while q % 2 == 0:
            q //= 2
        while q % 5 == 0:
            q //= 5
        if q == 1:  # a terminating decimal: write it as one
            return _float(float(v), style, digits=15)
        return rf"\frac{{{v.p}}}{{{v.q}}}" if style == "latex" else f"{v.p}/{v.q}"
    return _SCALAR[style].doprint(v)


def _float(x: float, style: str, digits: int = 4) -> str:
    s = f"{x + 0.0:.{digits}g}"  # + 0.0: a negative zero is written 0
    if "e" in s and style == "latex":
        mant, exp = s.split("e")
        return rf"{mant} \cdot 10^{{{int(exp)}}}"
    return s


class _ScalarLatex(GategraphLatexPrinter):
    def _print_sigma(self, expr, exp=None):
        power = f"^{{{exp}}}" if exp else ""
        return rf"\sigma{power}({self._print(expr.args[0])})"

    def _print_tanh(self, expr, exp=None):
        power = f"^{{{exp}}}" if exp else ""
        return rf"\tanh{power}({self._print(expr.args[0])})"


class _ScalarText(GategraphTextPrinter):
    def _print_sigma(self, expr):
        return f"σ({self._print(expr.args[0])})"

    def _print_tanh(self, expr):
        return f"tanh({self._print(expr.args[0])})"

    def _print_Mul(self, expr):
        return super()._print_Mul(expr).replace("**", "^").replace("*", "·")


_SCALAR = {"latex": _ScalarLatex(), "text": _ScalarText()}


def array(a, style: str = "latex", exact: bool = True) -> str:
    """A vector as a column (LaTeX) or `[1, 2]` (text); a matrix row by row."""
    a = np.asarray(a)
    fmt = (lambda v: number(v, style)) if exact else (lambda v: _float(float(v), style))
    if a.ndim == 0:
        return fmt(a[()])
    if style == "text":
        if a.ndim == 1:
            return "[" + ", ".join(fmt(v) for v in a) + "]"
        return "[" + ", ".join(array(row, style, exact) for row in a) + "]"
    rows = [[fmt(v)] for v in a] if a.ndim == 1 else [[fmt(v) for v in row] for row in a]
    return r"\begin{bmatrix}" + r" \\ ".join(" & ".join(r) for r in rows) + r"\end{bmatrix}"


SHORT = 14  # longest exact number (in characters) a substituted line shows before it switches to decimals


def _short(values, style: str) -> bool:
    return all(len(number(v, style)) <= SHORT for v in np.asarray(values).ravel())


class _Substituting:
    """Prints symbols as their numbers; with `blocks`, a product W · [a, b] as its evaluated blocks."""

    def _setup(self, ev: Evaluation, step: Step, blocks: bool, exact: bool):
        self._ev, self._step, self._blocks, self._exact = ev, step, blocks, exact

    def _print_Var(self, expr):
        return array(self._ev[expr.name], self.style, self._exact)

    def _print_OpNode(self, expr):
        op, rhs = op_of(expr), expr.args
        if op.name == "MatMul" and op_of(rhs[1]) is not None and op_of(rhs[1]).name == "Concat":
            parts = [p for p in self._step.parts if p.matrix == rhs[0].name]
            if self._blocks:
                return " + ".join(array(p.value, self.style, self._exact) for p in parts)
            dot = r" \cdot " if self.style == "latex" else " · "
            return " + ".join(array(p.weights, self.style, self._exact) + dot + self._wrap(p.operand, op.arg_prec[1])
                              for p in parts)
        return super()._print_OpNode(expr)


class _SubLatex(_Substituting, GategraphLatexPrinter):
    pass


class _SubText(_Substituting, GategraphTextPrinter):
    pass


def _substituted(ev: Evaluation, step: Step, style: str, blocks: bool, exact: bool) -> str:
    p = (_SubLatex if style == "latex" else _SubText)(times(ev.cell))
    p._setup(ev, step, blocks, exact)
    return p.doprint(ev.cell.equation(step.name).rhs)


def step_lines(ev: Evaluation, step: Step, style: str = "latex") -> list[str]:
    """The chain `name = formula = numbers = ... ≈ value`, one link per line (first one with the name).

    Exact numbers are shown while they stay short; from the first link that would need a long exact
    expression on, the chain goes on in decimals, with ≈."""
    cell, name = ev.cell, step.name
    left = lhs(cell, name, style)
    if step.given:
        return [f"{left} = {array(step.value, style, ev.exact)}"]
    rhs = cell.equation(name).rhs
    exact = ev.exact and all(_short(ev[v.name], style) for v in symbols_of(rhs))
    chain = [("=", printer(cell, style).doprint(rhs))]
    for blocks in (False, True) if step.parts else (False,):
        if blocks:
            exact = exact and all(_short(p.value, style) for p in step.parts)
        chain.append(("=" if exact else "≈", _substituted(ev, step, style, blocks, exact)))
    if step.argument is not None:
        exact = exact and _short(step.argument, style)
        template = op_of(rhs).latex if style == "latex" else op_of(rhs).text
        chain.append(("=" if exact else "≈", template.format(array(step.argument, style, exact))))
    if exact and _short(step.value, style):
        chain.append(("=", array(step.value, style, exact=True)))
    chain.append(("≈", array(to_float(step.value), style, exact=False)))
    return _chain(left, chain, style)


def _block(ev: Evaluation, part, style: str) -> str:
    """The block of W that meets one operand, times it: `W_f[h] · h_{t-1}` (text), W_{f}^{(h)} h_{t-1} (LaTeX)."""
    p = printer(ev.cell, style)
    matrix = p.doprint(ev.cell.decl(part.matrix).var)
    block = times(ev.cell)[part.operand.name][0]
    if style == "latex":
        return rf"{matrix}^{{({block})}} \cdot {p.doprint(part.operand)}"
    return f"{matrix}[{block}] · {p.doprint(part.operand)}"


def claim_lines(ev: Evaluation, step: Step, style: str = "latex", words: bool = True, notes=None) -> list[str]:
    """What the source claimed for this step, each beside the computed value, marked ✓ or ✗ (and, with
    `words`, the verdict written out); under a claim, its lines in `notes` (claim key -> lines)."""
    out = []
    names = times(ev.cell)
    for v in (v for v in ev.verdicts if v.claim.name == step.name):
        c = v.claim
        if c.part is None:
            what = lhs(ev.cell, c.name, style)
        else:
            part = next(p for p in step.parts if p.operand.name == c.part or names[p.operand.name][0] == c.part)
            what = _block(ev, part, style)
        rel = (r"\approx" if style == "latex" else "≈") if c.approx else "="
        mark = CHECK[style][0 if v.holds else 1]
        claimed = array(np.asarray(c.value, dtype=float), style, exact=False)
        computed = array(v.computed, style, exact=False)
        verdict = "holds" if v.holds else f"does not hold (off by {v.error:.3g})"
        if not v.holds and c.note:
            verdict += f": {c.note}"
        if style == "latex":
            verdict = text_in_latex(verdict)
        if style == "latex":
            said = rf"\ \text{{{verdict}}}" if words else ""
            out.append(rf"\text{{claimed }} {what} {rel} {claimed}\quad \text{{computed }} {computed}"
                       rf"\quad {mark}{said}")
        else:
            out.append(f"claimed {what} {rel} {claimed}   computed {computed}   {mark} {verdict}")
        out += [("    " if style == "text" else r"\qquad ") + line for line in (notes or {}).get(c.key, [])]
    return out


def walkthrough(ev: Evaluation, style: str = "latex", notes=None) -> str:
    """The whole worked example: each equation, its numbers, and the verdict on each claim (with its lines
    in `notes`, claim key -> lines, under it: the diagnosed slips)."""
    cell = ev.cell
    inputs = [f"{lhs(cell, n, style)} = {array(v, style, ev.exact)}"
              for n, v in ev.values.items() if cell.roles[n] != "param"]
    blocks = []
    for step in ev.steps:
        title = cell.equation(step.name).title or step.name
        note = " (given)" if step.given else ""
        lines = step_lines(ev, step, style)
        claims = claim_lines(ev, step, style, notes=notes)
        if style == "latex":
            body = " \\\\\n".join(lines + [f"& {c}" for c in claims])
            blocks.append(f"% {title}{note}\n\\begin{{aligned}}\n{body}\n\\end{{aligned}}")
        else:
            blocks.append("\n".join([f"{title}{note}"] + ["  " + ln for ln in lines] + ["  " + c for c in claims]))
    failed = [v for v in ev.verdicts if not v.holds]
    summary = (f"{len(ev.verdicts) - len(failed)} of {len(ev.verdicts)} claimed values hold"
               if ev.verdicts else "")
    if style == "latex":
        head = r"\begin{aligned}" + r" \\ ".join("&" + i for i in inputs) + r"\end{aligned}"
        tail = f"\n% {summary}" if summary else ""
        return head + "\n\n" + "\n\n".join(blocks) + tail
    head = "given: " + "; ".join(inputs)
    return head + "\n\n" + "\n\n".join(blocks) + (f"\n\n{summary}" if summary else "")


def claim_table(ev: Evaluation, step: Step) -> str:
    """The claims of one step as one compact LaTeX table — what, the claimed value, the computed one, ✓ or ✗ —
    with vectors written as rows `[a,\\ b]`, so the table is as short as it has claims; "" without claims."""
    names, rows = times(ev.cell), []

    def flat(a) -> str:
        a = np.asarray(a, dtype=float)
        if a.ndim > 1:
            return array(a, "latex", exact=False)
        return "[" + r",\ ".join(_float(float(v), "latex") for v in np.atleast_1d(a)) + "]"

    for v in (v for v in ev.verdicts if v.claim.name == step.name):
        c = v.claim
        if c.part is None:
            what = lhs(ev.cell, c.name, "latex")
        else:
            part = next(p for p in step.parts if p.operand.name == c.part or names[p.operand.name][0] == c.part)
            what = _block(ev, part, "latex")
        rel = r"\approx " if c.approx else ""
        rows.append(rf"{what} & {rel}{flat(c.value)} & {flat(v.computed)} & {CHECK['latex'][0 if v.holds else 1]}")
    if not rows:
        return ""
    return (r"\begin{array}{lllc} & \text{claimed} & \text{computed} & \\ \hline "
            + r" \\ ".join(rows) + r"\end{array}")


# --- the backward pass with numbers -------------------------------------------------------------------------


class _AdjointNumbers:
    """Prints every variable, forward or adjoint, as its numbers at one step."""

    def _numbers(self, env: dict, exact: bool):
        self._env, self._exact = env, exact

    def _print_Var(self, expr):
        return array(self._env[expr.name], self.style, self._exact)

    _print_AdjointVar = _print_Var

    def _print_OpNode(self, expr):
        if op_of(expr).name == "Concat":  # [h_{t-1}, x_t] as the one vector it is
            return array(value_of(expr, self._env, self._exact), self.style, self._exact)
        return super()._print_OpNode(expr)


class _AdjointNumbersLatex(_AdjointNumbers, AdjointLatexPrinter):
    pass


class _AdjointNumbersText(_AdjointNumbers, AdjointTextPrinter):
    pass


def _numbers_printer(ex: BackwardExample, env: dict, style: str, exact: bool):
    p = (_AdjointNumbersLatex if style == "latex" else _AdjointNumbersText)(times(ex.cell))
    p._setup(ex.adjoint, "bar")
    p._numbers(env, exact)
    return p


def _chain(left: str, links: list, style: str) -> list[str]:
    """`left = a = b ≈ c`, one link per line, links that say nothing new left out."""
    out, seen = [], set()
    for rel, link in links:
        if link not in seen:
            seen.add(link)
            out.append((rel, link))
    if style == "latex":
        rels = {"=": "&=", "≈": r"&\approx"}
        return [f"{left} {rels[out[0][0]]} {out[0][1]}"] + [f"{rels[r]} {link}" for r, link in out[1:]]
    pad = " " * _width(left)
    return [f"{left} {out[0][0]} {out[0][1]}"] + [f"{pad} {r} {link}" for r, link in out[1:]]


def _value_links(value, exact: bool, style: str) -> list:
    links = [("=", array(value, style, exact=True))] if exact and _short(value, style) else []
    return links + [("≈", array(to_float(value), style, exact=False))]


def adjoint_lines(ex: BackwardExample, t: int, name: str, style: str = "text") -> list[str]:
    """One adjoint equation at step t: `C̄_t = formula = its numbers = value ≈ decimals`."""
    env, eq = ex.steps[t], ex.adjoint.equation(name)
    p = adjoint_printer(ex.adjoint, style)
    exact = ex.exact and all(_short(env[v.name], style) for v in eq.rhs.atoms(Var))
    links = [("=", p.doprint(eq.rhs)), ("=" if exact else "≈", _numbers_printer(ex, env, style, exact).doprint(eq.rhs))]
    return _chain(p.doprint(eq.lhs), links + _value_links(env[name], exact, style), style)


def gradient_lines(ex: BackwardExample, param: str, style: str = "text") -> list[str]:
    """∂L/∂θ = Σ_t (its contribution at t) = the contributions' numbers added up = the total."""
    g, p = ex.adjoint.grads[param], adjoint_printer(ex.adjoint, style)
    shown = [_with_named(ex, env) for env in ex.steps]
    exact = ex.exact and all(_short(env[v.name], style) for env in shown for v in g.atoms(Var))
    total = "Σ_t " if style == "text" else r"\sum_t "
    links = [("=", total + p.doprint(g)),
             ("=" if exact else "≈", " + ".join(_numbers_printer(ex, env, style, exact).doprint(g) for env in shown))]
    if ex.T > 1:
        links.append(("=" if exact else "≈", " + ".join(array(value_of(g, env, ex.exact), style, exact)
                                                         for env in shown)))
    return _chain(gradient_lhs(param, style), links + _value_links(ex.grads[param], exact, style), style)


def _with_named(ex: BackwardExample, env: dict) -> dict:
    """A step's values and those of the named subexpressions (z_t = [h_{t-1}, x_t])."""
    return env | {n: value_of(node, env, ex.exact) for n, node in ex.adjoint.named.items()}


def _seed_lines(ex: BackwardExample, style: str) -> list[str]:
    out_name = lhs(ex.cell, ex.output, style)
    seed = adjoint_lhs(ex.adjoint, ex.adjoint.seeds[ex.output], style)
    if ex.target is None:
        return [f"{seed} = {array(ex.seed, style, ex.exact)}   (given)" if style == "text"
                else rf"{seed} &= {array(ex.seed, style, ex.exact)} \quad \text{{(given)}}"]
    y, loss = array(ex.target, style, ex.exact), float(to_float(np.asarray([ex.loss]))[0])
    head = (f"loss at the last step t = {ex.T}: L = ½‖{out_name} − y‖² with y = {y}   L ≈ {loss:.4g}"
            if style == "text" else
            rf"\mathcal{{L}} &= \tfrac12 \lVert {out_name} - y \rVert^2 \approx {loss:.4g},\quad y = {y}")
    return [head, *_chain(seed, [("=", f"{out_name} - y"), *_value_links(ex.seed, ex.exact, style)], style)]


def backward_walkthrough(ex: BackwardExample, style: str = "text") -> str:
    """The whole backward pass: the loss and its seed, then every adjoint of every step from the last to the
    first (what flows into step t−1 last), then each parameter's gradient."""
    cell, blocks = ex.cell, []
    for t in reversed(range(ex.T)):
        forward = "; ".join(f"{lhs(cell, eq.name, style)} ≈ {array(ex.floats(eq.name, t), style, exact=False)}"
                            for eq in cell.equations)
        lines = [ln for eq in ex.adjoint.equations for ln in adjoint_lines(ex, t, eq.name, style)]
        title = f"step {t + 1} of {ex.T}" + (" (the loss is here)" if t == ex.T - 1 else "")
        blocks.append((title, [forward] if style == "text" else [], lines))
    grads = [ln for p in cell.params if ex.adjoint.grads[p.name] != 0 for ln in gradient_lines(ex, p.name, style)]
    blocks.append(("the gradients, summed over the steps", [], grads))
    if style == "latex":
        body = [r"\begin{aligned}" + r" \\ ".join(_seed_lines(ex, style)) + r"\end{aligned}"]
        body += [f"% {title}\n\\begin{{aligned}}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
                 for title, _, lines in blocks]
        return "\n\n".join(body)
    out = ["\n".join(_seed_lines(ex, style))]
    out += ["\n".join([title] + ["  forward: " + f for f in fwd] + ["  " + ln for ln in lines])
            for title, fwd, lines in blocks]
    return "\n\n".join(out)


def backward_blocks(ex: BackwardExample) -> list:
    """Deck blocks of the backward pass: the loss, then per step its adjoint chains, then the gradients;
    each a `Math` block (renderers/deck.py) a slide can hold, in the order a lecture shows them."""
    from gategraph.renderers.deck import Math

    latex = backward_walkthrough(ex, "latex").split("\n\n")
    return [Math("\n".join(ln for ln in block.splitlines() if not ln.startswith("%"))) for block in latex]
