"""Every piece of LaTeX gategraph prints compiles with a real pdflatex (CI installs TeX; never skipped there):
the built-in cells, a cell with every op a forward equation can use, LayerNorm inside a cell, and all their
adjoints (which hold the remaining ops)."""

import os
import shutil
import subprocess

import pytest

from gategraph.cells import CELLS
from gategraph.derive import derive
from gategraph.homework import lecture_lstm
from gategraph.renderers.derivation import adjoint_equations, align, bptt_rows, derivation_steps, jacobian_rows
from gategraph.renderers.latex import equations, standalone
from gategraph.renderers.walkthrough import walkthrough
from tests.op_cells import every_op_cell, layernorm_rnn

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                               reason="pdflatex is not installed (CI installs it and never skips)")


def all_blocks(cells: list | None = None) -> list[str]:
    """The LaTeX of the built-in cells (or of `cells`), their adjoints, derivations, BPTT rows and Jacobians."""
    blocks = []
    for cell in cells or [make() for make in CELLS.values()]:
        adj = derive(cell)
        blocks += [equations(cell), adjoint_equations(adj), adjoint_equations(adj, "latex", "frac")]
        blocks += [align(derivation_steps(adj, p, "latex"), "latex") for p in adj.grads]
        if cell.states:
            blocks.append(align(bptt_rows(adj, "latex"), "latex"))
        if cell.states and cells is None:  # a mean's Jacobian is no product of diagonals and weights
            blocks += [align(jacobian_rows(adj, st.name, "latex"), "latex") for st in cell.states]
    return blocks + (walkthrough(lecture_lstm(), "latex").split("\n\n") if cells is None else [])


def _pdflatex(tmp_path, blocks, title) -> list[str]:
    """Compile the blocks as one document; the lines of pdflatex's output."""
    (tmp_path / "all.tex").write_text(standalone(blocks, title))
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "all.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("!")]
    assert proc.returncode == 0, errors or proc.stdout[-2000:]
    assert (tmp_path / "all.pdf").stat().st_size > 10_000
    return proc.stdout.splitlines()


@needs_tex
def test_everything_printed_as_latex_compiles(tmp_path):
    lines = _pdflatex(tmp_path, all_blocks(), "every cell, every derivation")
    overfull = [line for line in lines if line.startswith("Overfull \\hbox") and "pt too wide" in line]
    widths = [float(line.split("(")[1].split("pt")[0]) for line in overfull]
    assert all(w < 150 for w in widths), f"equations far wider than a landscape page: {max(widths)}pt"


@needs_tex
def test_every_op_prints_as_latex_that_compiles(tmp_path):
    """A cell with every op a forward equation can use, and LayerNorm inside a cell: their equations, adjoints
    (which hold the remaining ops: Fill, Sum, Sign, Step, ...) and derivations. The cell with every op is one
    long sum, so no width rule here."""
    _pdflatex(tmp_path, all_blocks([every_op_cell(), layernorm_rnn(), layernorm_rnn(inline=True)]), "every op")
