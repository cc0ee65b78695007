"""Notebook display: cells, adjoints and graphs show themselves as LaTeX and pictures in Jupyter.

`register()` teaches IPython to display a `Cell` as its equations and an `Adjoint` as its backward step;
`graph(cell)`, `backward(cell)` and `unrolled(cell, T, highlight)` return images of the graphs. The
engine knows nothing of this module.

Imports: IPython (when called), gategraph.derive, gategraph.spec, renderers.latex, renderers.derivation,
renderers.graphviz.
"""

from __future__ import annotations

from gategraph.derive import Adjoint, derive
from gategraph.renderers.derivation import adjoint_equations
from gategraph.renderers.graphviz import backward_dot, cell_dot, unrolled_dot
from gategraph.renderers.latex import equations
from gategraph.spec import Cell


def cell_latex(cell: Cell) -> str:
    """A cell as display math: its equations, aligned."""
    return f"$$\n{equations(cell, 'latex')}\n$$"


def adjoint_latex(adj: Adjoint) -> str:
    """An adjoint as display math: the backward step and the weight gradients."""
    return f"$$\n{adjoint_equations(adj, 'latex')}\n$$"


def register(ip=None) -> bool:
    """Show every Cell and Adjoint as LaTeX in this IPython session; False outside IPython."""
    if ip is None:
        from IPython import get_ipython

        ip = get_ipython()
    if ip is None:
        return False
    latex = ip.display_formatter.formatters["text/latex"]
    latex.for_type(Cell, cell_latex)
    latex.for_type(Adjoint, adjoint_latex)
    return True


def _image(dot):
    from IPython.display import Image

    return Image(dot.pipe(format="png", renderer="cairo"))


def graph(cell: Cell):
    """One step of the cell, as an image."""
    return _image(cell_dot(cell))


def backward(cell: Cell):
    """The step and its adjoint, as an image."""
    return _image(backward_dot(cell, derive(cell)))


def unrolled(cell: Cell, T: int = 4, highlight: str | None = None):
    """The cell unrolled over T steps, with the gradient's path back to `highlight`, as an image."""
    return _image(unrolled_dot(cell, T, highlight))
