"""The generated kernel source of the LSTM and the GRU, byte for byte: any change to the generator shows
up here, and in review as a diff of tests/golden/.

After a deliberate change to the generator, regenerate the files and read the diff:

    GATEGRAPH_REGENERATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

import os

import pytest

from gategraph import cells
from gategraph.lower import lower
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
CASES = [("lstm", "float32"), ("gru", "float32")]


@pytest.mark.parametrize(("cell", "dtype"), CASES, ids=[f"{c}-{d}" for c, d in CASES])
def test_generated_source_is_the_golden_file(cell, dtype):
    path = GOLDEN / f"{cell}-{dtype}.py"
    source = lower(cells.CELLS[cell](), dtype).source
    if os.environ.get("GATEGRAPH_REGENERATE_GOLDEN"):
        path.write_text(source, encoding="utf-8")
    assert path.exists(), f"{path.name} is missing: regenerate it (see this file's docstring)"
    expected = path.read_text(encoding="utf-8")
    assert source == expected, (f"the generated source of {cell} ({dtype}) differs from {path.name}: "
                                "if the change is meant, regenerate (see this file's docstring) and review the diff")


@pytest.mark.parametrize("cell", sorted(cells.CELLS))
def test_a_pass_allocates_only_what_it_returns_and_a_batchs_rows(cell):
    """A buffer a pass allocated at every call was fresh memory, a page fault per 4 KiB (the LSTM's stacked
    weights and weights' gradients at H = 512 were 9% of its passes): everything else is the kernel's workspace,
    made once and passed in. What is left is the gradients a pass returns, and buffers of one step's batch."""
    source = lower(cells.CELLS[cell](), "float64").source
    for line in source.splitlines():
        if "np.empty(" in line:
            name, made = (part.strip() for part in line.split("=", 1))
            assert (name == "_none" or name.startswith("_g_") or made.startswith("np.empty((_B,")), line
