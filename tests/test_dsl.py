"""The DSL: operators, leaves, comparisons, tracing and symbolic batch dims.

Values are checked against the same expression written in NumPy.
"""
import numpy as np
import pytest

import graphc as gc

RNG = np.random.default_rng(7)
XA = RNG.standard_normal((2, 3))
YA = RNG.standard_normal((2, 3)) + 3.0  # positive: safe divisor and base


def run1(fn, *arrays):
    """Trace fn over inputs shaped like arrays, evaluate, and return its only output."""
    g = gc.trace(fn, *[a.shape for a in arrays])
    feeds = dict(zip([g.name_of(n) for n in g.inputs], arrays))
    (out,) = gc.evaluate(g, feeds).outputs.values()
    return out


@pytest.mark.parametrize("fn,ref", [
    (lambda x, y: x + y, lambda x, y: x + y),
    (lambda x, y: x - y, lambda x, y: x - y),
    (lambda x, y: x * y, lambda x, y: x * y),
    (lambda x, y: x / y, lambda x, y: x / y),
    (lambda x, y: y ** x, lambda x, y: y ** x),
    (lambda x, y: -x, lambda x, y: -x),
    (lambda x, y: 2.0 * x - y / 4 + 1, lambda x, y: 2.0 * x - y / 4 + 1),
    (lambda x, y: 1.0 / y + 3 - x, lambda x, y: 1.0 / y + 3 - x),
    (lambda x, y: x ** 2, lambda x, y: x ** 2),
    (lambda x, y: 2.0 ** x, lambda x, y: 2.0 ** x),
    (lambda x, y: np.float64(3.0) * x, lambda x, y: 3.0 * x),   # numpy scalar on the left defers
    (lambda x, y: x * np.array([1.0, 2.0, 3.0]), lambda x, y: x * np.array([1.0, 2.0, 3.0])),
], ids=["add", "sub", "mul", "div", "pow", "neg", "mixed", "rconst", "square", "rpow", "npscalar", "nparray"])
def test_operators(fn, ref):
    np.testing.assert_allclose(run1(fn, XA, YA), ref(XA, YA), rtol=1e-15)


def test_python_numbers_adopt_the_operand_float_dtype():
    b = gc.Builder()
    x = b.input("x", (3,), "float32")
    y = 2 * x + 1.5 - np.float64(0.25)
    assert y.dtype == "float32"
    assert all(b.graph.dtype(n) == "float32" for n in b.graph.nodes_with_op("const"))
    b.output(y=y)
    out = gc.evaluate(b.graph, x=np.array([1, 2, 3], np.float32)).outputs["y"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([3.25, 5.25, 7.25], np.float32))
    # a float64 NumPy array is data, not a number: it keeps its dtype, and mixing is an error
    with pytest.raises(gc.DTypeError, match="float32 and float64"):
        x * np.ones(3)


@pytest.mark.parametrize("cmp,ref", [
    (lambda x, y: x > y, np.greater), (lambda x, y: x >= y, np.greater_equal),
    (lambda x, y: x < y, np.less), (lambda x, y: x <= y, np.less_equal),
    (gc.eq, np.equal), (gc.ne, np.not_equal),
])
def test_comparisons_give_bool_masks(cmp, ref):
    b = gc.Builder()
    x, y = b.input("x", (4,)), b.input("y", (4,))
    m = cmp(x, y)
    assert m.dtype == "bool" and m.shape == (4,)
    b.output(m=m, masked=m * x)  # a mask is usable in arithmetic as 0/1
    xa, ya = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0])
    out = gc.evaluate(b.graph, x=xa, y=ya).outputs
    assert out["m"].dtype == np.bool_
    np.testing.assert_array_equal(out["m"], ref(xa, ya))
    np.testing.assert_array_equal(out["masked"], np.where(ref(xa, ya), xa, 0.0))


def test_comparison_with_python_number_and_where():
    def f(x):
        pos = x > 0
        return gc.where(pos, x, 0.1 * x)
    x = np.array([-2.0, -0.5, 0.0, 1.5])
    np.testing.assert_allclose(run1(f, x), np.where(x > 0, x, 0.1 * x))
    # a mask times a value is differentiable in the value (the mask carries no gradient)
    gg = gc.grad(gc.trace(lambda x: gc.sum((x > 0) * x * x), (4,)))
    np.testing.assert_allclose(gc.evaluate(gg, x=x).grad("x"), np.where(x > 0, 2 * x, 0.0))


def test_where_with_constant_branches():
    def f(x):
        return gc.where(x < 1.0, 5.0, x)
    x = np.array([0.0, 2.0])
    np.testing.assert_array_equal(run1(f, x), [5.0, 2.0])


def test_inputs_params_consts():
    b = gc.Builder("net")
    x = b.input("x", ("N", 2))
    w = b.param("w", (2, 3))
    c = b.const([1.0, 2.0, 3.0], name="c")
    assert (x.op, w.op, c.op) == ("input", "param", "const")
    assert (x.shape, w.shape, c.shape) == (("N", 2), (2, 3), (3,))
    g = b.output(out=x @ w + c)
    assert g is b.graph
    xa, wa = RNG.standard_normal((5, 2)), RNG.standard_normal((2, 3))
    np.testing.assert_allclose(gc.evaluate(g, x=xa, w=wa).outputs["out"], xa @ wa + [1.0, 2.0, 3.0])


def test_trace_specs_input_param_and_tuple():
    def f(x, w, b):
        return x @ w + b
    g = gc.trace(f, ("N", 2), gc.Param((2, 3)), b=gc.Param((3,), "float64"))
    assert [g.name_of(n) for n in g.inputs] == ["x"]
    assert [g.name_of(n) for n in g.params] == ["w", "b"]
    assert g.name == "f"


def test_trace_names_nodes_after_locals():
    def layer(x, w, b):
        pre = x @ w
        z = pre + b
        act = gc.tanh(z)
        return act
    g = gc.trace(layer, ("N", 2), gc.Param((2, 3)), gc.Param((3,)))
    ops = {g.name_of(n): g.op(n) for n in g.nx.nodes}
    assert ops == {"x": "input", "w": "param", "b": "param", "pre": "matmul", "z": "add", "act": "tanh"}
    assert list(g.outputs) == ["act"]


def test_trace_keeps_explicit_names_and_dict_outputs():
    def f(x):
        y = gc.exp(x, name="expx")
        s = gc.sum(y)
        return {"total": s, "y": y}
    g = gc.trace(f, (3,))
    assert g.find("expx") is not None and g.outputs["y"] == g.find("expx")
    assert g.outputs["total"] == g.find("s")
    with pytest.raises(gc.GraphcError):
        g.find("y")  # the local did not override the explicit name


def test_trace_tuple_outputs():
    g = gc.trace(lambda x: (gc.sum(x), gc.max(x)), (3,))
    out = gc.evaluate(g, x=np.array([1.0, 5.0, 2.0])).outputs
    assert sorted(float(v) for v in out.values()) == [5.0, 8.0]


def test_symbolic_batch_dim():
    def f(x, w):
        h = x @ w
        m = gc.mean(h, axis=0)
        return m
    g = gc.trace(f, ("N", 3), gc.Param((3, 2)))
    assert g.shape(g.find("h")) == ("N", 2)
    assert g.shape(g.find("m")) == (2,)
    w = RNG.standard_normal((3, 2))
    for n in (1, 4, 9):
        x = RNG.standard_normal((n, 3))
        np.testing.assert_allclose(gc.evaluate(g, x=x, w=w).outputs["m"], (x @ w).mean(axis=0), rtol=1e-14)
    # mean over a symbolic axis divides by a count read at run time
    assert g.nodes_with_op("count")


def test_mean_over_concrete_axis_uses_exact_constant():
    g = gc.trace(lambda x: gc.mean(x, axis=1), ("N", 4))
    assert not g.nodes_with_op("count")
    x = RNG.standard_normal((3, 4))
    (out,) = gc.evaluate(g, x=x).outputs.values()
    np.testing.assert_allclose(out, x.mean(axis=1), rtol=1e-15)


def test_truth_value_raises():
    x = gc.Builder().input("x", ())
    with pytest.raises(gc.GraphcError, match="no truth value"):
        bool(x)
    with pytest.raises(gc.GraphcError, match="no truth value"):
        if x > 0:  # noqa: SIM108
            pass


@pytest.mark.parametrize("sa,sb", [((3,), (3, 4)), ((3, 4), (4,)), ((3,), (3,)), ((2, 3), (3, 4))])
def test_matmul_1d_like_numpy(sa, sb):
    a, b = RNG.standard_normal(sa), RNG.standard_normal(sb)
    g = gc.trace(lambda a, b: a @ b, sa, sb)
    (node,) = g.outputs.values()
    assert g.shape(node) == np.matmul(a, b).shape
    (out,) = gc.evaluate(g, a=a, b=b).outputs.values()
    np.testing.assert_allclose(out, a @ b, rtol=1e-14)
    # the gradient of a 1-D operand keeps its 1-D shape
    gg = gc.grad(gc.trace(lambda a, b: gc.sum(a @ b), sa, sb))
    ev = gc.evaluate(gg, a=a, b=b)
    ga, gb = ev.grad("a"), ev.grad("b")
    ones = np.ones(np.matmul(a, b).shape)
    # d sum(a @ b) / da = ones @ b.T (with 1-D shapes handled as NumPy does)
    if len(sa) == 1 and len(sb) == 1:
        ref_a, ref_b = b, a
    elif len(sa) == 1:
        ref_a, ref_b = b @ ones, np.outer(a, ones)
    elif len(sb) == 1:
        ref_a, ref_b = np.outer(ones, b), a.T @ ones
    else:
        ref_a, ref_b = ones @ b.T, a.T @ ones
    np.testing.assert_allclose(ga, ref_a, rtol=1e-14)
    np.testing.assert_allclose(gb, ref_b, rtol=1e-14)


def test_value_methods_and_properties():
    def f(x):
        return {"s": x.sum(axis=0), "m": x.mean(axis=1, keepdims=True), "mx": x.max(),
                "t": x.T, "r": x.reshape(3, 2), "r2": x.reshape((6,))}
    g = gc.trace(f, (2, 3))
    out = gc.evaluate(g, x=XA).outputs
    np.testing.assert_allclose(out["s"], XA.sum(0))
    np.testing.assert_allclose(out["m"], XA.mean(1, keepdims=True))
    assert float(out["mx"]) == XA.max()
    np.testing.assert_array_equal(out["t"], XA.T)
    np.testing.assert_array_equal(out["r"], XA.reshape(3, 2))
    np.testing.assert_array_equal(out["r2"], XA.reshape(6))
    x = gc.Builder().input("x", (2, 3))
    assert (x.ndim, x.shape, x.dtype, x.name, x.op) == (2, (2, 3), "float64", "x", "input")
    assert "x:f64[2,3] = input" in repr(x)


def test_nn_functions_against_numpy():
    z = RNG.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])

    def f(z, y):
        return {"lse": gc.logsumexp(z), "lsm": gc.log_softmax(z), "ce": gc.softmax_cross_entropy(z, y),
                "oh": gc.one_hot(y, 3), "ga": gc.gather(z, y)}
    g = gc.trace(f, (4, 3), gc.Input((4,), "int64"))
    out = gc.evaluate(g, z=z, y=labels).outputs
    lse = np.log(np.exp(z).sum(1))
    np.testing.assert_allclose(out["lse"], lse, rtol=1e-14)
    np.testing.assert_allclose(out["lsm"], z - lse[:, None], rtol=1e-14)
    np.testing.assert_allclose(out["ce"], lse - z[np.arange(4), labels], rtol=1e-14)
    np.testing.assert_array_equal(out["oh"], np.eye(3)[labels])
    np.testing.assert_array_equal(out["ga"], z[np.arange(4), labels])


def test_stable_ops_at_extreme_inputs():
    x = np.array([-1000.0, 0.0, 1000.0])
    g = gc.trace(lambda x: {"sm": gc.softmax(x), "sig": gc.sigmoid(x), "sp": gc.softplus(x), "lse": gc.logsumexp(x)}, (3,))
    out = gc.evaluate(g, x=x, check_finite=True).outputs
    np.testing.assert_allclose(out["sm"], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out["sig"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out["sp"], [0.0, np.log(2.0), 1000.0])
    np.testing.assert_allclose(out["lse"], 1000.0)


def test_cast_and_broadcast_helpers():
    b = gc.Builder()
    x = b.input("x", (3,))
    assert gc.cast(x, "float64") is x
    assert gc.broadcast_to(x, (3,)) is x
    y = gc.broadcast_to(x, (2, 3))
    assert y.shape == (2, 3)
    assert gc.unbroadcast(y, (3,)).shape == (3,)
    assert gc.cast(x, "float32").dtype == "float32"


# ----- trace: one spec per parameter (issue 12) ----------------------------------------
def _chain(x, *Ws):
    h = x
    for W in Ws:
        h = h @ W
    return gc.sum(h)


def test_trace_star_args_get_one_spec_each():
    g = gc.trace(_chain, (2, 3), *[gc.Param((3, 3))] * 6)
    assert [g.name_of(n) for n in g.params] == [f"Ws_{i}" for i in range(6)]
    assert len(g.nodes_with_op("matmul")) == 6  # six layers, not one
    x, Ws = RNG.standard_normal((2, 3)), [RNG.standard_normal((3, 3)) for _ in range(6)]
    want = x
    for W in Ws:
        want = want @ W
    got = gc.evaluate(g, x=x, **{f"Ws_{i}": W for i, W in enumerate(Ws)}).outputs
    np.testing.assert_allclose(next(iter(got.values())), want.sum(), rtol=1e-13)


def test_trace_star_args_may_be_empty_and_keyword_only_params_are_bound():
    g = gc.trace(_chain, (2, 3))
    assert not g.params and not g.nodes_with_op("matmul")

    def scaled(x, *, k):
        return x * k
    g = gc.trace(scaled, (3,), k=())
    (out,) = gc.evaluate(g, x=np.ones(3), k=2.0).outputs.values()
    np.testing.assert_allclose(out, [2.0] * 3)


@pytest.mark.parametrize("specs,kw,match", [
    (((), ()), {}, r"trace\(two\): the function takes 1 parameter\(s\) \(a\) but got 2 positional spec\(s\)"),
    ((), {}, r"trace\(two\): the function takes 1 parameter\(s\) but got 0 spec\(s\); no spec for parameter\(s\) a"),
    (((),), {"b": ()}, r"trace\(two\): no parameter 'b'"),
    (((),), {"a": ()}, r"trace\(two\): parameter 'a' has a positional and a keyword spec"),
    ((3,), {}, r"parameter 'a' has spec 3"),
])
def test_trace_refuses_a_spec_count_that_does_not_match(specs, kw, match):
    def two(a):
        return a * 2.0
    with pytest.raises(gc.GraphcError, match=match):
        gc.trace(two, *specs, **kw)


# ----- axes, perms and -1, normalized when built (issue 12) --------------------------------
def test_negative_perm_and_reshape_minus_one_are_normalized():
    x = RNG.standard_normal((2, 3, 4))
    g = gc.trace(lambda x: {"t": gc.transpose(x, (-1, 0, -2)), "r": gc.reshape(x, (-1, 4)),
                            "m": x.reshape(2, -1, 2), "s": gc.softmax(x, axis=-2), "u": gc.sum(x, axis=(-1, 0))}, (2, 3, 4))
    attrs = {k: g.node(n)["attrs"] for k, n in g.outputs.items()}
    assert attrs["t"]["perm"] == (2, 0, 1)
    assert attrs["r"]["shape"] == (6, 4) and attrs["m"]["shape"] == (2, 6, 2)
    assert attrs["s"]["axis"] == 1 and attrs["u"]["axes"] == (0, 2)
    out = gc.evaluate(g, x=x).outputs
    np.testing.assert_array_equal(out["t"], np.transpose(x, (-1, 0, -2)))
    np.testing.assert_array_equal(out["r"], x.reshape(-1, 4))
    np.testing.assert_array_equal(out["u"], x.sum(axis=(-1, 0)))


def test_reshape_minus_one_with_a_symbolic_dim():
    g = gc.trace(lambda x: gc.reshape(x, (-1, 2, 3)), ("N", 6))
    assert g.shape(next(iter(g.outputs.values()))) == ("N", 2, 3)


@pytest.mark.parametrize("fn,shape,match", [
    (lambda x: gc.reshape(x, (-1, 5)), (2, 3, 4), r"cannot reshape \(2, 3, 4\) into \(-1, 5\)"),
    (lambda x: gc.reshape(x, (-1, -1)), (2, 3), "more than one -1"),
    (lambda x: gc.reshape(x, (-1, 0)), (2, 0), "ambiguous"),
    (lambda x: gc.reshape(x, (-1,)), ("N", 3), "3\\*N, which is not one dimension"),
    (lambda x: gc.transpose(x, (0, -2)), (2, 3), r"not a permutation"),
    (lambda x: gc.transpose(x, (0, 2)), (2, 3), "out of range for rank 2"),
    (lambda x: gc.max(x, axis=1), (3, 0), "size 0, has no value"),
])
def test_bad_axes_give_one_clear_shape_error(fn, shape, match):
    with pytest.raises(gc.ShapeError, match=match) as info:
        gc.trace(fn, shape)
    assert "node '" in str(info.value)


# ----- empty axes and 0-d operands (issue 12) -------------------------------------------------
def test_mean_over_an_empty_axis_is_nan_as_numpy():
    x = np.zeros((3, 0))
    g = gc.trace(lambda x: {"m": gc.mean(x, axis=1), "k": gc.mean(x, axis=0), "a": gc.mean(x)}, (3, 0))
    out = gc.evaluate(g, x=x).outputs
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = {"m": x.mean(axis=1), "k": x.mean(axis=0), "a": x.mean()}
    for k in want:
        np.testing.assert_array_equal(out[k], want[k])
    gg = gc.grad(gc.trace(lambda x: gc.sum(gc.mean(x, axis=1)), (3, 0)))
    assert gc.evaluate(gg, x=x).grad("x").shape == (3, 0)
    n = gc.trace(lambda x: gc.mean(x, axis=0), ("N", 2))  # a symbolic batch of 0: 0 / 0
    (out,) = gc.evaluate(n, x=np.zeros((0, 2))).outputs.values()
    np.testing.assert_array_equal(out, [np.nan, np.nan])


def test_softmax_family_and_reductions_of_a_0d_value_as_pytorch():
    torch = pytest.importorskip("torch")
    g = gc.trace(lambda s: {"sm": gc.softmax(s), "ls": gc.log_softmax(s, axis=0), "lse": gc.logsumexp(s),
                            "sum": gc.sum(s, axis=-1), "max": gc.max(s, axis=0), "mean": gc.mean(s, axis=-1)}, ())
    out = gc.evaluate(g, s=1.5).outputs
    t = torch.tensor(1.5, dtype=torch.float64)
    want = {"sm": t.softmax(-1), "ls": t.log_softmax(0), "lse": t.logsumexp(-1), "sum": t.sum(-1),
            "max": t.amax(0), "mean": t.mean(-1)}
    for k, v in want.items():
        assert out[k].shape == () and float(out[k]) == pytest.approx(float(v), rel=1e-15), k
