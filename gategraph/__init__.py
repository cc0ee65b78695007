"""gategraph: recurrent cells declared once in SymPy, printed, drawn and evaluated from that one declaration.

The engine (this package) never imports `gategraph.renderers`; the command line (`gategraph.cli`) joins them.
"""

import importlib
from pathlib import Path as _Path

from gategraph.errors import (
    GategraphError,
    ShapeError,
    SpecError,
    ToolMissingError,
    UsageError,
    ValueInputError,
)
from gategraph.files import sources_digest as _sources_digest

# The package's modules as this process imports them: the rest of them load later, from the same files only while
# these are unchanged (gategraph.plan names a kernel's plan after this, and checks it first)
_SOURCES = _sources_digest(_Path(__file__).parent)

# The rest loads on first use (PEP 562), so that `gategraph` on the command line starts without SymPy and
# Numba and a Ctrl-C while they load is handled: gategraph.compile is gategraph.kernel.compile, and so on.
_LAZY = {"cells": None, "Kernel": "kernel", "compile": "kernel",
         **{name: "spec" for name in ("Cell", "CellBuilder", "Equation", "Var", "absolute", "concat", "dot", "exp",
                                      "log", "maximum", "mean", "minimum", "relu", "rowplus", "sigmoid", "softmax",
                                      "sqrt", "tanh", "transpose")}}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'gategraph' has no attribute {name!r}")
    module = importlib.import_module(f"gategraph.{_LAZY[name] or name}")
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "Cell", "CellBuilder", "Kernel", "compile", "Equation", "GategraphError", "ShapeError", "SpecError",
    "ToolMissingError", "UsageError", "ValueInputError", "Var", "absolute", "cells", "concat", "dot", "exp", "log",
    "maximum", "mean", "minimum", "relu", "rowplus", "sigmoid", "softmax", "sqrt", "tanh", "transpose",
]
