"""Exercise sheets as decks, and a graded answer sheet as text.

`problem_deck(sheet, cell)`: the table of σ and tanh, then one slide per problem with its numbers and
what to find (each quantity with the key an answer file uses); `solution_deck`: the same problems worked
out, every chain of the forward step (and of the backward one) as the worked examples write them. Both
are `Deck`s, written by the deck writers (reveal.js HTML, Beamer PDF). `report(marks, cell)`: each answer
marked, with the slips that explain a wrong one ("you dropped the tanh in h_t").

Imports: numpy, sympy, gategraph.derive, gategraph.exercises, gategraph.ops, gategraph.renderers.*.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from gategraph.derive import derive
from gategraph.exercises import TABLE, Mark, Sheet
from gategraph.ops import sigma
from gategraph.renderers.deck import Deck, Math, Text, plain
from gategraph.renderers.derivation import adjoint_lhs, gradient_lhs
from gategraph.renderers.diagnosis import _lhs, sentence
from gategraph.renderers.latex import lhs
from gategraph.renderers.walkthrough import adjoint_lines, array, gradient_lines, step_lines
from gategraph.spec import Cell


def _table() -> str:
    head = " & ".join(str(a) for a in TABLE)
    sig = " & ".join(f"{float(sigma(a)):.4f}" for a in TABLE)
    tanh = " & ".join(f"{float(sp.tanh(a)):.4f}" for a in TABLE)
    return (r"\begin{array}{c|" + "c" * len(TABLE) + r"} a & " + head + r" \\ \hline \sigma(a) & " + sig
            + r" \\ \tanh(a) & " + tanh + r"\end{array}")


def _key(name: str) -> str:
    return rf"\texttt{{{name.replace('_', chr(92) + '_')}}}"


def _asked(sheet: Sheet, cell: Cell, problem) -> list[tuple[str, str]]:
    """(the quantity in the lecture's notation, its key in an answer file), forward then backward."""
    out = [(lhs(cell, eq.name, "latex"), eq.name) for eq in cell.equations]
    if problem.d_output is not None:
        ex = problem.backward(cell)
        out += [(adjoint_lhs(ex.adjoint, eq.name, "latex"), eq.name) for eq in ex.adjoint.equations]
        out += [(gradient_lhs(p, "latex"), f"grad:{p}") for p, g in ex.adjoint.grads.items() if g != 0]
    return out


def _given(cell: Cell, problem, per_row: int = 3) -> str:
    """The problem's numbers, `per_row` to a row: inputs, states read (h_{t-1}), parameters, ∂L/∂y_t."""
    states = {st.name: st.prev.name for st in cell.states}
    items = [f"{lhs(cell, states.get(n, n), 'latex')} = {array(np.asarray(v, dtype=object), 'latex', True)}"
             for n, v in problem.values.items()]
    if problem.d_output is not None:
        out = lhs(cell, cell.outputs[0], "latex")
        items.append(rf"\frac{{\partial \mathcal{{L}}}}{{\partial {out}}} = "
                     f"{array(np.asarray(problem.d_output, dtype=object), 'latex', True)}")
    rows = [r" & ".join(items[k:k + per_row]) for k in range(0, len(items), per_row)]
    return r"\begin{array}{" + "l" * per_row + "}" + r" \\[4pt] ".join(rows) + r"\end{array}"


def problem_deck(sheet: Sheet, cell: Cell) -> Deck:
    """The problem sheet: instructions and the table, then one slide per problem."""
    kind = "forward and backward" if sheet.backward else "forward"
    deck = Deck(f"Exercises: {plain(cell.name)}", f"{len(sheet.problems)} problems, one step {kind} "
                f"(seed {sheet.seed})")
    deck.add("How to answer", Text(
        f"Each problem gives the numbers of one step. Compute every quantity asked, to within "
        f"{sheet.tolerance} in each entry, using the table for $\\sigma$ and $\\tanh$ where the argument is in "
        "it (a calculator elsewhere). Answers go in a JSON file, {\"1\": {\"h\": [0.5, 0.2]}}, or a CSV file "
        "with columns problem, quantity, value (a vector's entries separated by ;), under the keys given."),
        Math(_table()))
    for p in sheet.problems:
        asked = _asked(sheet, cell, p)
        find = r",\ ".join(f"{q}\\ ({_key(k)})" for q, k in asked)
        deck.add(f"Problem {p.number}", Math(_given(cell, p), scale=0.85))
        deck.add(f"Problem {p.number}: find", Math(r"\begin{array}{l}" + _rows(find) + r"\end{array}", scale=0.85))
    return deck


def _rows(items: str, per_row: int = 4) -> str:
    parts = items.split(r",\ ")
    return r" \\ ".join(r",\ ".join(parts[k:k + per_row]) for k in range(0, len(parts), per_row))


def solution_deck(sheet: Sheet, cell: Cell) -> Deck:
    """The solution sheet: every problem worked out, chain by chain."""
    deck = Deck(f"Solutions: {plain(cell.name)}", f"{len(sheet.problems)} problems (seed {sheet.seed})")
    for p in sheet.problems:
        ev = p.evaluation(cell)
        deck.add(f"Problem {p.number}: forward", Math(_given(cell, p), scale=0.85),
                 _chain([ln for step in ev.steps for ln in step_lines(ev, step, "latex")]))
        if p.d_output is not None:  # one aligned block, which the layout continues over slides row by row
            ex = p.backward(cell)
            deck.add(f"Problem {p.number}: backward", _chain([ln for c in _backward_chains(ex, "latex") for ln in c]))
    return deck


def sheet_text(sheet: Sheet, cell: Cell) -> str:
    """Problems and solutions as plain text: each problem's numbers and what to find, then its chains."""
    out = []
    states = {st.name: st.prev.name for st in cell.states}
    for p in sheet.problems:
        given = [f"{lhs(cell, states.get(n, n), 'text')} = {array(np.asarray(v, dtype=object), 'text')}"
                 for n, v in p.values.items()]
        if p.d_output is not None:
            given.append(f"∂L/∂{lhs(cell, cell.outputs[0], 'text')} = "
                         f"{array(np.asarray(p.d_output, dtype=object), 'text')}")
        ev = p.evaluation(cell)
        keys = [key for _, key in _asked(sheet, cell, p)]
        lines = [f"problem {p.number}", "  given: " + "; ".join(given), "  find: " + ", ".join(keys), "  solution:"]
        lines += ["    " + ln for step in ev.steps for ln in step_lines(ev, step, "text")]
        if p.d_output is not None:
            ex = p.backward(cell)
            lines += ["    " + ln for chain in _backward_chains(ex, "text") for ln in chain]
        out.append("\n".join(lines))
    table = "  ".join(f"σ({a}) = {float(sigma(a)):.4f}" for a in TABLE) + "\n" + "  ".join(
        f"tanh({a}) = {float(sp.tanh(a)):.4f}" for a in TABLE)
    return f"answers to within {sheet.tolerance}; the table:\n{table}\n\n" + "\n\n".join(out)


def _backward_chains(ex, style: str) -> list[list[str]]:
    """Every adjoint's chain, then every gradient's."""
    return ([adjoint_lines(ex, 0, eq.name, style) for eq in ex.adjoint.equations]
            + [gradient_lines(ex, q, style) for q, g in ex.adjoint.grads.items() if g != 0])


def _chain(lines: list[str]) -> Math:
    return Math(r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}", scale=0.85)


def report(marks: list[Mark], cell: Cell, tolerance: float) -> str:
    """One line per answer, ✓ or ✗; under a wrong one what it should be and the slips that explain it
    (forward values and, on a backward sheet, adjoints and gradients alike)."""
    out, adjoint = [], derive(cell)

    def said(slip) -> str:
        return sentence(cell, slip, adjoint=adjoint)

    for m in marks:
        shown = array(m.given, "text", exact=False)
        if m.right:
            out.append(f"problem {m.problem}  {m.quantity}  {shown}  ✓")
            continue
        out.append(f"problem {m.problem}  {m.quantity}  {shown}  ✗  the solution is "
                   f"{array(m.expected, 'text', exact=False)}")
        d = m.diagnosis
        if m.rounded:
            out.append(f"    right to the digits written, but the sheet asks for every entry within {tolerance}")
        elif d is None or d.fewest is None:
            out.append("    no slip in the catalogue explains it")
        elif d.singles:
            out += [f"    you {said(e.slips[0])}" for e in d.singles[:2]]
        elif d.carried:
            e = d.carried[0]
            yours = ", ".join(_lhs(cell, adjoint, n, "text") for n in e.carried)
            out.append(f"    with your {yours}, you {said(e.slips[0])}")
        else:
            out.append("    you " + " and ".join(said(s) for s in d.pairs[0].slips))
    right = sum(m.right for m in marks)
    out.append(f"{right} of {len(marks)} answers right")
    return "\n".join(out)
