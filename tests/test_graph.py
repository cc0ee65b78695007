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


def test_backward_graph_has_a_node_per_adjoint_equation_and_gradient():
    from gategraph.derive import derive
    from gategraph.graph import backward

    adj = derive(lstm())
    g = backward(lstm(), adj)
    assert {n.name for n in g.nodes.values() if n.kind == "adjoint"} == set(adj.names)
    assert {n.name for n in g.nodes.values() if n.kind == "gradient"} == set(adj.grads)
    adjoint_edges = {(e.src, e.dst) for e in g.edges if e.kind == "adjoint"}
    assert ("b_bar_C", "b_bar_f") in adjoint_edges and ("b_pre_f", "g_W_f") in adjoint_edges
    assert ("s_carry_C", "b_bar_C") in adjoint_edges and ("s_dl_h", "b_bar_h") in adjoint_edges


def test_unrolled_lstm_keeps_states_inputs_and_losses():
    from gategraph.graph import unrolled

    g = unrolled(lstm(), 5)
    kinds = [n.kind for n in g.nodes.values()]
    assert kinds.count("let") == 10 and kinds.count("state") == 2 and kinds.count("loss") == 5
    assert kinds.count("input") == 5 and len(g.groups) == 5
    forward_edges = {(e.src, e.dst) for e in g.edges if e.kind == "forward"}
    assert ("C__2", "C__3") in forward_edges and ("h__2", "C__3") in forward_edges and ("C__3", "h__3") in forward_edges
    assert {(b, a) for a, b in forward_edges} == {(e.src, e.dst) for e in g.edges if e.kind == "adjoint"}


def test_highlighted_path_is_the_cell_state_highway_for_the_lstm_and_the_h_chain_for_the_rnn():
    from gategraph.cells import rnn
    from gategraph.graph import gradient_path, unrolled

    assert gradient_path(unrolled(lstm(), 3), lstm(), "C") == {
        ("C__0", "C__1"), ("C__1", "C__2"), ("C__2", "C__3"), ("C__3", "h__3"), ("h__3", "loss__3")}
    assert gradient_path(unrolled(rnn(), 2), rnn(), "h") == {("h__0", "h__1"), ("h__1", "h__2"), ("h__2", "loss__2")}
    gru_like = gradient_path(unrolled(lstm(), 2), lstm(), "h")  # h_t reads h_{t-1} through its gates
    assert gru_like == {("h__0", "h__1"), ("h__1", "h__2"), ("h__2", "loss__2")}


@needs_dot
@pytest.mark.parametrize("name", sorted(CELLS))
def test_backward_and_unrolled_pictures_render_for_every_cell(tmp_path, name):
    from gategraph.derive import derive
    from gategraph.renderers.graphviz import backward_dot, unrolled_dot

    cell = CELLS[name]()
    assert render(backward_dot(cell, derive(cell)), tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    highlight = cell.states[0].name if cell.states else None
    assert render(unrolled_dot(cell, 3, highlight), tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG"


def test_unrolled_lstm_labels_each_highway_step_with_its_forget_gate():
    from gategraph.renderers.graphviz import unrolled_dot

    src = unrolled_dot(lstm(), 4, "C").source
    assert all(f"diag(f<SUB>{t}</SUB>)" in src for t in range(1, 5))


@needs_dot
@pytest.mark.parametrize("name", ["x\\", 'say "hi"', "<b>&amp;</b>", "../../evil", "a b\\end{document}"])
def test_any_cell_name_draws_and_is_shown_as_written(tmp_path, name):
    """A cell's name is the graph's title, as written; it never breaks the DOT source (a trailing backslash
    once escaped the closing quote) nor names a file."""
    import html

    from gategraph.derive import derive
    from gategraph.renderers.graphviz import backward_dot, unrolled_dot
    from gategraph.spec import CellBuilder, concat, tanh

    b = CellBuilder(name)
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    b.let("h", tanh(b.param("W", (H, H + X)) @ concat(h, x)))
    cell = b.cell()
    for k, dot in enumerate([cell_dot(cell), backward_dot(cell, derive(cell)), unrolled_dot(cell, 2, highlight="h")]):
        assert f"<B>{html.escape(name)}</B>" in dot.source  # the title, as an HTML label
        assert render(dot, tmp_path / f"{k}.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.svg", "1.svg", "2.svg"]
