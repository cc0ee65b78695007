"""Diagnosed slips written out: beside a claimed value that does not hold, the slips that reproduce it.

`sentence(cell, slip, style, adjoint)` is one slip as a clause ("dropped the tanh in h_t"; with the
cell's adjoint also one in the backward step, "left out σ′ = f_t ⊙ (1 - f_t) in ā_{f,t}"); `diagnosis_lines`
the lines under one failing claim: the single slips that reproduce it, else the pairs (and how many
slips are needed), else "no slip in the catalogue reproduces it"; and what one more slip does on top
of the source's own earlier wrong claims. `notes(ev, diagnoses, style)` maps each claim to its lines,
for `walkthrough(..., notes=...)`.

Imports: gategraph.derive, gategraph.slips, gategraph.worked, gategraph.renderers.derivation,
gategraph.renderers.latex, gategraph.renderers.walkthrough.
"""

from __future__ import annotations

import re

import numpy as np

from gategraph.derive import Adjoint
from gategraph.renderers.derivation import adjoint_lhs, adjoint_printer, gradient_lhs
from gategraph.renderers.latex import TEXT_MATH, lhs, printer, text_in_latex, times
from gategraph.renderers.walkthrough import array
from gategraph.slips import Diagnosis, Slip
from gategraph.spec import Cell
from gategraph.worked import Evaluation

SHOWN = 3  # explanations written out per claim; the rest are counted


def sentence(cell: Cell, slip: Slip, style: str = "text", adjoint: Adjoint | None = None) -> str:
    """The slip as a clause, `dropped the tanh in h_t`, with the cell's names printed in `style` (LaTeX:
    one line of maths, the words in \\text{...}); with the cell's `adjoint`, a slip in the backward step
    (`left out σ′ = f_t ⊙ (1 - f_t) in ā_{f,t}`)."""
    pstyle = "text" if style == "text" else "latex"
    p = printer(cell, pstyle) if adjoint is None else adjoint_printer(adjoint, pstyle)
    names = {str(k): _math(p.doprint(e), style) for k, e in enumerate(slip.names)}
    if slip.block is not None:  # W_C[x] (text), W_C^{(x)} (LaTeX): the block of W that meets x_t
        block = times(cell)[slip.block][0]
        matrix = p.doprint(slip.names[0])
        names["0"] = _math(f"{matrix}[{block}]" if style == "text" else rf"{matrix}^{{({block})}}", style)
    names["eq"] = _math(_lhs(cell, adjoint, slip.equation, pstyle), style)
    pieces = re.split(r"\{(\w+)\}", slip.says)  # words, name, words, name, ...
    if style != "latex":
        return "".join(names[x] if k % 2 else x for k, x in enumerate(pieces))
    return " ".join(names[x] if k % 2 else _words(x, style) for k, x in enumerate(pieces) if x)


def _lhs(cell: Cell, adjoint: Adjoint | None, name: str, style: str) -> str:
    """The left side of a forward equation, of an adjoint's (ā_{f,t}) or of a gradient's (∂L/∂W_f)."""
    if name in cell.shapes or adjoint is None:
        return lhs(cell, name, style)
    if name.startswith("grad:"):
        return gradient_lhs(name.removeprefix("grad:"), style)
    return adjoint_lhs(adjoint, name, style)


def _math(latex: str, style: str) -> str:
    """A name inside deck prose is inline maths; in text and in LaTeX maths it is itself."""
    return f"${latex}$" if style == "deck" else latex


def _words(text: str, style: str) -> str:
    """Prose as itself (text) or as maths (LaTeX): words in \\text{...}, σ and · as maths symbols, so the
    line can stand inside $...$ as a whole."""
    if style != "latex":
        return text
    out, run = [], ""
    for ch in text:
        if ch in TEXT_MATH:
            out += [rf"\text{{{text_in_latex(run)}}}" if run else "", TEXT_MATH[ch]]
            run = ""
        else:
            run += ch
    out.append(rf"\text{{{text_in_latex(run)}}}" if run else "")
    return " ".join(o for o in out if o)


def _value(v, style: str) -> str:
    """A vector as one row, also in LaTeX: [0.88,\\ 0.88]."""
    shown = array(np.asarray(v, dtype=float), "text", exact=False)
    return shown if style != "latex" else shown.replace(", ", r",\ ")


def _joined(cell: Cell, slips, style: str) -> str:
    return _words(", and ", style).join(sentence(cell, s, style) for s in slips)


def diagnosis_lines(ev: Evaluation, d: Diagnosis, style: str = "text", shown: int = SHOWN) -> list[str]:
    """What reproduces one failing claim: a head line, then one line per explanation (the first `shown`
    of them). Styles: "text"; "latex", lines of maths; "deck", prose with inline $...$ maths."""
    cell, out = ev.cell, []
    arrow, indent = {"text": (" → ", "  "), "deck": (" → ", ""), "latex": (r" \to ", r"\quad ")}[style]
    if d.singles:
        head = "one slip reproduces it:" if len(d.singles) == 1 else "each of these slips reproduces it:"
        out.append(_words(head, style))
        out += [indent + f"{_joined(cell, e.slips, style)}{arrow}{_value(e.value, style)}" for e in d.singles[:shown]]
        extra = len(d.singles) - shown
    elif d.pairs:
        out.append(_words("no single slip reproduces it; two slips together do:", style))
        out += [indent + f"{_joined(cell, e.slips, style)}{arrow}{_value(e.value, style)}" for e in d.pairs[:shown]]
        extra = len(d.pairs) - shown
    else:
        out.append(_words("no slip in the catalogue reproduces it, alone or in pairs", style))
        extra = 0
    if extra > 0:
        out.append(indent + _words(f"(and {extra} more)", style))
    for e in d.carried[:1]:
        said = ", ".join(_math(lhs(cell, n, "text" if style == "text" else "latex"), style) for n in e.carried)
        out.append(_words("with ", style) + said + _words(" as the source wrote it (a slip of its own), one more "
                                                            "slip gives the claim: ", style)
                   + f"{_joined(cell, e.slips, style)}{arrow}{_value(e.value, style)}")
    return out


def notes(ev: Evaluation, diagnoses, style: str = "text") -> dict:
    """claim key -> the lines of its diagnosis (LaTeX: lines of maths)."""
    return {d.verdict.claim.key: diagnosis_lines(ev, d, style) for d in diagnoses}


def deck_sentence(ev: Evaluation, d: Diagnosis) -> str:
    """One failing claim's diagnosis as one sentence for a deck (names as inline maths, so it wraps like any
    text): the slip on top of the source's own earlier slip when there is one (the likeliest story), else the
    first single slip or pair that reproduces the claim, and how many more do."""
    cell = ev.cell
    if d.carried:
        e = d.carried[0]
        names = ", ".join(_math(lhs(cell, n, "latex"), "deck") for n in e.carried)
        return (f"Two slips explain it: {names} as the slide wrote it (itself a slip), and "
                f"{_joined(cell, e.slips, 'deck')}: that gives {_value(e.value, 'deck')}.")
    found = d.singles or d.pairs
    if not found:
        return "No slip in the catalogue reproduces it, alone or in pairs."
    more = f" ({len(found) - 1} other {'slips' if d.singles else 'pairs'} do too)" if len(found) > 1 else ""
    kind = "One slip explains it" if d.singles else "No single slip explains it; two together do"
    return f"{kind}: {_joined(cell, found[0].slips, 'deck')}, which gives {_value(found[0].value, 'deck')}{more}."
