"""Computation graphs: the DAG of one step and its Graphviz pictures."""

from graphlib import TopologicalSorter

import pytest

from gategraph.cells import CELLS, lstm
from gategraph.errors import ToolMissingError
from gategraph.graph import forward
from gategraph.renderers.graphviz import cell_dot, render
from tests.conftest import needs_dot


def test_lstm_shares_one_concatenation_between_its_four_gates():
    g = forward(lstm())
    concat = [n for n in g.nodes.values() if n.name == "Concat"]
    assert len(concat) == 1 and concat[0].group is None
    consumers = [e.dst for e in g.edges if e.src == concat[0].id]
    assert sorted(g.nodes[c].name for c in consumers) == ["MatMul"] * 4


def test_each_gate_groups_its_own_ops_and_parameters():
    g = forward(lstm())
    forget = {n.name for n in g.nodes.values() if n.group == "f"}
    assert forget == {"W_f", "b_f", "MatMul", "Plus", "Sigmoid", "f"}
    assert g.nodes["v_h_prev"].group is None and g.outputs == ("v_h",)


def test_graph_is_acyclic_and_every_value_is_reached():
    for make in CELLS.values():
        g = forward(make())
        order = list(TopologicalSorter({n: g.preds(n) for n in g.nodes}).static_order())  # raises on a cycle
        assert set(order) == set(g.nodes)
        outputs = {e.src for e in g.edges}
        assert all(n.id in outputs for n in g.nodes.values() if n.kind != "let"), "a value nobody uses"


def test_dot_source_titles_each_gate_in_the_lecture_notation():
    src = cell_dot(lstm()).source
    for title in ("forget gate f<SUB>t</SUB>", "input gate i<SUB>t</SUB>", "candidate C̃<SUB>t</SUB>",
                  "output gate o<SUB>t</SUB>", "h<SUB>t-1</SUB>"):
        assert title in src


@needs_dot
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_every_cell_renders(tmp_path, name, suffix, magic):
    path = render(cell_dot(CELLS[name]()), tmp_path / f"{name}{suffix}")
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert path.stat().st_mode & 0o044 == 0o044  # readable by others, like any file the user makes


def test_missing_dot_is_a_one_line_error_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match=r"`dot` program was not found on PATH: install Graphviz \(Debian"):
        render(cell_dot(lstm()), tmp_path / "lstm.png")
    assert not (tmp_path / "lstm.png").exists()
    assert render(cell_dot(lstm()), tmp_path / "lstm.dot").read_text().startswith("digraph lstm")


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown graph format '.jpg'"):
        render(cell_dot(lstm()), tmp_path / "lstm.jpg")
