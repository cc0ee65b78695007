"""Decks built from cells: `cell_deck(cells, figures)` makes, for each cell, the slides a lecturer shows —
its equations, its graph, the backward step, the recurrences through time, one parameter's derivation
revealed step by step, the network unrolled with the gradient's path, the step Jacobian of each carried
state, and the finite-difference check.

Every equation, picture and number comes from the cell itself; nothing is typed in. A view that cannot be
made for a cell (a Jacobian through a softmax over a memory is no product of matrices) keeps its slide,
with a note that says why; the rest of the deck is built.

Imports: gategraph (engine), renderers.deck, renderers.latex, renderers.derivation, renderers.graphviz.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from gategraph.derive import derive
from gategraph.errors import GategraphError, ToolMissingError
from gategraph.files import file_stem
from gategraph.renderers.deck import Deck, Figure, Math, Note, Text, drawn, plain
from gategraph.renderers.derivation import adjoint_rows, align, bptt_rows, derivation_steps, jacobian_rows
from gategraph.renderers.graphviz import cell_dot, render, unrolled_dot
from gategraph.renderers.latex import equations
from gategraph.renderers.views import checked
from gategraph.spec import Cell


def _view(deck: Deck, title: str, make, section: str, name: str, notes=()):
    """A slide of the blocks `make()` returns; if this view cannot be made for the cell, the slide says why."""
    try:
        blocks = make()
    except ToolMissingError:  # the machine lacks a program: one error with its fix, not a note on every slide
        raise
    except GategraphError as e:
        reason = plain(str(e))
        blocks = [Note(f"This view cannot be made for {name}: {reason}.", "warn")]
    deck.add(title, *blocks, section=section, notes=list(notes))


def cell_slides(deck: Deck, cell: Cell, figures: Path, check: bool = True):
    """Append the slides of one cell to `deck`; pictures go to the folder `figures`, named by `file_stem`
    (a cell's name may hold `/` or `..`)."""
    section, name = plain(cell.name), plain(cell.name.replace("_", " "))
    adj = derive(cell)
    states = [st.name for st in cell.states]
    deck.add(f"{name}: one step", Text(plain(cell.doc) if cell.doc else f"The {name} cell."),
             Math(equations(cell, "latex")),
             Text(f"{len(cell.params)} parameters; carried from step to step: {', '.join(states) or 'nothing'}."),
             section=section)
    _view(deck, f"{name}: the computation graph", lambda: [
        Figure(drawn(partial(render, cell_dot(cell)), figures / file_stem(cell.name)),
               "one step; each box is one equation")],
        section, name)
    # one aligned block: renderers/layout.py continues it on as many slides as its rows need
    deck.add(f"{name}: the backward step", Math(align(adjoint_rows(adj, "latex"), "latex")), section=section)
    stem = file_stem(cell.name)
    if states:
        _view(deck, f"{name}: backpropagation through time", lambda: [
            Text("What each state's adjoint receives from the loss at step $t$ and from step $t+1$:"),
            Math(align(bptt_rows(adj, "latex"), "latex"))], section, name)
        matrices = [p.name for p in cell.params if len(p.shape) == 2]
        if matrices:
            _view(deck, f"{name}: the gradient of ${_param(matrices[0])}$, step by step", lambda: [
                Math(parts=[align([row], "latex") for row in derivation_steps(adj, matrices[0], "latex")],
                     steps=True)], section, name)
        _view(deck, f"{name}: unrolled over four steps", lambda: [
            Figure(drawn(partial(render, unrolled_dot(cell, 4, highlight=states[-1])), figures / f"{stem}-unrolled"),
                   f"the gradient's path back to ${states[-1]}_0$ in red", width=0.95)], section, name)
        _view(deck, f"{name}: how far back the gradient reaches", lambda: [
            Text("The step Jacobian of each carried state; the gradient from $k$ steps back is a product of $k$ "
                 "of them, so it shrinks or grows geometrically unless a factor stays near the identity."),
            *(Math(align(jacobian_rows(adj, st, "latex"), "latex")) for st in states)], section, name)
    if check:
        _view(deck, f"{name}: the gradients, checked", lambda: [checked(cell)], section, name,
              notes=["The same check runs in the tests for every built-in cell, with SymPy's own diff as a "
                     "second, exact witness."])


def _param(name: str) -> str:
    head, _, tail = name.partition("_")
    return f"{head}_{{{tail}}}" if tail else head


def cell_deck(cells: list[Cell], figures: Path, title: str = "", check: bool = True) -> Deck:
    deck = Deck(plain(title) or ", ".join(plain(c.name.replace("_", " ")) for c in cells),
                "equations, graphs and gradients, generated from the cells' declarations by gategraph")
    for cell in cells:
        cell_slides(deck, cell, figures, check)
    return deck
