"""gategraph: recurrent cells declared once in SymPy, printed, drawn and evaluated from that one declaration.

The engine (this package) never imports `gategraph.renderers`; the command line (`gategraph.cli`) joins them.
"""

from gategraph import cells
from gategraph.errors import (
    GategraphError,
    ShapeError,
    SpecError,
    ToolMissingError,
    UsageError,
    ValueInputError,
)
from gategraph.kernel import Kernel, compile  # gategraph.compile: a cell lowered to Numba kernels
from gategraph.spec import (
    Cell,
    CellBuilder,
    Equation,
    Var,
    absolute,
    concat,
    dot,
    exp,
    log,
    maximum,
    mean,
    minimum,
    relu,
    rowplus,
    sigmoid,
    softmax,
    sqrt,
    tanh,
    transpose,
)

__version__ = "0.1.0"

__all__ = [
    "Cell", "CellBuilder", "Kernel", "compile", "Equation", "GategraphError", "ShapeError", "SpecError",
    "ToolMissingError", "UsageError", "ValueInputError", "Var", "absolute", "cells", "concat", "dot", "exp", "log",
    "maximum", "mean", "minimum", "relu", "rowplus", "sigmoid", "softmax", "sqrt", "tanh", "transpose",
]
