"""The op registry: every op prints, has a shape rule, evaluates, and differentiates correctly."""

import numpy as np
import pytest
import sympy as sp

from gategraph import CellBuilder, concat, ops, tanh
from gategraph.check import finite_differences, sympy_exact
from gategraph.derive import derive
from gategraph.errors import ShapeError
from gategraph.lower import lower
from gategraph.numeric import value_of
from gategraph.ops import NODES, OPS
from gategraph.renderers.latex import equations
from gategraph.spec import Var
from tests.op_cells import forward_ops, layernorm_rnn, op_cell

RNG = np.random.default_rng(0)
POINTWISE = [op for op in OPS.values() if op.kind == "pointwise"]
WITH_VJP = [op for op in OPS.values() if op.vjp is not None]

# argument shapes each structural op is tried at (sizes 3, 4, 2); a bare number is a size argument
STRUCT_ARGS = {
    "MatMul": [(3, 4), (4,)],
    "MatMul ": [(3, 4), (4, 2)],  # matrix times matrix: the other branch of the rule
    "Transpose": [(3, 4)],
    "Concat": [(3,), (4,)],
    "Outer": [(3,), (4,)],
    "Dot": [(4,), (4,)],
    "Softmax": [(4,)],
    "RowPlus": [(3, 4), (4,)],
    "Sum": [(4,)],
    "Mean": [(4,)],
    "Fill": [(), 4],
}


def _draw(op, size):
    """Arguments where the op is defined: positive ones for log, √ and a divisor."""
    return np.abs(RNG.normal(size=size)) + 0.3 if op.positive else RNG.normal(size=size)


def test_every_structural_op_with_a_vjp_is_tried():
    assert {o.name for o in WITH_VJP} <= {c.strip() for c in STRUCT_ARGS} | {"Slice"}


@pytest.mark.parametrize("op", OPS.values(), ids=lambda op: op.name)
def test_every_op_has_its_templates_and_a_node_class(op):
    for template in (op.latex, op.text):
        printed = template.format(*(f"<arg{i}>" for i in range(op.arity)))
        assert all(printed.count(f"<arg{i}>") == 1 for i in range(op.arity)), f"{op.name}: {template!r}"
    assert NODES[op.name].op is op and op.glyph, op.name


@pytest.mark.parametrize("op", POINTWISE, ids=lambda op: op.name)
def test_pointwise_numpy_agrees_with_its_sympy_scalar_form(op):
    xs = [sp.Symbol(f"a{i}") for i in range(op.arity)]
    f = sp.lambdify(xs, op.scalar(*xs), modules=[ops.NUMPY_SCALARS, "numpy"])
    args = [_draw(op, 5) for _ in xs]
    np.testing.assert_allclose(op.numpy(*args), f(*args), rtol=1e-12)
    exact = [np.array([sp.Rational(int(v * 8), 8) for v in a], dtype=object) for a in args]
    by_scalar = np.vectorize(op.scalar, otypes=[object])(*exact)  # how exact arithmetic evaluates (numeric.py)
    np.testing.assert_allclose(np.array([float(v) for v in by_scalar]),
                               op.numpy(*[a.astype(float) for a in exact]), rtol=1e-12)


@pytest.mark.parametrize("op", POINTWISE, ids=lambda op: op.name)
def test_pointwise_derivative_from_sympy_matches_finite_differences(op):
    xs = [sp.Symbol(f"a{i}") for i in range(op.arity)]
    point = {x: sp.Float(v) for x, v in zip(xs, _draw(op, op.arity) + 0.3, strict=True)}
    for x in xs:
        exact = float(sp.diff(op.scalar(*xs), x).subs(point).evalf())
        eps = 1e-6
        up, down = dict(point), dict(point)
        up[x], down[x] = point[x] + eps, point[x] - eps
        fd = (float(op.scalar(*xs).subs(up).evalf()) - float(op.scalar(*xs).subs(down).evalf())) / (2 * eps)
        assert exact == pytest.approx(fd, rel=1e-6, abs=1e-8), op.name


def test_sigmoid_derivative_is_the_compact_form():
    a = sp.Symbol("a")
    assert sp.diff(ops.sigma(a), a) == ops.sigma(a) * (1 - ops.sigma(a))
    assert ops.sigma(sp.Float(-800.0)).evalf() >= 0  # no overflow, no NaN far out
    assert np.isfinite(ops.OPS["Sigmoid"].numpy(np.array([-800.0, 800.0]))).all()


@pytest.mark.parametrize("case", sorted(STRUCT_ARGS))
def test_structural_vjp_rule_matches_finite_differences(case):
    """<bar, d out> = Σ_i <bar_i, d arg_i> for a random direction: the VJP rule is the adjoint of the JVP."""
    op, shapes = OPS[case.strip()], STRUCT_ARGS[case]
    names = [Var(f"a{i}") if isinstance(s, tuple) else sp.Integer(s) for i, s in enumerate(shapes)]
    env = {v.name: RNG.normal(size=s) for v, s in zip(names, shapes, strict=True) if isinstance(v, Var)}
    out_expr = NODES[op.name](*names)
    out = value_of(out_expr, env)
    env["bar"], env["out"] = RNG.normal(size=out.shape), out
    sym_shapes = [tuple(sp.Integer(n) for n in s) if isinstance(s, tuple) else () for s in shapes]
    adjoints = op.vjp(Var("bar"), Var("out"), names, sym_shapes)
    assert len(adjoints) == op.arity
    eps = 1e-6
    for v, adj in zip(names, adjoints, strict=True):
        if not isinstance(v, Var):
            assert adj is None, f"{op.name}: a size argument has no adjoint"
            continue
        direction = RNG.normal(size=env[v.name].shape)
        up, down = dict(env), dict(env)
        up[v.name] = env[v.name] + eps * direction
        down[v.name] = env[v.name] - eps * direction
        jvp = (value_of(out_expr, up) - value_of(out_expr, down)) / (2 * eps)
        lhs = np.sum(env["bar"] * jvp)
        rhs = np.sum(value_of(adj, env) * direction)
        assert lhs == pytest.approx(rhs, rel=1e-6), f"{op.name}: adjoint of argument {v}"


def test_shape_rules_name_expected_and_found_shapes():
    H, X = sp.symbols("H X")
    with pytest.raises(ShapeError, match=r"MatMul needs \(H, X\) times \(X, \.\.\.\), got \(H, X\) times \(H,\)"):
        OPS["MatMul"].shape((H, X), (H,))
    with pytest.raises(ShapeError, match=r"Plus needs equal shapes, got \(H,\) and \(X,\)"):
        OPS["Plus"].shape((H,), (X,))
    assert OPS["Concat"].shape((H,), (X,)) == (H + X,)
    assert OPS["Minus"].shape((), (H,)) == (H,)  # 1 - z: a scalar broadcasts


def test_python_operators_build_op_nodes_in_the_order_written():
    z, h = Var("z"), Var("h")
    e = (1 - z) * h
    assert type(e).__name__ == "Hadamard" and type(e.args[0]).__name__ == "Minus"
    assert e.args[0].args == (sp.Integer(1), z)
    assert type(2 * h).__name__ == "Scale" and type(h @ z).__name__ == "MatMul"
    assert type(h.T).__name__ == "Transpose" and type(-h).__name__ == "Scale"
    assert type(h / z).__name__ == "Divide" and (h / z).args == (h, z)
    assert type(1 / z).__name__ == "Divide" and (1 / z).args == (sp.Integer(1), z)
    assert type(h / 2).__name__ == "Scale" and (h / 2).args == (sp.Rational(1, 2), h)


@pytest.mark.parametrize("op", forward_ops(), ids=lambda op: op.name)
def test_a_cell_using_the_op_has_the_gradients_of_finite_differences_and_of_sympy(op):
    """The adjoint derived through the op (its derivative written back with the vector ops) against central
    differences, and against SymPy's own diff of the loss as an identity (through x and h_0, which reach every
    parameter product and the op)."""
    cell = op_cell(op)
    rows = finite_differences(cell, T=2) + sympy_exact(cell, T=1, names=("x", "h"))
    assert [r.name for r in rows if not r.ok] == [], op.name
    assert len(rows) == 5 + 2  # W, U, b, x, h by differences; x, h by SymPy


def test_layernorm_prints_as_written_and_its_adjoint_uses_the_new_ops():
    cell = layernorm_rnn()
    assert [line.strip() for line in equations(cell, "text").splitlines()] == [
        "a_t = W · [h_{t-1}, x_t]", "d_t = a_t - mean(a_t)", "var_t = mean(d_t ⊙ d_t)",
        "h_t = tanh(g ⊙ d_t / √(var_t + 1/100000) + b)"]
    assert equations(cell).splitlines()[-2].strip() == (
        r"h_t &= \tanh(\frac{g \odot d_t}{\sqrt{var_t + \frac{1}{100000}}} + b)")
    adj = derive(cell)
    assert str(adj.equation("bar:a").rhs) == "Plus(bar:d, Fill(Divide(Sum(Scale(-1, bar:d)), H), H))"
    assert "Divide(Hadamard(g, d), Hadamard(Plus(1/100000, var), Sqrt(Plus(1/100000, var))))" in str(
        adj.equation("bar:var").rhs)  # ∂/∂var of x / √(var + ε) is -x / (2 (var + ε)^(3/2))


def test_a_size_is_a_constant_in_an_equation():
    """h = tanh(W·[h_{t-1}, x_t] / H + b): H is a number to the derivative, the reference and the kernel."""
    b = CellBuilder("by_size")
    X, H = b.sizes("X H")
    x, h = b.input("x", X), b.state("h", H)
    W, bias = b.param("W", (H, H + X)), b.param("b", H)
    b.let("h", tanh(W @ concat(h, x) / H + bias))
    cell = b.cell()
    assert [r.name for r in finite_differences(cell, T=2) if not r.ok] == []
    assert "/np.float32(H)" in lower(cell, "float32").source.split("def forward(")[1]
