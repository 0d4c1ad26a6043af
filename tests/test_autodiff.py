"""Reverse-mode AD that returns graph.  Expected gradients are written out by hand."""
import numpy as np
import pytest

import graphc as gc
from graphc.check.gradcheck import gradcheck

RNG = np.random.default_rng(11)


def test_fan_out_contributions_are_summed():
    def f(x):
        u = x * x          # x used twice here
        v = gc.exp(x)      # and once more here
        return gc.sum(u + v * x)  # and once more here: four uses
    gg = gc.grad(gc.trace(f, (5,)))
    x = RNG.standard_normal(5)
    ev = gc.evaluate(gg, x=x)
    # d/dx (x^2 + x e^x) = 2x + e^x + x e^x
    np.testing.assert_allclose(ev.grad("x"), 2 * x + np.exp(x) + x * np.exp(x), rtol=1e-14)
    x_node = gg.find("x")
    uses = [k for k in gg.edge_grads if k[0] == x_node]
    assert len(uses) == 4  # both edges of x*x, exp, and v*x
    parts = sum(ev.values[gg.edge_grads[k]["downstream"]] for k in uses)
    np.testing.assert_allclose(parts, ev.grad("x"), rtol=1e-14)


def test_fan_out_nodes_are_named_by_path():
    def f(x, y):
        z = x * y
        w = z + y
        return w
    gg = gc.grad(gc.trace(f, (), ()))
    names = {gg.name_of(n) for n in gg.nx.nodes}
    assert {"g_y", "g_x", "g_w"} <= names
    assert any(n.startswith("g_y_via_") for n in names)


@pytest.mark.parametrize("bias_shape", [(3,), (1, 3), ()], ids=["(3,)", "(1,3)", "()"])
def test_bias_gradient_is_unbroadcast(bias_shape):
    def f(x, b):
        z = x + b
        return gc.sum(z * z)
    gg = gc.grad(gc.trace(f, ("N", 3), gc.Param(bias_shape)))
    x, b = RNG.standard_normal((4, 3)), RNG.standard_normal(bias_shape)
    ev = gc.evaluate(gg, x=x, b=b)
    g_b = ev.grad("b")
    # dL/db = sum over the broadcast axes of 2 (x + b)
    full = 2 * (x + b)
    ref = {(3,): full.sum(0), (1, 3): full.sum(0, keepdims=True), (): full.sum()}[bias_shape]
    assert g_b.shape == bias_shape
    np.testing.assert_allclose(g_b, ref, rtol=1e-14)
    assert gg.shape(gg.grads["b"]) == bias_shape


def test_linear_layer_gradients_match_hand_formulas():
    def f(x, W, b, t):
        y = x @ W + b
        d = y - t
        return 0.5 * gc.sum(d * d)
    gg = gc.grad(gc.trace(f, ("N", 4), gc.Param((4, 2)), gc.Param((2,)), ("N", 2)))
    x, W, b, t = RNG.standard_normal((6, 4)), RNG.standard_normal((4, 2)), RNG.standard_normal(2), RNG.standard_normal((6, 2))
    ev = gc.evaluate(gg, x=x, W=W, b=b, t=t)
    d = x @ W + b - t
    np.testing.assert_allclose(ev.grad("W"), x.T @ d, rtol=1e-13)
    np.testing.assert_allclose(ev.grad("b"), d.sum(0), rtol=1e-13)
    assert set(gg.grads) == {"W", "b"}


def test_result_holds_forward_and_backward_nodes():
    def f(x, w):
        h = gc.tanh(x @ w)
        return gc.sum(h)
    g = gc.trace(f, ("N", 2), gc.Param((2, 3)))
    before = g.to_text()
    gg = gc.grad(g)
    assert g.to_text() == before  # the input graph is not modified
    phases = {gg.name_of(n): gg.node(n)["phase"] for n in gg.nx.nodes}
    for n in g.nx.nodes:
        assert phases[g.name_of(n)] == "forward"
    backward = {k for k, v in phases.items() if v == "backward"}
    assert backward and "g_w" in backward
    assert gg.node(gg.grads["w"])["phase"] == "backward"
    # the forward output and the gradient output are both outputs
    assert list(gg.outputs) == [*g.outputs, "g_w"]
    # every backward node depends only on nodes of the same graph: it emits and runs
    x, w = RNG.standard_normal((3, 2)), RNG.standard_normal((2, 3))
    out = gc.compile(gg)(x=x, w=w)
    h = np.tanh(x @ w)
    np.testing.assert_allclose(out["g_w"], x.T @ (1 - h * h), rtol=1e-13)


def cubic(x):
    y = x * x * x
    return y


def test_differentiate_twice_cubic():
    gg = gc.grad(gc.trace(cubic, ()))
    assert set(gg.outputs) >= {"g_x"}
    ggg = gc.grad(gg, loss="g_x", wrt=["x"])
    for x in (-1.5, 0.5, 2.0):
        ev = gc.evaluate(ggg, x=x)
        assert list(ev.outputs) == ["y", "g_x", "g_x_2"]
        assert float(ev.outputs["y"]) == x ** 3
        assert float(ev.outputs["g_x"]) == pytest.approx(3 * x * x, rel=1e-15)   # first derivative kept
        assert float(ev.outputs["g_x_2"]) == pytest.approx(6 * x, rel=1e-15)    # second derivative
        assert float(ev.grad("x")) == pytest.approx(6 * x, rel=1e-15)           # grads holds the newest


def test_second_derivative_of_x_tanh_x_numeric():
    gg = gc.grad(gc.trace(lambda x: x * gc.tanh(x), ()))
    ggg = gc.grad(gg, loss="g_x", wrt=["x"])
    compiled = gc.compile(ggg)
    for x in (-2.0, -0.3, 0.0, 1.1):
        sech2 = 1.0 / np.cosh(x) ** 2
        # d/dx = tanh x + x sech^2 x;  d2/dx2 = 2 sech^2 x - 2 x tanh x sech^2 x
        out = compiled(x=x)
        assert float(out["g_x"]) == pytest.approx(np.tanh(x) + x * sech2, rel=1e-14, abs=1e-15)
        second = 2 * sech2 - 2 * x * np.tanh(x) * sech2
        assert float(out["g_x_2"]) == pytest.approx(second, rel=1e-13, abs=1e-15)
        assert float(gc.evaluate(ggg, x=x).grad("x")) == pytest.approx(second, rel=1e-13, abs=1e-15)


def test_second_order_through_a_vector_graph_passes_gradcheck():
    gg = gc.grad(gc.trace(lambda x: gc.sum(gc.sigmoid(x) * x), (4,)))
    # Hessian-vector style: the gradient graph's own output, contracted, differentiated again.
    res = gradcheck(gg, {"x": RNG.standard_normal(4)}, loss="g_x", wrt=["x"])
    assert res, res.max_error


def test_wrt_defaults_to_params():
    g = gc.trace(lambda x, w: gc.sum(x * w), (3,), gc.Param((3,)))
    assert set(gc.grad(g).grads) == {"w"}


def test_wrt_defaults_to_float_inputs_without_params():
    g = gc.trace(lambda x, y, i: gc.sum(x * y) + gc.sum(gc.gather(gc.reshape(x, (1, 3)), i)),
                 (3,), (3,), gc.Input((1,), "int64"))
    gg = gc.grad(g)
    assert set(gg.grads) == {"x", "y"}  # the int64 input is skipped
    x, y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    ev = gc.evaluate(gg, x=x, y=y, i=np.array([2]))
    np.testing.assert_array_equal(ev.grad("x"), y + [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ev.grad("y"), x)


def test_wrt_with_no_path_gets_zeros():
    g = gc.trace(lambda x, w, unused: gc.sum(x * w), ("N", 3), gc.Param((3,)), gc.Param(("N", 2)))
    gg = gc.grad(g, wrt=["w", "unused"])
    ev = gc.evaluate(gg, x=np.ones((4, 3)), w=np.ones(3), unused=np.ones((4, 2)))
    np.testing.assert_array_equal(ev.grad("unused"), np.zeros((4, 2)))
    np.testing.assert_array_equal(ev.grad("w"), [4.0, 4.0, 4.0])
    assert "g_unused" in gg.outputs
    assert gg.validate() is gg  # a constant gradient output is allowed


def test_wrt_intermediate_node():
    def f(x):
        h = 2.0 * x
        return gc.sum(h * h * h)
    gg = gc.grad(gc.trace(f, (3,)), wrt=["h", "x"])
    x = np.array([1.0, -1.0, 0.5])
    ev = gc.evaluate(gg, x=x)
    np.testing.assert_allclose(ev.grad("h"), 3 * (2 * x) ** 2, rtol=1e-15)    # d/dh h^3
    np.testing.assert_allclose(ev.grad("x"), 2 * 3 * (2 * x) ** 2, rtol=1e-15)  # chain rule through h


def test_seed_gives_a_vjp_of_a_non_scalar_output():
    b = gc.Builder()
    x = b.input("x", (3,))
    b.input("v", (3,))
    b.output(y=gc.exp(x) * x)
    gg = gc.grad(b.graph, loss="y", wrt=["x"], seed="v")
    x, v = RNG.standard_normal(3), RNG.standard_normal(3)
    ev = gc.evaluate(gg, x=x, v=v)
    # J is diagonal with entries e^x (1 + x); v^T J:
    np.testing.assert_allclose(ev.grad("x"), v * np.exp(x) * (1 + x), rtol=1e-14)


def test_softmax_vjp_matches_hand_jacobian():
    gg = gc.grad(gc.trace(lambda z, v: gc.sum(gc.softmax(z) * v), (4,), (4,)), wrt=["z"])
    z, v = RNG.standard_normal(4), RNG.standard_normal(4)
    p = np.exp(z) / np.exp(z).sum()
    J = np.diag(p) - np.outer(p, p)  # the lecture's softmax Jacobian
    np.testing.assert_allclose(gc.evaluate(gg, z=z, v=v).grad("z"), J.T @ v, rtol=1e-13)


def test_max_ties_share_the_gradient():
    gg = gc.grad(gc.trace(lambda x: gc.max(x), (4,)))
    np.testing.assert_array_equal(gc.evaluate(gg, x=np.array([1.0, 3.0, 3.0, 0.0])).grad("x"), [0.0, 0.5, 0.5, 0.0])
    gg = gc.grad(gc.trace(lambda a, b: gc.sum(gc.maximum(a, b)), (3,), (3,)))
    ev = gc.evaluate(gg, a=np.array([1.0, 2.0, 3.0]), b=np.array([2.0, 2.0, 1.0]))
    np.testing.assert_array_equal(ev.grad("a"), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ev.grad("b"), [1.0, 0.5, 0.0])


def test_cross_entropy_gradient_is_p_minus_onehot_over_n():
    gg = gc.grad(gc.trace(lambda z, y: gc.cross_entropy(z, y), ("N", 3), gc.Input(("N",), "int64")), wrt=["z"])
    z, y = RNG.standard_normal((5, 3)), np.array([0, 1, 2, 1, 0])
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(gc.evaluate(gg, z=z, y=y).grad("z"), (p - np.eye(3)[y]) / 5, rtol=1e-13)


def test_optimize_flag_does_not_change_values():
    def f(x, w):
        h = gc.exp(x @ w)
        return gc.sum(h + h) + gc.sum(gc.exp(x @ w))
    g = gc.trace(f, (2, 3), gc.Param((3, 2)))
    raw, opt = gc.grad(g, optimize=False), gc.grad(g)
    assert len(opt) < len(raw)
    x, w = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 2))
    np.testing.assert_allclose(gc.evaluate(opt, x=x, w=w).grad("w"), gc.evaluate(raw, x=x, w=w).grad("w"), rtol=1e-14)
    np.testing.assert_allclose(gc.evaluate(opt, x=x, w=w).grad("w"), 3 * x.T @ np.exp(x @ w), rtol=1e-13)


def test_x_times_x_edge_records_by_position():
    gg = gc.grad(gc.trace(lambda x: x * x, ()))
    ev = gc.evaluate(gg, x=3.0)
    (sq,) = {d for (s, d, p) in gg.edge_grads if gg.name_of(s) == "x"}
    assert gg.op(sq) == "mul"
    with pytest.raises(KeyError, match="pass pos="):
        ev.edge("x", gg.name_of(sq))
    for pos in (0, 1):
        rec = ev.edge("x", gg.name_of(sq), pos=pos)
        assert float(rec["local"]) == 3.0 and float(rec["downstream"]) == 3.0  # d(x*x)/d(each x) = the other x
    assert float(ev.grad("x")) == 6.0


def test_float32_graph_keeps_float32_gradients():
    gg = gc.grad(gc.trace(lambda x, w: gc.sum(gc.tanh(x * w) * 0.5), gc.Input((3,), "float32"), gc.Param((3,), "float32")))
    assert all(gg.dtype(n) in ("float32", "bool") for n in gg.nx.nodes)
    x, w = np.array([1, 2, 3], np.float32), np.array([0.5, -0.5, 0.1], np.float32)
    gw = gc.evaluate(gg, x=x, w=w).grad("w")
    assert gw.dtype == np.float32
    t = np.tanh(x.astype(np.float64) * w)
    np.testing.assert_allclose(gw, 0.5 * (1 - t * t) * x, rtol=1e-6)
