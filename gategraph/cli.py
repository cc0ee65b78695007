"""The `gategraph` command: the top layer, the one engine module that may import the renderers.

    gategraph cells                                  list the built-in cells
    gategraph equations CELL [--format latex|text]   the forward equations of one step
    gategraph graph CELL -o FILE.{png,svg,pdf,dot}   the computation graph of one step
    gategraph example lecture-lstm [--format ...]    the lecture's LSTM example, checked
    gategraph example CELL [--sizes X=3,H=2]         any cell on small random numbers

CELL is a built-in name (`gategraph cells`) or `path/to/file.py:function`, a function returning a Cell.
Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from gategraph import __version__
from gategraph.cells import CELLS
from gategraph.errors import GategraphError, SpecError, UsageError
from gategraph.spec import Cell

EXAMPLES = ("lecture-lstm",)


def load_cell(ref: str) -> Cell:
    """A built-in cell by name (`lstm`, `peephole-lstm`) or `file.py:function` returning a Cell."""
    if ":" in ref and ref.split(":", 1)[0].endswith(".py"):
        return _cell_from_file(*ref.rsplit(":", 1))
    if ref.endswith(".py"):
        raise UsageError(f"name the function that returns the cell: {ref}:FUNCTION")
    key = ref.replace("-", "_")
    if key not in CELLS:
        names = ", ".join(sorted(n.replace("_", "-") for n in CELLS))
        raise SpecError(f"unknown cell {ref!r}: choose one of {names}, or give path/to/file.py:function")
    return CELLS[key]()


def _cell_from_file(path: str, func: str) -> Cell:
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"cell file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"gategraph_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        hint = f"run `python {path}` to see where"
        raise SpecError(f"{path} could not be loaded: {type(e).__name__}: {e} ({hint})") from None
    if not hasattr(module, func):
        raise SpecError(f"{path} has no function {func!r}")
    try:
        cell = getattr(module, func)()
    except GategraphError:
        raise
    except Exception as e:
        raise SpecError(f"{path}:{func}() failed: {type(e).__name__}: {e}") from None
    if not isinstance(cell, Cell):
        raise SpecError(f"{path}:{func}() returned {type(cell).__name__}, not a gategraph Cell")
    return cell


def cmd_cells(args) -> None:
    width = max(len(n) for n in CELLS)
    for name, make in CELLS.items():
        print(f"{name.replace('_', '-'):<{width}}  {make().doc}")


def cmd_equations(args) -> None:
    from gategraph.renderers.latex import equations

    print(equations(load_cell(args.cell), args.format))


def cmd_graph(args) -> None:
    from gategraph.renderers.graphviz import cell_dot, render

    path = render(cell_dot(load_cell(args.cell)), args.output)
    print(f"wrote {path}")


def cmd_example(args) -> None:
    from gategraph.renderers.walkthrough import walkthrough

    if args.name == "lecture-lstm":
        from gategraph.lecture import lecture_lstm

        if args.sizes is not None:
            raise UsageError("--sizes is for examples on random numbers; lecture-lstm has the lecture's own sizes")
        ev = lecture_lstm(exact=not args.floats)
    else:
        from gategraph.worked import evaluate

        cell = load_cell(args.name)
        ev = evaluate(cell, random_values(cell, _sizes(args.sizes), args.seed), exact=not args.floats)
    print(walkthrough(ev, args.format))


MAX_EXAMPLE_SIZE = 16  # a worked example is read by a person


def _sizes(text: str | None) -> dict[str, int]:
    if text is None:
        return {}
    try:
        sizes = {k.strip(): int(v) for k, v in (kv.split("=") for kv in text.split(","))}
    except ValueError:
        raise UsageError(f"--sizes takes NAME=INT pairs separated by commas, e.g. X=3,H=2; got {text!r}") from None
    for name, n in sizes.items():
        if not 1 <= n <= MAX_EXAMPLE_SIZE:
            raise UsageError(f"--sizes: {name}={n} is out of range; an example takes sizes 1 to {MAX_EXAMPLE_SIZE}")
    return sizes


def random_values(cell: Cell, sizes: dict[str, int], seed: int) -> dict:
    """Small random numbers with one decimal (-1.0 ... 1.0) for every input, state and parameter;
    sizes not given are 2."""
    unknown = set(sizes) - {s.name for s in cell.sizes}
    if unknown:
        raise UsageError(f"cell {cell.name!r} has no size {', '.join(sorted(unknown))}; its sizes are "
                         f"{', '.join(s.name for s in cell.sizes)}")
    rng = np.random.default_rng(seed)
    sizes = {s.name: sizes.get(s.name, 2) for s in cell.sizes}
    shapes = cell.with_sizes(**sizes)
    values = {}
    for d in cell.decls:
        name = d.state or d.name
        values[name] = (rng.integers(-10, 11, size=shapes[d.name]) / 10).astype(object)
    return values


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the exit status 2 as for every other error)."""

    def error(self, message):
        self.exit(2, f"gategraph: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gategraph", description="Recurrent cells declared once in SymPy: "
                "equations, graphs and worked examples from one declaration.")
    p.add_argument("--version", action="version", version=f"gategraph {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    cell_help = "a built-in cell (see `gategraph cells`) or path/to/file.py:function"

    s = sub.add_parser("cells", help="list the built-in cells")
    s.set_defaults(run=cmd_cells)

    s = sub.add_parser("equations", help="print the forward equations of one step")
    s.add_argument("cell", help=cell_help)
    s.add_argument("--format", choices=("latex", "text"), default="text")
    s.set_defaults(run=cmd_equations)

    s = sub.add_parser("graph", help="draw the computation graph of one step")
    s.add_argument("cell", help=cell_help)
    s.add_argument("-o", "--output", required=True, help="FILE.png, .svg, .pdf or .dot")
    s.set_defaults(run=cmd_graph)

    s = sub.add_parser("example", help="a worked example: one step with its numbers, checked")
    s.add_argument("name", help=f"{', '.join(EXAMPLES)}, or a cell ({cell_help}) on random numbers")
    s.add_argument("--format", choices=("latex", "text"), default="text")
    s.add_argument("--floats", action="store_true", help="compute in float64 instead of exactly")
    s.add_argument("--sizes", help="sizes for a cell example, e.g. X=3,H=2 (each 2 unless given)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random numbers for a cell example")
    s.set_defaults(run=cmd_example)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except GategraphError as e:
        print(f"gategraph: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `gategraph ... | head`
        return 0
    except OSError as e:  # a file that cannot be written or read
        print(f"gategraph: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
