"""Decks built from cells: `cell_deck(cells, figures)` makes, for each cell, the slides a lecturer shows —
its equations, its graph, the backward step, the recurrences through time, one parameter's derivation
revealed step by step, the network unrolled with the gradient's path, and the finite-difference check.

Every equation, picture and number comes from the cell itself; nothing is typed in.

Imports: gategraph (engine), renderers.deck, renderers.latex, renderers.derivation, renderers.graphviz.
"""

from __future__ import annotations

from pathlib import Path

from gategraph.check import finite_differences
from gategraph.derive import derive
from gategraph.renderers.deck import Deck, Figure, Math, Text
from gategraph.renderers.derivation import adjoint_rows, align, bptt_rows, derivation_steps
from gategraph.renderers.graphviz import cell_dot, render, unrolled_dot
from gategraph.renderers.latex import equations
from gategraph.spec import Cell

MAX_ROWS = 8  # rows of an aligned block that fit on one slide


def _chunks(rows: list, n: int = MAX_ROWS) -> list[list]:
    return [rows[k:k + n] for k in range(0, len(rows), n)] or [[]]


def cell_slides(deck: Deck, cell: Cell, figures: Path, check: bool = True):
    """Append the slides of one cell to `deck`; pictures go to the folder `figures`."""
    section, name = cell.name, cell.name.replace("_", " ")
    adj = derive(cell)
    states = [st.name for st in cell.states]
    deck.add(f"{name}: one step", Text(cell.doc or f"The {name} cell."), Math(equations(cell, "latex")),
             Text(f"{len(cell.params)} parameters; carried from step to step: {', '.join(states) or 'nothing'}."),
             section=section)
    deck.add(f"{name}: the computation graph", Figure(render(cell_dot(cell), figures / f"{cell.name}.png"),
                                                        "one step; each box is one equation"), section=section)
    rows = adjoint_rows(adj, "latex")
    for k, chunk in enumerate(_chunks(rows)):
        title = f"{name}: the backward step" + (f" ({k + 1}/{len(_chunks(rows))})" if len(rows) > MAX_ROWS else "")
        deck.add(title, Math(align(chunk, "latex")), section=section)
    if states:
        deck.add(f"{name}: backpropagation through time",
                 Text("What each state's adjoint receives from the loss at step $t$ and from step $t+1$:"),
                 Math(align(bptt_rows(adj, "latex"), "latex")), section=section)
        matrices = [p.name for p in cell.params if len(p.shape) == 2]
        if matrices:
            steps = derivation_steps(adj, matrices[0], "latex")
            deck.add(f"{name}: the gradient of ${_param(matrices[0])}$, step by step",
                     Math(parts=[align([row], "latex") for row in steps], steps=True), section=section)
        path = render(unrolled_dot(cell, 4, highlight=states[-1]), figures / f"{cell.name}-unrolled.png")
        deck.add(f"{name}: unrolled over four steps", Figure(path, f"the gradient's path back to ${states[-1]}_0$ "
                                                             "in red", width=0.95), section=section)
    if check:
        rows = finite_differences(cell, seed=0)
        worst = max(r.max_rel or 0.0 for r in rows)
        verdict = "every gradient agrees" if all(r.ok for r in rows) else "a gradient disagrees"
        deck.add(f"{name}: the gradients, checked",
                 Text(f"Central finite differences against the derived adjoint, {len(rows)} quantities "
                      f"(every parameter, the inputs, the initial states): largest relative error "
                      f"{worst:.1e}; {verdict}."), section=section,
                 notes=["The same check runs in the tests for every built-in cell, with SymPy's own diff as a "
                        "second, exact witness."])


def _param(name: str) -> str:
    head, _, tail = name.partition("_")
    return f"{head}_{{{tail}}}" if tail else head


def cell_deck(cells: list[Cell], figures: Path, title: str = "", check: bool = True) -> Deck:
    deck = Deck(title or ", ".join(c.name.replace("_", " ") for c in cells),
                "equations, graphs and gradients, generated from the cells' declarations by gategraph")
    for cell in cells:
        cell_slides(deck, cell, figures, check)
    return deck
