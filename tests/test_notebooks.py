"""Every notebook in examples/ runs top to bottom in a real Jupyter kernel (nbclient), small (GATEGRAPH_QUICK),
and shows what it promises: cells as LaTeX, graphs and plots as images."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT, needs_dot

NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def _run(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    os.environ["GATEGRAPH_QUICK"] = "1"  # the kernel inherits it
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        del os.environ["GATEGRAPH_QUICK"]
    return nb


def _outputs(nb, mime):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if mime in o.get("data", {})]


@needs_dot
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = _run(path, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert _outputs(nb, "image/png") or _outputs(nb, "text/latex"), "a notebook shows a picture or formula"


@needs_dot
def test_a_declared_cell_displays_itself_as_latex(tmp_path):
    nb = _run(ROOT / "examples" / "own_cell.ipynb", tmp_path)
    latex = [o["data"]["text/latex"] for o in _outputs(nb, "text/latex")]
    assert any(r"f_t &= \sigma(W_f \cdot [h_{t-1}, x_t] + b_f)" in t for t in latex)
    assert any(r"\bar{h}_t" in t for t in latex)  # the adjoint displays too
    assert len(_outputs(nb, "image/png")) >= 1
