"""Names: a user may call a symbol anything the derivation or the kernel generator uses for its own names
(`a_h`, `bar_x`, `dl_h`, `carry_h`, `h_init`, `final_bar_h`, `z`, `DT`, `np`, `forward`, ...) and the
gradients stay right: by finite differences on the reference, in every view, and in the compiled kernels
against finite differences and against the reference."""

import builtins
import json

import numpy as np
import pytest

from gategraph import CellBuilder, SpecError, concat, tanh
from gategraph.check import finite_differences
from gategraph.derive import derive
from gategraph.graph import backward as backward_graph
from gategraph.kernel import compile
from gategraph.lower import code_names, lower
from gategraph.reference import backward as ref_backward
from gategraph.reference import forward as ref_forward
from gategraph.renderers.derivation import adjoint_equations, bptt_rows, derivation_steps
from tests.conftest import run_cli
from tests.hostile_cells import crowded_cell, everything_cell, let_cell, pre_activation_cell, roles_cell

# the derivation's own spellings for a state h and an input x, and the kernel generator's own names
ROLE_NAMES = ["a_h", "bar_x", "bar_h", "bar_a_h", "dl_h", "carry_h", "h_init", "final_bar_h", "bar_h_prev",
              "pre_h", "z", "u", "z0"]
CODE_NAMES = ["_T", "_B", "_t", "_b", "_j", "_acc", "_m0", "_S0", "_P0", "_c0", "_r0", "_g_W", "_copy", "_exp",
              "_init_h", "_final_h", "_bar_h", "_pre_h", "_dl_h", "_carry_h", "_u_np", "_size_H", "np", "DT",
              "njit", "numba", "forward", "backward", "range", "max", "lambda", "if"]
NAMES = ROLE_NAMES + [n for n in CODE_NAMES if not n.startswith("_")]


@pytest.mark.parametrize("make", [let_cell, pre_activation_cell], ids=["gated", "pre-activation"])
@pytest.mark.parametrize("name", NAMES)
def test_a_let_named_like_the_derivation_has_right_gradients(name, make):
    cell = make(name)
    adj = derive(cell)
    assert len(set(adj.names)) == len(adj.names), "each adjoint variable is defined once"
    rows = finite_differences(cell)
    assert all(r.ok for r in rows), [(r.name, r.max_rel) for r in rows if not r.ok]


@pytest.mark.parametrize("name", NAMES)
def test_a_parameter_named_like_the_derivation_has_right_gradients(name):
    rows = finite_differences(roles_cell(name))
    assert all(r.ok for r in rows), [(r.name, r.max_rel) for r in rows if not r.ok]


@pytest.mark.parametrize("name", NAMES)
def test_the_code_names_are_one_to_one_and_never_the_generators_own(name):
    for cell in (let_cell(name), pre_activation_cell(name), roles_cell(name)):
        codes = code_names(cell, derive(cell))
        assert len(set(codes.values())) == len(codes)
        source = lower(cell, "float64").source
        builtins.compile(source, "<kernel>", "exec")  # no duplicate argument, no keyword: valid Python


def test_concatenations_get_names_no_symbol_has():
    cell = crowded_cell()
    adj = derive(cell)
    assert len(adj.named) == 2 and not set(adj.named) & set(cell.shapes)
    assert all(r.ok for r in finite_differences(cell))


def test_names_the_kernel_cannot_read_are_refused_at_declaration():
    b = CellBuilder("bad")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    b.let("h", tanh(b.param("bar:h", (H, H + X)) @ concat(h, x)))
    with pytest.raises(SpecError, match="^parameter name 'bar:h': a name is letters, digits and '_', starting"):
        b.cell()


@pytest.mark.parametrize("name", [n for n in CODE_NAMES if n.startswith("_")])
def test_a_name_starting_with_an_underscore_is_refused_at_declaration(name):
    """The kernel generator's own names all start with '_', and LaTeX would read one as a subscript."""
    with pytest.raises(SpecError, match=f"^equation name '{name}': a name is letters, digits and '_', starting"):
        let_cell(name)


def test_every_view_of_the_everything_cell_keeps_its_names_apart():
    cell = everything_cell()
    adj = derive(cell)
    assert len(set(adj.names)) == len(adj.names)
    assert all(r.ok for r in finite_differences(cell))
    text = adjoint_equations(adj, "text")
    assert "∂L/∂W = Σ_t" in text and "∂L/∂forward = Σ_t" in text
    assert bptt_rows(adj, "text") and derivation_steps(adj, "W", "text")
    g = backward_graph(cell, adj)
    assert {n.name for n in g.nodes.values() if n.kind == "adjoint"} == set(adj.names)
    assert len({n.id for n in g.nodes.values()}) == len(g.nodes)


def _fd(loss, arr, eps=1e-6):
    out = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = loss()
        arr[idx] = old - eps
        down = loss()
        arr[idx] = old
        out[idx] = (up - down) / (2 * eps)
    return out


@pytest.mark.parametrize("make", [everything_cell, lambda: pre_activation_cell("a_h"), lambda: let_cell("DT")],
                         ids=["everything", "the issue's a_h", "let DT"])
def test_kernels_of_hostile_names_agree_with_finite_differences_and_the_reference(make):
    cell = make()
    X, H, T, B = 2, 3, 4, 2
    k = compile(cell, X, H, "float64")
    rng = np.random.default_rng(5)
    params = k.init(5)
    xs = {d.name: rng.normal(size=(T, B, X)) for d in cell.by_role("input")}
    s0 = {st.name: rng.normal(size=(B, H)) for st in cell.states}
    douts = {o: rng.normal(size=(T, B, H)) for o in cell.outputs}
    dfin = {st.name: rng.normal(size=(B, H)) for st in cell.states}

    def loss():
        out, fin, _ = k.forward(params, xs, s0)
        out = out if isinstance(out, dict) else {cell.outputs[0]: out}
        return float(sum(np.sum(douts[o] * out[o]) for o in out) + sum(np.sum(dfin[s] * fin[s]) for s in fin))

    grads = k.backward(params, xs, douts, dfin, s0)
    for name, arr in [*params.items(), *xs.items(), *s0.items()]:
        np.testing.assert_allclose(grads[name], _fd(loss, arr), rtol=1e-6, atol=1e-7, err_msg=name)
    adj = derive(cell)
    for b in range(B):
        run = ref_forward(cell, params, {n: v[:, b] for n, v in xs.items()}, {s: v[b] for s, v in s0.items()})
        ref = ref_backward(adj, run, {o: d[:, b] for o, d in douts.items()}, {s: v[b] for s, v in dfin.items()})
        for name in xs:
            np.testing.assert_allclose(grads[name][:, b], ref[name], rtol=1e-10, atol=1e-12, err_msg=name)
        for st in s0:
            np.testing.assert_allclose(grads[st][b], ref[st], rtol=1e-10, atol=1e-12, err_msg=st)


def test_check_proves_the_everything_cell_from_the_command_line():
    report = json.loads(run_cli("check", "tests/hostile_cells.py:everything_cell", "--no-exact", "--json").stdout)
    assert report["ok"] is True
    assert {"W", "forward", "bar_h", "range", "x", "np", "h", "DT"} <= {r["name"] for r in report["rows"]}
