"""Compiled kernels: the generated Numba code agrees with the reference evaluation of the SymPy expressions
(gategraph.reference), with finite differences, and with PyTorch; float32 stays float32; bad input gets
one-line errors; the kernel cache survives a corrupt entry."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from gategraph import cells, concat, helpers, interop, sigmoid, tanh
from gategraph.compiling import signature
from gategraph.derive import derive
from gategraph.errors import ShapeError, SpecError, ValueInputError
from gategraph.kernel import _backward_kinds, compile
from gategraph.lower import lower
from gategraph.ops import OPS, Strategy
from gategraph.reference import backward as ref_backward
from gategraph.reference import forward as ref_forward
from gategraph.spec import CellBuilder
from tests.conftest import ROOT
from tests.op_cells import every_op_cell, forward_ops, layernorm_rnn, op_cell

X, H, T, B = 3, 4, 5, 3
RECURRENT = ["lstm", "peephole_lstm", "gru", "gru_reset_after", "rnn"]
TOL = {"float64": 1e-10, "float32": 1e-4}


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _assert_the_same_without_input_grads(k, params, x, dout, dfin, s0, memory=None):
    """backward(..., input_grads=False), as a model whose x is data calls it, with a current tape (the laid-out
    usual call, for a cell without memory) and without one (the full path): no x in the result, the product
    that makes it never runs (its buffer in the workspace keeps what was written there), and every other
    gradient the same bit for bit."""
    _, _, tape = k.forward(params, x, s0, memory)
    grads = k.backward(params, x, dout, dfin, s0, memory, tape=tape)
    inputs = {d.name for d in k.per_step}
    held = [w for w in k._work["backward", 0][1]
            if any(w.shape == grads[n].shape and np.array_equal(w, grads[n]) for n in inputs)]
    assert held  # where the pass writes ∂L/∂x
    for w in held:
        w.fill(7)
    full = []
    k._inputs = lambda *a, inputs=k._inputs: full.append(1) or inputs(*a)
    try:
        for current in (tape, None):
            without = k.backward(params, x, dout, dfin, s0, memory, tape=current, input_grads=False)
            assert current is None or memory or not full  # the laid-out call took it
            assert without.keys() == grads.keys() - inputs
            assert all(np.array_equal(without[n], grads[n]) for n in without)
            assert all((w == 7).all() for w in held)
    finally:
        del k._inputs


def _reference_batch(cell, params, x, s0, dout, dfin, memory=None):
    """Per sequence: the reference forward pass and BPTT, in float64; parameter gradients summed over the batch."""
    adj = derive(cell)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    outs, grads = [], {}
    for b in range(x.shape[1]):
        inputs = {cell.by_role("input")[0].name: x[:, b].astype(np.float64)}
        inputs.update({m: v[b].astype(np.float64) for m, v in (memory or {}).items()})
        run = ref_forward(cell, p64, inputs, {s: v[b].astype(np.float64) for s, v in s0.items()})
        outs.append({**run.outputs, **{f"final_{s}": v for s, v in run.final.items()}})
        g = ref_backward(adj, run, {o: d[:, b].astype(np.float64) for o, d in dout.items()},
                         {s: v[b].astype(np.float64) for s, v in dfin.items()})
        for k, v in g.items():
            grads.setdefault(k, []).append(v)
    return outs, grads


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", RECURRENT)

def test_recurrent_kernels_agree_with_the_reference(name, dtype):
    cell = cells.CELLS[name]()
    k = compile(cell, X, H, dtype)
    rng = np.random.default_rng(1)
    params = {n: (v * 3).astype(k.np_dtype) for n, v in k.init(1).items()}
    x = rng.normal(size=(T, B, X)).astype(k.np_dtype)
    s0 = {st.name: rng.normal(size=(B, H)).astype(k.np_dtype) for st in cell.states}
    out, final, tape = k.forward(params, x, s0)
    dout = rng.normal(size=out.shape).astype(k.np_dtype)
    dfin = {st.name: rng.normal(size=(B, H)).astype(k.np_dtype) for st in cell.states}
    grads = k.backward(params, x, dout, dfin, s0, tape=tape)
    outs, ref = _reference_batch(cell, params, x, s0, {"h": dout}, dfin)
    tol = TOL[dtype]
    assert out.dtype == k.np_dtype and out.shape == (T, B, H)
    assert _rel(out, np.stack([o["h"] for o in outs], axis=1)) < tol
    for st in cell.states:
        assert _rel(final[st.name], np.stack([o[f"final_{st.name}"] for o in outs])) < tol
    assert set(grads) == {p.name for p in cell.params} | {"x"} | {st.name for st in cell.states}
    for p in cell.params:
        assert grads[p.name].dtype == k.np_dtype
        assert _rel(grads[p.name], sum(ref[p.name])) < tol, p.name
    assert _rel(grads["x"], np.stack(ref["x"], axis=1)) < tol
    for st in cell.states:
        assert _rel(grads[st.name], np.stack(ref[st.name])) < tol, st.name
    again = k.backward(params, x, dout, dfin, s0)  # without the tape: the forward pass runs again
    assert all(np.array_equal(again[n], grads[n]) for n in grads)
    _assert_the_same_without_input_grads(k, params, x, dout, dfin, s0)


def _two_sums_cell(kind: str):
    """h = tanh(W·[h_{t-1}, x_t]) ⊙ σ(V h_{t-1} + U x_t) ("summed"); with σ(V h_{t-1}) ⊙ tanh(U x_t) where V h_{t-1}
    and U x_t are not summed ("apart"); summed, and then a let a = V h_{t-1} ("a let too"): the products of h_{t-1}
    and of x_t pair up one to one, in the same order, each time. Or summed, times tanh(P (h_{t-1} ⊙ h_{t-1}) + Q x_t)
    ("two runs of them"): x_t's products are W x_t, Q x_t, U x_t; h_{t-1}'s pair with the first and the last,
    h_{t-1} ⊙ h_{t-1}'s with the second."""
    b = CellBuilder(kind.replace(" ", "_"))
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, V, U = b.param("W", (H, H + X)), b.param("V", (H, H)), b.param("U", (H, X))
    gate = sigmoid(V @ h) * tanh(U @ x) if kind == "apart" else sigmoid(V @ h + U @ x)
    if kind == "two runs of them":  # and P (h_{t-1} ⊙ h_{t-1}) + Q x_t
        gate = tanh(b.param("P", (H, H)) @ (h * h) + b.param("Q", (H, X)) @ x) * gate
    b.let("h", tanh(W @ concat(h, x)) * gate)
    if kind == "a let too":
        b.let("a", V @ h)
    return b.cell()


@pytest.mark.parametrize("kind", ["summed", "apart", "a let too", "two runs of them"])
def test_a_steps_products_are_added_into_the_inputs_only_where_each_is_only_summed_with_one(kind):
    """The forward pass adds each step's products of h_{t-1} (or of h_{t-1} ⊙ h_{t-1}) into a run of columns of
    x_t's rows (β = 1) where every one of them is only ever summed with one of x_t's, and keeps them apart where
    one is not, or is a let's whole value too; the kernel agrees with the reference either way."""
    cell = _two_sums_cell(kind)
    source = lower(cell, "float64", derive(cell)).source
    forward = source[source.index("def forward"):source.index("def backward")]
    added = kind in ("summed", "two runs of them")
    assert ("_product(h[_t], _S1, _S1T, _F1, _P0[_t * _B:(_t + 1) * _B], 0, True)" in forward) is added, forward
    if kind == "two runs of them":  # x_t's products: those h_{t-1}'s are added to, then the one for h_{t-1} ⊙ h_{t-1}
        assert "_copy(_S0, 0, 2*H, Q, 0, 0, X, H, True, False)" in forward, forward
        assert "_product(_v0[_t], _S2, _S2T, _F2, _P0[_t * _B:(_t + 1) * _B], 2*H, True)" in forward, forward
    k = compile(cell, X, H, "float64")
    rng = np.random.default_rng(3)
    params, x = k.init(2), rng.normal(size=(T, B, X))
    s0 = {"h": rng.normal(size=(B, H))}
    out, final, tape = k.forward(params, x, s0)
    dout, dfin = rng.normal(size=out.shape), {"h": rng.normal(size=(B, H))}
    grads = k.backward(params, x, dout, dfin, s0, tape=tape)
    outs, ref = _reference_batch(cell, params, x, s0, {"h": dout}, dfin)
    assert _rel(out, np.stack([o["h"] for o in outs], axis=1)) < TOL["float64"]
    for name in (p.name for p in cell.params):
        assert _rel(grads[name], sum(ref[name])) < TOL["float64"], name
    assert _rel(grads["h"], np.stack(ref["h"])) < TOL["float64"]
    if kind == "a let too":  # a = V h_{t-1}, whole
        before = np.concatenate([s0["h"][None], out[:-1]])
        np.testing.assert_allclose(k.values(tape, "a"), before @ params["V"].T, rtol=1e-12, atol=1e-12)
    assert _rel(grads["x"], np.stack(ref["x"], axis=1)) < TOL["float64"]


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_attention_kernels_agree_with_the_reference(score):
    cell = cells.attention(score=score)
    k = compile(cell, None, H, "float64", A=3) if score == "additive" else compile(cell, None, H, "float64")
    rng = np.random.default_rng(2)
    params = k.init(2)
    S = 6
    q, M = rng.normal(size=(T, B, H)), rng.normal(size=(B, S, H))
    out, _, tape = k.forward(params, q, memory={"M": M})
    assert set(out) == {"alpha", "c"} and out["alpha"].shape == (T, B, S)
    np.testing.assert_allclose(out["alpha"].sum(axis=2), 1, rtol=1e-12)
    assert_attention_agrees(k, cell, params, q, M, rng)


def assert_attention_agrees(k, cell, params, q, M, rng):
    """A float64 attention kernel's outputs and gradients (parameters, query, memory) against the reference."""
    out, _, tape = k.forward(params, q, memory={"M": M})
    dout = {o: rng.normal(size=v.shape) for o, v in out.items()}
    grads = k.backward(params, q, dout, memory={"M": M}, tape=tape)
    outs, ref = _reference_batch(cell, params, q, {}, dout, {}, memory={"M": M})
    for o in cell.outputs:
        assert _rel(out[o], np.stack([r[o] for r in outs], axis=1)) < 1e-12
    for p in cell.params:
        assert _rel(grads[p.name], sum(ref[p.name])) < 1e-10, p.name
    assert _rel(grads["q"], np.stack(ref["q"], axis=1)) < 1e-10
    assert _rel(grads["M"], np.stack(ref["M"])) < 1e-10
    _assert_the_same_without_input_grads(k, params, q, dout, None, None, {"M": M})


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gradients_match_finite_differences(name):
    """L = Σ dout ⊙ h + Σ dfin ⊙ final: every parameter entry, every input and initial state by central differences."""
    _assert_gradients_are_differences(cells.CELLS[name]())


def _assert_gradients_are_differences(cell):
    k = compile(cell, X, H, "float64")
    rng = np.random.default_rng(3)
    params, x = k.init(3), rng.normal(size=(T, B, X))
    s0 = {st.name: rng.normal(size=(B, H)) for st in cell.states}
    dout = rng.normal(size=(T, B, H))
    dfin = {st.name: rng.normal(size=(B, H)) for st in cell.states}

    def loss(params, x, s0):
        out, fin, _ = k.forward(params, x, s0)
        return float(np.sum(dout * out) + sum(np.sum(dfin[s] * fin[s]) for s in fin))

    grads = k.backward(params, x, dout, dfin, s0)
    eps = 1e-6
    for name_, arr in [(p, params[p]) for p in params] + [("x", x)] + [(s, s0[s]) for s in s0]:
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss(params, x, s0)
            arr[idx] = old - eps
            down = loss(params, x, s0)
            arr[idx] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - grads[name_][idx]) <= 1e-6 * max(1, abs(fd)), (name_, idx, fd, grads[name_][idx])


def _holds(cell, op) -> bool:
    """Whether `op` is in the cell's equations or in its adjoint's."""
    adj = derive(cell)
    exprs = [eq.rhs for eq in [*cell.equations, *adj.equations]] + list(adj.grads.values())
    return any(type(node).__name__ == op.name for e in exprs for node in sp.preorder_traversal(e))


@pytest.mark.parametrize("op", OPS.values(), ids=lambda op: op.name)
def test_every_op_lowers_through_its_kernel_form(op):
    """Each op of the registry reaches the kernel generator: in a cell of its own if a forward equation can use it,
    else in the first built-in cell whose equations or adjoint hold it; a call is in the generated loops."""
    candidates = [op_cell(op)] if op in forward_ops() else [make() for make in cells.CELLS.values()] + [
        every_op_cell()]
    cell = next((c for c in candidates if _holds(c, op)), None)
    assert cell is not None, f"no cell tried here uses {op.name}: add one to tests/op_cells.py"
    kernels = lower(cell, "float64").source.split("\ndef forward(")[1]
    if op.kernel.strategy is Strategy.CALL:
        assert op.kernel.call.split("(")[0] + "(" in kernels, op.name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_cell_with_every_op_compiles_and_agrees_with_the_reference(dtype):
    """One cell using every op a forward equation can use (tests/op_cells.py): its kernels against
    gategraph.reference, forward values and every gradient; in float32, nothing computed in float64."""
    k = _assert_agrees_with_the_reference(every_op_cell(), dtype)
    assert dtype == "float64" or _float64_lines(k) == []


@pytest.mark.parametrize("inline", [False, True], ids=["lets", "inline"])
def test_layernorm_cell_agrees_with_the_reference_and_with_differences(inline):
    """h = tanh(g ⊙ (a - mean(a)) / √(var(a) + ε) + b): reductions inside the step's elementwise regions (inline:
    the means inside the equation of h) and in its adjoint."""
    cell = layernorm_rnn(inline)
    _assert_agrees_with_the_reference(cell, "float64")
    _assert_gradients_are_differences(cell)


def _assert_agrees_with_the_reference(cell, dtype):
    k = compile(cell, X, H, dtype)
    rng = np.random.default_rng(5)
    params = k.init(5)
    x = rng.normal(size=(T, B, X)).astype(k.np_dtype)
    s0 = {"h": rng.normal(size=(B, H)).astype(k.np_dtype)}
    out, final, tape = k.forward(params, x, s0)
    dout, dfin = rng.normal(size=out.shape).astype(k.np_dtype), {"h": rng.normal(size=(B, H)).astype(k.np_dtype)}
    grads = k.backward(params, x, dout, dfin, s0, tape=tape)
    outs, ref = _reference_batch(cell, params, x, s0, {"h": dout}, dfin)
    tol = TOL[dtype]
    assert out.dtype == k.np_dtype and _rel(out, np.stack([o["h"] for o in outs], axis=1)) < tol
    for p in cell.params:
        assert grads[p.name].dtype == k.np_dtype
        assert _rel(grads[p.name], sum(ref[p.name])) < tol, p.name
    assert _rel(grads["x"], np.stack(ref["x"], axis=1)) < tol
    assert _rel(grads["h"], np.stack(ref["h"])) < tol
    _assert_the_same_without_input_grads(k, params, x, dout, dfin, s0)
    return k


def test_a_user_cell_compiles():
    """A minimal gated unit, declared here: f = σ(W_f [h, x] + b_f), h = (1 - f) ⊙ h + f ⊙ tanh(W [f ⊙ h, x])."""
    g = CellBuilder("mgu")
    X_, H_ = g.sizes("X H")
    x = g.input("x", (X_,))
    h = g.state("h", (H_,))
    W_f, b_f, W = g.param("W_f", (H_, H_ + X_)), g.param("b_f", (H_,)), g.param("W", (H_, H_ + X_))
    from gategraph import concat, sigmoid, tanh

    f = g.let("f", sigmoid(W_f @ concat(h, x) + b_f))
    h_tilde = g.let("h_tilde", tanh(W @ concat(f * h, x)))
    g.let("h", (1 - f) * h + f * h_tilde)
    cell = g.cell()
    _assert_agrees_with_the_reference(cell, "float64")


def test_float32_kernels_never_compute_in_float64():
    """A bare 1.0 or a SymPy integer would promote float32 arithmetic to float64; only the constants the
    generator wraps in np.float32(...) may be float64 literals."""
    for name in ("lstm", "gru"):
        k = compile(cells.CELLS[name](), X, H, "float32")
        params, x = k.init(0), np.ones((T, B, X), np.float32)
        out, _, tape = k.forward(params, x)
        k.backward(params, x, out, tape=tape)
        assert _float64_lines(k) == []


def _float64_lines(k) -> list:
    """The lines of a compiled kernel's typed code that compute in float64, other than wrapped constants."""
    wide = []
    for fn in (k._forward, k._backward):
        text = io.StringIO()
        fn.inspect_types(file=text)
        wide += [line for line in text.getvalue().splitlines()
                 if line.rstrip().endswith(":: float64") and "const(float" not in line]
    return wide


def test_saturated_gates_give_finite_gradients():
    """σ'(a) is written f ⊙ (1 - f), not differentiated from 1/(1 + e^{-a}): no NaN at |a| ~ 1000."""
    k = compile(cells.lstm(), X, H, "float32")
    params = {n: np.full_like(v, 300.0) for n, v in k.init(0).items()}
    x = np.ones((T, B, X), np.float32)
    out, _, tape = k.forward(params, x)
    grads = k.backward(params, x, np.ones_like(out), tape=tape)
    assert all(np.isfinite(g).all() for g in grads.values())


torch = pytest.importorskip("torch") if not os.environ.get("CI") else __import__("torch")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_kernels_agree_with_pytorch(kind, dtype):
    cell, module, convert = {
        "lstm": (cells.lstm, torch.nn.LSTM, interop.lstm_from_torch),
        "gru": (cells.gru_reset_after, torch.nn.GRU, interop.gru_from_torch),
        "rnn": (cells.rnn, torch.nn.RNN, interop.rnn_from_torch),
    }[kind]
    torch.manual_seed(0)
    net = module(X, H).to(getattr(torch, dtype))
    k = compile(cell(), X, H, dtype)
    state = {n: v.detach().numpy() for n, v in net.state_dict().items()}
    params = {n: v.astype(dtype) for n, v in convert(state).items()}
    x = np.random.default_rng(5).normal(size=(T, B, X)).astype(dtype)
    out, final, tape = k.forward(params, x)
    xt = torch.tensor(x, requires_grad=True)
    ot, _ = net(xt)
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype])
    dout = np.random.default_rng(6).normal(size=out.shape).astype(dtype)
    ot.backward(torch.tensor(dout))
    grads = k.backward(params, x, dout, tape=tape)
    theirs = {n: p.grad.numpy() for n, p in net.named_parameters()}
    ours = interop.grads_to_torch(kind, grads)
    for n in theirs:
        if n.startswith("bias"):  # gategraph has one bias where PyTorch has two with the same gradient
            continue
        assert _rel(ours[n], theirs[n]) < TOL[dtype], n
    assert _rel(grads["x"], xt.grad.numpy()) < TOL[dtype]


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.fixture(params=["fresh", "warm"])
def lstm32(request):
    """A float32 LSTM kernel, its parameters and a batch of zeros: fresh (its first calls take the full path,
    which also compiles or loads), or warm (both passes ran: the usual call is laid out once and only looked at)."""
    k = compile(cells.lstm(), X, H, "float32")
    params, x = k.init(0), np.zeros((T, B, X), np.float32)
    if request.param == "warm":
        _, _, tape = k.forward(params, x)
        k.backward(params, x, None, tape=tape)
    return k, params, x


def test_wrong_shapes_and_dtypes_are_named(lstm32):
    k, params, x = lstm32
    with pytest.raises(ShapeError, match=r"input 'x' has shape \(5, 3, 2\), expected \(5, 3, 3\)"):
        k.forward(params, x[:, :, :2].copy())
    with pytest.raises(ShapeError, match=r"parameter 'W_f' has shape \(4, 6\), expected \(4, 7\)"):
        k.forward({**params, "W_f": params["W_f"][:, :6].copy()}, x)
    with pytest.raises(ValueInputError, match="input 'x' has dtype float64, the kernel is float32"):
        k.forward(params, x.astype(np.float64))
    with pytest.raises(ShapeError, match=r"initial state 'C' has shape \(3, 5\), expected \(3, 4\)"):
        k.forward(params, x, {"C": np.zeros((B, 5), np.float32)})
    with pytest.raises(ShapeError, match=r"d_outputs\['h'\] has shape \(5, 3, 3\), expected \(5, 3, 4\)"):
        k.backward(params, x, np.zeros((T, B, 3), np.float32))
    with pytest.raises(ShapeError, match="must be an array of shape"):
        k.forward(params, np.zeros(3, np.float32))
    with pytest.raises(ShapeError, match=r"input 'x' must have 3 dimensions \(T, B, 3\), got shape \(3, 3\)"):
        k.forward(params, np.zeros((B, X), np.float32))
    with pytest.raises(ValueInputError, match="params lack b_o"):
        k.forward({n: v for n, v in params.items() if n != "b_o"}, x)
    _, _, tape = k.forward(params, x)
    with pytest.raises(ShapeError, match=r"^input 'x' must be an array of shape \(T, B, ...\), got \(\)$"):
        k.backward(params, np.zeros((), np.float32), None, tape=tape)


def test_nan_and_inf_are_refused(lstm32):
    k, params, x = lstm32
    bad = params["W_o"].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueInputError, match="parameter 'W_o' holds NaN or inf"):
        k.forward({**params, "W_o": bad}, x)
    xi = x.copy()
    xi[2, 1, 0] = np.inf
    with pytest.raises(ValueInputError, match="input 'x' holds NaN or inf"):
        k.backward(params, xi, np.zeros((T, B, H), np.float32))
    big = x + np.float32(3e37)  # the sum overflows float32, every entry finite
    with np.errstate(over="ignore"):
        k.forward(params, big)


def test_every_array_a_pass_reads_is_checked_for_nan_and_inf(lstm32):
    """The compiled passes check their arrays before they write anything: each array is named, an inf in the
    last entry of a large one (past the vectorised loop's whole steps) is found, and a refused forward pass
    leaves the last tape current."""
    k, params, x = lstm32
    out, _, tape = k.forward(params, x)
    before = k.values(tape, "f")
    bad = {"h": np.zeros((B, H), np.float32), "C": np.zeros((B, H), np.float32)}
    bad["C"][-1, -1] = -np.inf
    with pytest.raises(ValueInputError, match="^initial state 'C' holds NaN or inf$"):
        k.forward(params, x, state0=bad)
    np.testing.assert_array_equal(k.values(tape, "f"), before)  # the tape is still current
    with pytest.raises(ValueInputError, match=r"^d_final\['C'\] holds NaN or inf$"):
        k.backward(params, x, out, d_final=bad, tape=tape)
    with pytest.raises(ValueInputError, match=r"^d_outputs\['h'\] holds NaN or inf$"):
        k.backward(params, x, np.full_like(out, np.nan), tape=tape)
    wide = compile(cells.lstm(), 300, 37, "float64")
    p64 = wide.init(1)
    p64["W_C"][-1, -1] = np.inf
    with pytest.raises(ValueInputError, match="^parameter 'W_C' holds NaN or inf$"):
        wide.forward(p64, np.ones((2, 1, 300)))
    att = compile(cells.attention(score="dot"), 4, 4, "float64", S=3)
    M = np.ones((2, 3, 4))
    M[1, 2, 3] = np.nan
    with pytest.raises(ValueInputError, match="^memory 'M' holds NaN or inf$"):
        att.forward(att.init(0), np.ones((1, 2, 4)), memory={"M": M})


def _many_parameters_cell(n: int):
    """h = tanh(Σ_k (W_k·[h_{t-1}, x_t] + b_k)) for k = 1 .. n: a pass that checks 2 n + 2 arrays."""
    b = CellBuilder(f"sum_of_{n}")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    a = sum(b.param(f"W_{k}", (H, H + X)) @ concat(h, x) + b.param(f"b_{k}", H) for k in range(1, n + 1))
    b.let("h", tanh(a))
    return b.cell()


def test_a_pass_that_checks_more_arrays_than_one_call_takes_names_each():
    """The helper `_nonfinite` takes helpers.CHECKED arrays a call: a pass with more calls it again, and a NaN
    in an array of the second call (or the first's last) is named as in the first."""
    cell = _many_parameters_cell(helpers.CHECKED // 2 + 1)  # x, the initial h and CHECKED + 2 parameters
    k = compile(cell, 3, 4, "float64")
    params, x = k.init(0), np.ones((2, 3, 3))
    assert lower(cell, "float64", derive(cell)).source.count("_bad = _nonfinite(") == 4  # two in each pass
    out, _, tape = k.forward(params, x)
    last = f"b_{helpers.CHECKED // 2 + 1}"
    for name in ("W_1", f"W_{helpers.CHECKED // 2}", f"b_{helpers.CHECKED // 2 - 1}", last):
        bad = params[name].copy()
        bad.flat[-1] = np.nan
        with pytest.raises(ValueInputError, match=f"^parameter '{name}' holds NaN or inf$"):
            k.forward({**params, name: bad}, x)
        with pytest.raises(ValueInputError, match=f"^parameter '{name}' holds NaN or inf$"):
            k.backward({**params, name: bad}, x, out, tape=tape)
    d_final = {"h": np.full((3, 4), np.inf)}
    with pytest.raises(ValueInputError, match=r"^d_final\['h'\] holds NaN or inf$"):
        k.backward(params, x, out, d_final=d_final, tape=tape)


@pytest.mark.parametrize("make", [*cells.CELLS.values(), every_op_cell, lambda: cells.attention(score="additive")],
                         ids=[*cells.CELLS, "every_op", "attention"])
def test_the_passes_only_read_their_arguments(make):
    """Given arrays are left as they were, and the zeros a kernel keeps for the ones it is not given (initial
    states, d_outputs, d_final) stay zeros: the kernels hand the same zeros to every pass."""
    cell = make()
    memories = {d.name: d for d in cell.by_role("memory")}
    k = compile(cell, X, H, "float64", **({"A": 3} if "A" in {s.name for s in cell.sizes} else {}))
    rng = np.random.default_rng(3)
    params = k.init(3)
    xs = {d.name: rng.normal(size=(T, B, *k.shape(d.name))) for d in cell.by_role("input")}
    memory = {n: rng.normal(size=(B, 6, H)) for n in memories}
    x = xs if len(xs) > 1 else next(iter(xs.values()))
    given = [params, xs, memory]
    before = [{n: v.copy() for n, v in d.items()} for d in given]
    for _ in range(2):
        out, _, tape = k.forward(params, x, memory=memory)
        k.backward(params, x, None, memory=memory, tape=tape)
        k.backward(params, x, out, memory=memory)
    assert all(np.array_equal(d[n], b[n]) for d, b in zip(given, before, strict=True) for n in d)
    assert k._zero_arrays and all(not z.any() for z in k._zero_arrays.values())
    # the types a second process compiles the backward pass for, from an empty cache, are those of these calls
    assert k._backward.signatures == [signature(_backward_kinds(k.plan, cell), "float64")]


def test_a_backward_pass_checks_what_its_tape_did_not(lstm32):
    """Given other arrays than its tape's forward pass, backward checks them (a NaN in them is refused, though
    the tape is current, and so is a batch of another shape). The compiled pass checks for NaN itself: a NaN
    written into x in place after the forward pass is refused too."""
    k, params, x = lstm32
    _, _, tape = k.forward(params, x)
    bad = {**params, "b_f": np.full(H, np.nan, np.float32)}
    with pytest.raises(ValueInputError, match="parameter 'b_f' holds NaN or inf"):
        k.backward(bad, x, np.zeros((T, B, H), np.float32), tape=tape)
    with pytest.raises(ShapeError, match="x of"):
        k.backward(params, np.zeros((T, B + 1, X), np.float32), None, tape=tape)
    x_later = x.copy()
    _, _, tape = k.forward(params, x_later)
    x_later[1, 2, 0] = np.nan
    with pytest.raises(ValueInputError, match="^input 'x' holds NaN or inf$"):
        k.backward(params, x_later, None, tape=tape)


def _two_outputs():
    """h = tanh(a), a = W [h, x] + b, both a and h outputs: a cell of several outputs and one input."""
    from gategraph import concat, tanh

    g = CellBuilder("two_outputs")
    X_, H_ = g.sizes("X H")
    x, h = g.input("x", (X_,)), g.state("h", (H_,))
    W, b = g.param("W", (H_, H_ + X_)), g.param("b", (H_,))
    a = g.let("a", W @ concat(h, x) + b)
    g.let("h", tanh(a))
    return g.cell(outputs=["h", "a"])


@pytest.mark.parametrize("cell, dtype", [("lstm", "float32"), ("gru", "float64"), ("two outputs", "float32")])
def test_the_usual_call_gives_what_the_full_path_gives(cell, dtype):
    """Once both passes ran, a call of the usual kind (x an array, params a dict, a batch run unsplit) skips
    the full path's conversions: the same arrays give the same numbers bit for bit, with a current tape or a
    kept one, and initial states, seeds and final-state gradients left out are zeros as before."""
    rng = np.random.default_rng(3)
    cell = _two_outputs() if cell == "two outputs" else getattr(cells, cell)()
    x, h0 = rng.normal(size=(T, B, X)).astype(dtype), rng.normal(size=(B, H)).astype(dtype)
    d_h, d_fin = rng.normal(size=(T, B, H)).astype(dtype), rng.normal(size=(B, H)).astype(dtype)
    d_out = {"h": d_h} if len(cell.outputs) > 1 else d_h
    calls = [(None, None, None, False), ({"h": h0}, d_out, {"h": d_fin}, True), ({"h": h0}, None, {"h": d_fin}, False)]
    for state0, d_outputs, d_final, kept in calls:
        k = compile(cell, X, H, dtype)
        params = k.init(1)
        full = []
        k._inputs = lambda *a, full=full, inputs=k._inputs: full.append(1) or inputs(*a)
        runs, first = [], 0
        for _ in range(3):  # the first compiles or loads (full path); then the usual call
            out, fin, tape = k.forward(params, x, state0)
            if kept:
                tape = k.keep(tape)
                k.forward(params, x + 1, state0)  # overwrites the workspace the kept tape was copied from
            runs.append((out, fin, k.backward(params, x, d_outputs, d_final, state0, tape=tape)))
            first = first or len(full)
        assert first and len(full) == first  # none after the first round
        for out, fin, grads in runs[1:]:
            outs = out if isinstance(out, dict) else {"": out}
            want = runs[0][0] if isinstance(out, dict) else {"": runs[0][0]}
            assert all(np.array_equal(outs[o], want[o]) for o in want) and outs.keys() == want.keys()
            assert all(np.array_equal(fin[s], runs[0][1][s]) for s in fin)
            assert grads.keys() == runs[0][2].keys()
            assert all(np.array_equal(grads[n], runs[0][2][n]) for n in grads), (state0 is None, kept)


def test_an_array_changed_in_place_is_checked_again(lstm32):
    """The usual call looks at each array every time: reshaped, retyped or frozen in place since the last call
    (the same object), it is refused in one line or copied, never read past its end."""
    k, params, x = lstm32
    w = params["W_f"].copy()
    mine = {**params, "W_f": w}
    want, _, _ = k.forward(mine, x)
    w.shape = (H + X, H)
    with pytest.raises(ShapeError, match=r"^parameter 'W_f' has shape \(7, 4\), expected \(4, 7\)$"):
        k.forward(mine, x)
    w.shape = (H, H + X)
    w.dtype = np.int32
    with pytest.raises(ValueInputError, match=r"^parameter 'W_f' has dtype int32, the kernel is float32"):
        k.forward(mine, x)
    w.dtype = np.float32
    w.setflags(write=False)
    out, _, tape = k.forward(mine, x)
    assert np.array_equal(out, want) and not w.flags.writeable
    x.shape = (T * B, X)
    try:
        with pytest.raises(ShapeError, match=r"^input 'x' must have 3 dimensions"):
            k.backward(mine, x, None, tape=tape)
    finally:
        x.shape = (T, B, X)


def test_a_malformed_request_is_one_line():
    with pytest.raises(SpecError, match="dtype must be one of float32, float64"):
        compile(cells.lstm(), X, H, "float16")
    with pytest.raises(SpecError, match="size H must be a positive integer"):
        compile(cells.lstm(), X, 0)
    with pytest.raises(SpecError, match="has no size Q"):
        compile(cells.lstm(), X, H, Q=3)


# --- the cache ---------------------------------------------------------------------------------------------------


def _fresh(code: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)


RUN = """
import numpy as np
from gategraph import cells
from gategraph.kernel import compile
from gategraph.lower import lower
from gategraph.ops import OPS, Strategy
k = compile(cells.rnn(), 2, 3, "float64")
p = k.init(0); x = np.ones((4, 2, 2))
out, _, tape = k.forward(p, x)
print(float(k.backward(p, x, np.ones_like(out), tape=tape)["W"].sum()))
"""


def test_a_corrupt_cache_entry_is_rebuilt(tmp_path):
    first = _fresh(RUN, tmp_path)
    assert first.returncode == 0, first.stderr
    modules = list(tmp_path.glob("gg_*.py"))
    assert len(modules) == 1 and list(tmp_path.glob("__pycache__/*.nbi")), "Numba cached nothing"
    modules[0].write_text("this is not the kernel")
    for f in tmp_path.glob("__pycache__/*.nbc"):
        f.write_bytes(b"garbage")
    second = _fresh(RUN, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "gategraph kernel" in modules[0].read_text()


def test_cache_command_reports_and_clears(tmp_path):
    assert _fresh(RUN, tmp_path).returncode == 0
    env = {**os.environ, "GATEGRAPH_CACHE_DIR": str(tmp_path)}
    show = subprocess.run([sys.executable, "-m", "gategraph.cli", "cache"], capture_output=True, text=True, env=env)
    assert show.returncode == 0 and str(tmp_path) in show.stdout and "1 kernel" in show.stdout
    clear = subprocess.run([sys.executable, "-m", "gategraph.cli", "cache", "--clear"], capture_output=True,
                           text=True, env=env)
    assert clear.returncode == 0 and "removed 1 kernel" in clear.stdout
    assert not list(tmp_path.glob("gg_*.py"))


def test_buffers_are_reused_but_results_are_never_overwritten(lstm32):
    """The kernel writes every step into a workspace it reuses; what it hands out stays the caller's."""
    k, params, _ = lstm32
    rng = np.random.default_rng(7)
    x1, x2 = (rng.normal(size=(T, B, X)).astype(np.float32) for _ in range(2))
    out1, fin1, tape1 = k.forward(params, x1)
    kept = out1.copy(), fin1["C"].copy()
    g1 = k.backward(params, x1, np.ones_like(out1), tape=tape1)
    out2, _, _ = k.forward(params, x2)  # overwrites the workspace tape1 points into
    assert np.array_equal(out1, kept[0]) and np.array_equal(fin1["C"], kept[1])
    assert not np.array_equal(out1, out2)
    again = k.backward(params, x1, np.ones_like(out1), tape=tape1)  # a stale tape: the forward pass reruns
    assert all(np.array_equal(again[n], g1[n]) for n in g1)
    g2 = k.backward(params, x2, np.ones_like(out2))
    assert not np.array_equal(g2["x"], g1["x"]) and np.array_equal(again["x"], g1["x"])


def test_a_kept_tape_outlives_later_forward_passes(lstm32):
    """`keep` copies a tape out of the workspace: after another forward pass it still holds its own steps, and
    BPTT from it is the same as from the fresh tape; a tape gone stale cannot be kept."""
    k, params, _ = lstm32
    rng = np.random.default_rng(8)
    x1, x2 = (rng.normal(size=(T, B, X)).astype(np.float32) for _ in range(2))
    out1, _, tape1 = k.forward(params, x1)
    cells1, kept = k.values(tape1, "C"), k.keep(tape1)
    fresh = k.backward(params, x1, np.ones_like(out1), tape=tape1)
    k.forward(params, x2)
    assert np.array_equal(k.values(kept, "C"), cells1)
    later = k.backward(params, x1, np.ones_like(out1), tape=kept)
    assert all(np.array_equal(later[n], fresh[n]) for n in fresh)
    with pytest.raises(ValueInputError, match="earlier forward pass"):
        k.keep(tape1)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_state_gradients_of_every_step(name):
    """∂L/∂s_t is what a run started at s_t sends back to its initial state plus the output's own seed, for a
    state that reaches the loss only so (h; the LSTM's C also reaches it through h_t: see the PyTorch test)."""
    k = compile(cells.CELLS[name](), X, H, "float64")
    rng = np.random.default_rng(8)
    params, x, d = k.init(8), rng.normal(size=(T, B, X)), rng.normal(size=(T, B, H))
    _, _, tape = k.forward(params, x)
    states = {st.name: k.values(tape, st.name) for st in k.states}
    steps = k.backward(params, x, d, tape=tape, state_grads=True)["steps"]
    for t in range(T - 1):
        tail = k.backward(params, x[t + 1:].copy(), d[t + 1:].copy(), state0={s: v[t] for s, v in states.items()})
        for st in [st for st in k.states if st.name == "h"]:
            expected = tail[st.name] + d[t]
            np.testing.assert_allclose(steps[st.name][t], expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(steps["h"][T - 1], d[T - 1])


# --- hostile names ------------------------------------------------------------------------------------------------


def _rnn_named(name: str, doc: str = ""):
    from gategraph import concat, tanh

    b = CellBuilder(name, doc)
    X_, H_ = b.sizes("X H")
    x, h = b.input("x", X_), b.state("h", H_)
    W, bias = b.param("W", (H_, H_ + X_)), b.param("b", H_)
    b.let("h", tanh(W @ concat(h, x) + bias))
    return b.cell()


def test_a_cell_name_never_runs_as_code(tmp_path):
    """A name that ends the generated module's docstring and goes on as Python is only ever text."""
    marker = tmp_path / "ran"
    payload = f'""";__import__("pathlib").Path(r"{marker}").touch();"""'
    for name, doc in [(f"evil{payload}", ""), ("described", payload), (f"x\\{payload}\\", payload),
                      ("\\", "\n\"\"\"\nimport os\n")]:
        cell = _rnn_named(name, doc)
        _assert_agrees_with_the_reference(cell, "float64")
        assert not marker.exists(), f"compiling the cell {name!r} ran code from its name"


def test_a_built_in_cell_may_be_named_and_anything_else_is_one_line():
    k = compile("gru", X, H, "float64")
    assert k.cell == cells.gru() and k.forward(k.init(0), np.ones((T, B, X)))[0].shape == (T, B, H)
    assert compile("peephole-lstm", X, H).cell == cells.peephole_lstm()
    with pytest.raises(SpecError, match=r"^unknown cell 'lstmm': choose one of .*lstm.*, or pass a Cell "
                                        r"\(CellBuilder\(\.\.\.\)\.cell\(\)\)$"):
        compile("lstmm", X, H)
    with pytest.raises(SpecError, match=r"^compile\(\) takes a Cell or a built-in cell's name \('lstm'\), got "
                                        r"function: call it, compile\(lstm\(\), \.\.\.\)$"):
        compile(cells.lstm, X, H)


def test_read_only_and_strided_arrays_are_taken_as_they_are_and_left_untouched(lstm32):
    """Arrays a caller froze (`setflags(write=False)`), Fortran-ordered or strided ones give the same results
    as fresh contiguous copies, and stay as they were; integers are refused in one line."""
    k, params, _ = lstm32
    rng = np.random.default_rng(8)
    x, h0 = rng.normal(size=(T, B, X)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
    dout, dfin = rng.normal(size=(T, B, H)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)
    want_out, want_fin, _ = k.forward(params, x, {"h": h0})
    want = k.backward(params, x, dout, {"C": dfin}, {"h": h0})

    def frozen(a):
        a = a.copy()
        a.setflags(write=False)
        return a

    variants = {
        "read-only": (lambda a: frozen(a)),
        "Fortran-ordered": (lambda a: np.asfortranarray(a)),
        "strided": (lambda a: np.stack([a, np.zeros_like(a)], axis=-1)[..., 0]),
    }
    for label, make in variants.items():
        p2, x2, h2, d2, f2 = ({n: make(v) for n, v in params.items()}, make(x), make(h0), make(dout), make(dfin))
        before = {n: v.copy() for n, v in p2.items()}
        out, fin, _ = k.forward(p2, x2, {"h": h2})
        got = k.backward(p2, x2, d2, {"C": f2}, {"h": h2})
        assert np.array_equal(out, want_out) and all(np.array_equal(fin[s], want_fin[s]) for s in fin), label
        assert all(np.array_equal(got[n], want[n]) for n in want), label
        assert all(np.array_equal(p2[n], before[n]) for n in p2) and np.array_equal(x2, x), label
    with pytest.raises(ValueInputError, match=r"^parameter 'W_f' has dtype int64, the kernel is float32: convert"):
        k.forward({**params, "W_f": np.ones((H, H + X), np.int64)}, x)
    with pytest.raises(ValueInputError, match=r"^input 'x' has dtype int64, the kernel is float32: convert"):
        k.forward(params, np.ones((T, B, X), np.int64))


def test_state_gradients_of_the_lstm_cell_state_agree_with_pytorch():
    """∂L/∂C_t for every t, against autograd through torch.nn.LSTMCell with retain_grad on each C_t: the whole
    gradient, also what reaches the loss through h_t = o_t ⊙ tanh(C_t), not only what later steps send back."""
    torch.manual_seed(2)
    net = torch.nn.LSTMCell(X, H).double()
    k = compile(cells.lstm(), X, H, "float64")
    state = {n.replace("ih", "ih_l0").replace("hh", "hh_l0"): v.detach().numpy() for n, v in net.state_dict().items()}
    params = interop.lstm_from_torch(state)
    rng = np.random.default_rng(9)
    x, dout = rng.normal(size=(T, B, X)), rng.normal(size=(T, B, H))
    dfin = {"h": rng.normal(size=(B, H)), "C": rng.normal(size=(B, H))}
    steps = k.backward(params, x, dout, dfin, state_grads=True)["steps"]
    h, c = torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
    hs, cs, loss = [], [], 0
    for t in range(T):
        h, c = net(torch.tensor(x[t]), (h, c))
        h.retain_grad()
        c.retain_grad()
        hs.append(h)
        cs.append(c)
        loss = loss + (h * torch.tensor(dout[t])).sum()
    loss = loss + (h * torch.tensor(dfin["h"])).sum() + (c * torch.tensor(dfin["C"])).sum()
    loss.backward()
    for t in range(T):
        np.testing.assert_allclose(steps["C"][t], cs[t].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"C_{t}")
        np.testing.assert_allclose(steps["h"][t], hs[t].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"h_{t}")


def test_a_state_or_output_the_cell_does_not_have_is_refused(lstm32):
    k, params, x = lstm32
    with pytest.raises(ValueInputError, match=r"^d_final names state 'c', which cell 'lstm' does not have: "
                                              r"its states are h, C$"):
        k.backward(params, x, np.ones((T, B, H), np.float32), {"c": np.ones((B, H), np.float32)})
    with pytest.raises(ValueInputError, match="d_outputs names output 'y'.*its outputs are h$"):
        k.backward(params, x, {"y": np.ones((T, B, H), np.float32)})
    with pytest.raises(ValueInputError, match="state0 names state 'C0'.*its states are h, C$"):
        k.forward(params, x, {"C0": np.ones((B, H), np.float32)})
    adj, run = derive(cells.lstm()), ref_forward(cells.lstm(), {n: v.astype(float) for n, v in params.items()},
                                                   {"x": x[:, 0].astype(float)})
    with pytest.raises(ValueInputError, match="d_final names state 'c'"):
        ref_backward(adj, run, {}, {"c": np.ones(H)})


def test_a_scalar_parameter_compiles_trains_and_has_the_right_gradient():
    """h = tanh(β W·[h, x]) + β with β of shape (): the kernel's ∂L/∂β by central differences, and an
    optimizer step updates it in place."""
    from gategraph.optim import Adam
    from tests.hostile_cells import scalar_cell

    k = compile(scalar_cell(), X, H, "float64")
    params = k.init(4)
    assert params["beta"].shape == ()
    rng = np.random.default_rng(4)
    x, dout = rng.normal(size=(T, B, X)), rng.normal(size=(T, B, H))

    def loss():
        return float(np.sum(dout * k.forward(params, x)[0]))

    grads = k.backward(params, x, dout)
    assert grads["beta"].shape == ()
    old, eps = params["beta"].copy(), 1e-6
    params["beta"][()] = old + eps
    up = loss()
    params["beta"][()] = old - eps
    down = loss()
    params["beta"][()] = old
    assert abs(grads["beta"] - (up - down) / (2 * eps)) <= 1e-7 * max(1, abs(up - down) / (2 * eps))
    Adam(lr=0.1).step(params, grads)
    assert params["beta"].shape == () and params["beta"] != old


def test_a_ctrl_c_inside_a_compiled_pass_is_a_keyboard_interrupt():
    """Numba wraps an exception raised in a callback (a Ctrl-C handler that ran while the pass unpickled a
    constant) in SystemErrors; the kernel gives the caller its KeyboardInterrupt back, and nothing else."""
    from gategraph.kernel import _call

    def interrupted():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as k:
            raise SystemError("returned a result with an exception set") from k

    def broken():
        raise SystemError("something else")

    with pytest.raises(KeyboardInterrupt):
        _call(interrupted, [], [])
    with pytest.raises(SystemError, match="something else"):
        _call(broken, [], [])
