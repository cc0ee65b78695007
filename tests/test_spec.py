"""Declaring cells: the builder, and validation errors that name the equation in one line."""

import re

import pytest
import sympy as sp

from gategraph import CellBuilder, ShapeError, SpecError, concat, sigmoid, tanh
from gategraph.cells import lstm
from gategraph.spec import Var


def rnn_builder():
    b = CellBuilder("t")
    X, H = b.sizes("X H")
    return b, X, H, b.input("x", X), b.state("h", H)


def test_builder_declares_shapes_roles_and_the_state_update():
    cell = lstm()
    assert cell.shape("W_f") == (sp.Symbol("H", integer=True, positive=True),
                                 sp.Symbol("H", integer=True, positive=True) + sp.Symbol("X", integer=True,
                                                                                         positive=True))
    assert cell.roles["h_prev"] == "state" and cell.roles["h"] == "let" and cell.roles["x"] == "input"
    assert [s.name for s in cell.states] == ["h", "C"]
    assert cell.outputs == ("h",)
    assert cell.with_sizes(X=3, H=2)["W_f"] == (2, 5)
    assert cell.names == ["f", "i", "C_tilde", "C", "o", "h"]


def test_undefined_symbol_names_the_equation():
    b, X, H, x, h = rnn_builder()
    W = b.param("W", (H, H + X))
    b.let("a", sigmoid(W @ concat(h, x)) * Var("g"))
    b.let("h", tanh(W @ concat(h, x)))
    with pytest.raises(SpecError, match=r"^equation 'a': uses 'g' before it is defined \(declare it"):
        b.cell()


def test_use_before_definition_says_define_it_earlier():
    b, X, H, x, h = rnn_builder()
    b.let("a", tanh(Var("c")))
    b.let("c", h * 2)
    b.let("h", h * Var("a"))
    with pytest.raises(SpecError, match=r"equation 'a': uses 'c' before it is defined \(define it earlier\)"):
        b.cell()


def test_name_assigned_twice():
    b, X, H, x, h = rnn_builder()
    W = b.param("W", (H, H + X))
    b.let("h", tanh(W @ concat(h, x)))
    b.let("h", tanh(W @ concat(h, x)))
    with pytest.raises(SpecError, match=r"equation 'h': name 'h' is assigned twice"):
        b.cell()


def test_shape_mismatch_names_equation_expected_and_found():
    b, X, H, x, h = rnn_builder()
    W = b.param("W", (H, X))  # should act on [h, x]: (H, H + X)
    b.let("h", tanh(W @ concat(h, x)))
    with pytest.raises(ShapeError, match=r"^equation 'h': MatMul needs \(H, X\) times \(X, \.\.\.\), "
                                         r"got \(H, X\) times \(H \+ X,\)$"):
        b.cell()


def test_state_updated_with_wrong_shape():
    b, X, H, x, h = rnn_builder()
    b.let("h", tanh(x))
    message = r"equation 'h': updates state 'h' of shape \(H,\) with a value of shape \(X,\)$"
    with pytest.raises(ShapeError, match=message):
        b.cell()


def test_state_never_updated():
    b, X, H, x, h = rnn_builder()
    b.let("y", tanh(h))
    with pytest.raises(SpecError, match=r"state 'h' is never updated: add an equation named 'h'"):
        b.cell(outputs=["y"])


def test_parameter_unused():
    b, X, H, x, h = rnn_builder()
    W, _ = b.param("W", (H, H + X)), b.param("b", H)
    b.let("h", tanh(W @ concat(h, x)))
    with pytest.raises(SpecError, match=r"param 'b' is never used by any equation"):
        b.cell()


def test_plain_sympy_symbol_and_undeclared_size_are_refused():
    b, X, H, x, h = rnn_builder()
    b.let("h", tanh(h) + sp.Symbol("k") * 0)
    with pytest.raises(SpecError):
        b.cell()
    b2 = CellBuilder("t2")
    H2 = b2.sizes("H")
    h2 = b2.state("h", (H2 + sp.Symbol("Z"),))
    b2.let("h", tanh(h2))
    with pytest.raises(SpecError, match=r"symbol 'h_prev': shape \(H \+ Z,\) uses undeclared size Z"):
        b2.cell()


def test_unknown_output():
    b, X, H, x, h = rnn_builder()
    W = b.param("W", (H, H + X))
    b.let("h", tanh(W @ concat(h, x)))
    with pytest.raises(SpecError, match=r"output 'y' is not an equation"):
        b.cell(outputs=["y"])


@pytest.mark.parametrize("name,doc,message", [
    ("", "", r"^a cell needs a name: CellBuilder\('my_cell', 'what it does'\)$"),
    ("  ", "", r"^a cell needs a name: CellBuilder\('my_cell', 'what it does'\)$"),
    (3, "", r"^a cell's name must be text, got int 3$"),
    ("t", None, r"^cell 't': its description must be text, got NoneType None$"),
])
def test_a_cell_without_a_name_is_refused_in_one_line(name, doc, message):
    b = CellBuilder(name, doc)
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    b.let("h", tanh(b.param("W", (H, H + X)) @ concat(h, x)))
    with pytest.raises(SpecError, match=message):
        b.cell()


@pytest.mark.parametrize("role,name", [("param", "W$"), ("param", "W}"), ("param", "../W"), ("input", "x t"),
                                       ("state", "h\\"), ("let", "a-b"), ("param", "β"), ("let", "")])
def test_a_symbol_name_that_is_not_an_identifier_is_refused_in_one_line(role, name):
    """Names are printed in LaTeX, drawn, and become variables of a kernel: `W$` once broke the slides with
    a traceback and `W}` the PDF."""
    b = CellBuilder("t")
    X, H = b.sizes("X H")
    x = b.input(name if role == "input" else "x", X)
    h = b.state(name if role == "state" else "h", H)
    W = b.param(name if role == "param" else "W", (H, H + X))
    z = b.let(name, W @ concat(h, x)) if role == "let" else W @ concat(h, x)
    b.let("h", tanh(z))
    what = {"param": "parameter", "let": "equation"}.get(role, role)
    with pytest.raises(SpecError, match=rf"^{what} name {re.escape(repr(name))}: a name is letters, digits and "
                                        r"'_', starting with a letter \(W_f, h_tilde\)$"):
        b.cell()
