"""graphc.check.verify proves VJP rules -- and can refuse them; user-defined ops work
end to end; second derivatives come out right, numerically and symbolically."""
import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.transform.autodiff import grad
from graphc.check.gradcheck import gradcheck
from graphc.ir.ops import OPS, OpDef, register
from graphc.ir.ops.common import same_float, same_shape, vectorize_sympy
from graphc.frontend.user_ops import undefine
from graphc.check.verify import format_table, prove_all, prove_op, sym_evaluate, symbols


# ----- the whole table -------------------------------------------------------------
def test_prove_all_passes():
    results = prove_all()
    failed = [(r.op, r.detail) for r in results if not r.ok]
    assert not failed
    assert {r.op for r in results} == {name for name, op in OPS.items() if op.kind != "leaf"}
    text = format_table(results)
    for r in results:
        assert r.op in text


def test_statuses_and_regions():
    assert [r.region for r in prove_op("relu").regions] == ["x0 > 0", "x0 < 0"]
    assert len(prove_op("where").regions) == 2  # both branches of the mask
    assert prove_op("maximum").regions[0].region == "x0 - x1 > 0"
    assert prove_op("sign").status == "zero-gradient"
    assert prove_op("gt").status == "zero-gradient"
    assert prove_op("one_hot").status == "not-differentiable"
    assert prove_op("softmax").status == "proved"
    assert prove_op("input").status == "leaf"


# ----- wrong rules are rejected ------------------------------------------------------
def _elementwise(name, sympy_scalar, numpy_impl, derivs, regions=None):
    return OpDef(name=name, arity=1, kind="elementwise", shape_rule=same_shape,
                 dtype_rule=same_float, numpy_impl=numpy_impl,
                 sympy_impl=vectorize_sympy(sympy_scalar), sympy_scalar=sympy_scalar,
                 derivs=derivs, differentiable=(0,),
                 proof={"regions": regions} if regions else {})


@pytest.fixture
def temporary_ops():
    """Register ops for one test and always take them out of the table again."""
    added = []

    def add(op):
        added.append(register(op).name)
        return op
    yield add
    for name in added:
        OPS.pop(name, None)


def test_wrong_elementwise_rule_is_rejected(temporary_ops):
    # d(x^2)/dx is 2x; this rule forgets the 2.
    temporary_ops(_elementwise("tmp_bad_square", lambda a: a ** 2, np.square, lambda c, i: c.x[0]))
    result = prove_op("tmp_bad_square")
    assert not result.ok and result.status == "failed"
    assert "g_x0" in result.detail


def test_right_rule_for_the_same_op_is_accepted(temporary_ops):
    """Control for the test above: the failure is the rule's, not the harness's."""
    temporary_ops(_elementwise("tmp_good_square", lambda a: a ** 2, np.square, lambda c, i: 2.0 * c.x[0]))
    assert prove_op("tmp_good_square").ok


def test_rule_wrong_in_one_region_fails_only_there(temporary_ops):
    # relu's slope everywhere: right for x > 0, wrong for x < 0.
    temporary_ops(_elementwise("tmp_bad_relu", lambda a: sympy.Max(a, 0), lambda a: np.maximum(a, 0),
                               lambda c, i: c.const(1.0), regions=[{0: "positive"}, {0: "negative"}]))
    result = prove_op("tmp_bad_relu")
    assert not result.ok
    assert [r.ok for r in result.regions] == [True, False]


def test_wrong_vjp_rule_is_rejected(temporary_ops):
    softmax = OPS["softmax"]
    # Forgets the "- sum(g * out)" term of the softmax VJP.
    temporary_ops(OpDef(name="tmp_bad_softmax", arity=1, kind="nn", shape_rule=softmax.shape_rule,
                        dtype_rule=softmax.dtype_rule, numpy_impl=softmax.numpy_impl,
                        sympy_impl=softmax.sympy_impl, vjp=lambda c, g: [c.out * g],
                        differentiable=(0,), proof=softmax.proof))
    assert not prove_op("tmp_bad_softmax").ok


def test_reregistered_op_is_proved_again(temporary_ops):
    temporary_ops(_elementwise("tmp_square", lambda a: a ** 2, np.square, lambda c, i: c.x[0]))
    assert not prove_op("tmp_square").ok
    OPS.pop("tmp_square")
    temporary_ops(_elementwise("tmp_square", lambda a: a ** 2, np.square, lambda c, i: 2.0 * c.x[0]))
    assert prove_op("tmp_square").ok  # not the cached failure


# ----- user-defined ops --------------------------------------------------------------------
@pytest.fixture
def user_op():
    """define_elementwise for one test; the op and its derivative ops are removed after."""
    defined = []

    def define(name, fn, **kw):
        op = gc.define_elementwise(name, fn, **kw)
        defined.append(name)
        return op
    yield define
    for name in defined:
        if name in OPS:
            undefine(name)


def _graph_of(fn, shape=(5,)):
    b = gc.Builder("user")
    x = b.input("x", shape)
    return b.output(gc.sum(fn(x) * np.linspace(-1, 2, shape[0]), name="loss"), y=fn(x))


@pytest.mark.parametrize("name, fn, regions, points", [
    ("tmp_softsign", lambda x: x / (1 + sympy.Abs(x)), [{0: "positive"}, {0: "negative"}],
     np.array([-2.5, -0.4, 0.3, 1.0, 3.0])),
    ("tmp_xgauss", lambda x: x * sympy.exp(-x ** 2), None, np.array([-2.0, -0.5, 0.0, 0.7, 1.5])),
])
def test_user_op_end_to_end(user_op, name, fn, regions, points):
    f = user_op(name, fn, regions=regions)
    assert OPS[name].kind == "elementwise"
    assert prove_op(name).ok, prove_op(name).detail

    graph = _graph_of(f)
    assert gradcheck(graph, {"x": points}, loss="loss").ok
    x = sympy.Symbol("x", real=True)
    reference = sympy.lambdify([x], fn(x), "numpy")
    compiled = gc.compile(grad(graph, loss="loss"))
    out = compiled(x=points)
    np.testing.assert_allclose(out["y"], reference(points), rtol=1e-14)
    dref = sympy.lambdify([x], sympy.diff(fn(x), x), "numpy")
    np.testing.assert_allclose(out["g_x"], dref(points) * np.linspace(-1, 2, 5), rtol=1e-13, atol=1e-15)
    assert f"ref.{name}(" not in compiled.source  # emitted inline, readable NumPy
    assert prove_op(f"{name}_d0").ok  # the derivative op joined the table, proved too


def test_user_op_of_two_arguments_and_a_scipy_function(user_op):
    f = user_op("tmp_erfmul", sympy.Lambda(sympy.symbols("a b"), sympy.erf(sympy.Symbol("a")) * sympy.Symbol("b")))
    assert OPS["tmp_erfmul"].arity == 2 and prove_op("tmp_erfmul").ok
    b = gc.Builder("two")
    a, c = b.input("a", (2, 3)), b.input("c", (3,))  # broadcasting, so c's gradient is summed
    graph = b.output(gc.sum(f(a, c), name="loss"))
    feeds = {"a": np.array([[0.1, -0.5, 1.2], [2.0, -1.0, 0.3]]), "c": np.array([0.5, -2.0, 1.5])}
    assert gradcheck(graph, feeds).ok
    gg = grad(graph)
    got = gc.compile(gg)(feeds)
    want = gc.evaluate(gg, feeds).outputs
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-14)
    from scipy.special import erf
    np.testing.assert_allclose(got["g_c"], erf(feeds["a"]).sum(axis=0), rtol=1e-14)


def test_user_op_keeps_float32(user_op):
    f = user_op("tmp_cube", lambda x: x ** 3 / 3)
    b = gc.Builder("f32", dtype="float32")
    x = b.input("x", (3,))
    graph = b.output(f(x, name="y"))
    value = np.array([1.0, 2.0, -3.0], dtype=np.float32)
    assert gc.evaluate(graph, x=value)["y"].dtype == np.float32
    assert gc.compile(graph)(x=value)["y"].dtype == np.float32


def test_user_op_errors(user_op):
    with pytest.raises(gc.GraphcError, match="already exists"):
        gc.define_elementwise("exp", lambda x: sympy.exp(x))
    user_op("tmp_twice", lambda x: 2 * x)
    with pytest.raises(gc.GraphcError, match="already exists"):
        gc.define_elementwise("tmp_twice", lambda x: 3 * x)
    y = sympy.Symbol("y")
    with pytest.raises(gc.GraphcError, match="not its arguments"):
        gc.define_elementwise("tmp_free", lambda x: x * y)
    with pytest.raises(gc.GraphcError, match="identifier"):
        gc.define_elementwise("bad name", lambda x: x)


# ----- second derivatives ---------------------------------------------------------------
POINTS = [-2.0, -0.7, 0.0, 0.3, 1.1, 2.5]
X = sympy.Symbol("x", real=True)
SECOND = sympy.diff(X * sympy.tanh(X), X, 2)


def _second_derivative_graph(f):
    b = gc.Builder("xtanh")
    x = b.input("x")
    g1 = grad(b.output(f(x).named("y")), loss="y", wrt=["x"])
    return grad(g1, loss="g_x", wrt=["x"])


@pytest.mark.parametrize("how", ["builtin", "user"])
def test_second_derivative_of_x_tanh_x(user_op, how):
    f = (lambda x: x * gc.tanh(x)) if how == "builtin" else user_op("tmp_xtanh", lambda x: x * sympy.tanh(x))
    g2 = _second_derivative_graph(f)
    for p in POINTS:
        got = gc.evaluate(g2, x=np.float64(p)).grad("x")
        assert abs(float(got) - float(SECOND.subs(X, sympy.Rational(p)).evalf(30))) < 1e-12
    out_name = next(k for k, n in g2.outputs.items() if n == g2.grads["x"])
    emitted = gc.compile(g2)(x=0.3)[out_name]
    assert abs(float(emitted) - float(SECOND.subs(X, sympy.Rational(3, 10)).evalf(30))) < 1e-12

    # The same graph, evaluated symbolically, is the second derivative exactly.
    values = sym_evaluate(g2, {"x": symbols("x", (), real=True)})
    symbolic = values[g2.grads["x"]].item()
    assert sympy.simplify(symbolic.rewrite(sympy.exp) - SECOND.rewrite(sympy.exp)) == 0
