"""The worked examples from the lecture notes (seeds 000, 001, 003, 004).

Every expected number here comes from the lecture text or from a NumPy
reference written out by hand in this file, never from graphc itself.
"""
import numpy as np
import pytest

import graphc as gc
from graphc.check.gradcheck import gradcheck
from tests.conftest import lecture


# ----- seed 001: f = (x1 + x2) * x3 - x4 at (5, 4, 3, 2) -------------------------------
LECTURE_POINT = dict(x1=5.0, x2=4.0, x3=3.0, x4=2.0)


@pytest.fixture
def lecture_eval():
    g = gc.trace(lecture, (), (), (), ())
    return gc.evaluate(gc.grad(g), LECTURE_POINT)


def test_lecture_forward_values_and_names():
    g = gc.trace(lecture, (), (), (), ())
    ev = gc.evaluate(g, LECTURE_POINT)
    # a = 5 + 4 = 9, b = 9 * 3 = 27, f = 27 - 2 = 25
    assert ev["a"] == 9.0
    assert ev["b"] == 27.0
    assert ev["f"] == 25.0
    assert ev.outputs == {"f": 25.0}
    assert {g.op(g.find(n)) for n in "abf"} == {"add", "mul", "sub"}


def test_lecture_gradients(lecture_eval):
    # df/dx1 = df/dx2 = x3 = 3, df/dx3 = x1 + x2 = 9, df/dx4 = -1
    assert [float(lecture_eval.grad(x)) for x in ("x1", "x2", "x3", "x4")] == [3.0, 3.0, 9.0, -1.0]
    assert float(lecture_eval.outputs["g_x3"]) == 9.0


# (src, dst, upstream U, local L) exactly as on the lecture slides.
LECTURE_EDGES = [
    ("x4", "f", 1.0, -1.0),
    ("b", "f", 1.0, 1.0),
    ("x3", "b", 1.0, 9.0),   # L = a
    ("a", "b", 1.0, 3.0),    # L = x3
    ("x1", "a", 3.0, 1.0),
    ("x2", "a", 3.0, 1.0),
]


@pytest.mark.parametrize("src,dst,upstream,local", LECTURE_EDGES, ids=[f"{s}->{d}" for s, d, *_ in LECTURE_EDGES])
def test_lecture_every_edge_upstream_local_downstream(lecture_eval, src, dst, upstream, local):
    rec = lecture_eval.edge(src, dst)
    assert set(rec) == {"upstream", "local", "downstream"}
    assert float(rec["upstream"]) == upstream
    assert float(rec["local"]) == local
    assert float(rec["downstream"]) == upstream * local


def test_lecture_has_a_record_for_every_edge():
    gg = gc.grad(gc.trace(lecture, (), (), (), ()))
    names = {(gg.name_of(s), gg.name_of(d)) for s, d, _ in gg.edge_grads}
    assert names == {(s, d) for s, d, *_ in LECTURE_EDGES}


def test_lecture_compiled_matches_hand_values():
    compiled = gc.compile(gc.grad(gc.trace(lecture, (), (), (), ())))
    out = compiled(LECTURE_POINT)
    assert {k: float(v) for k, v in out.items()} == {"f": 25.0, "g_x1": 3.0, "g_x2": 3.0, "g_x3": 9.0, "g_x4": -1.0}


# ----- seed 001: z = x*y, w = z + y, o = relu(w) at x=3, y=2 ------------------------------
def autodiff_example(x, y):
    z = x * y
    w = z + y
    o = gc.relu(w)
    return o


def test_autodiff_lecture_example():
    gg = gc.grad(gc.trace(autodiff_example, (), ()))
    ev = gc.evaluate(gg, x=3.0, y=2.0)
    assert float(ev.outputs["o"]) == 8.0          # relu(3*2 + 2)
    assert float(ev.grad("x")) == 2.0             # y (ReLU active)
    assert float(ev.grad("y")) == 4.0             # x + 1
    # y fans out to z and w: its gradient is the sum of both contributions.
    via_z = ev.edge("y", "z")["downstream"]       # do/dz * dz/dy = 1 * x = 3
    via_w = ev.edge("y", "w")["downstream"]       # do/dw * dw/dy = 1 * 1 = 1
    assert (float(via_z), float(via_w)) == (3.0, 1.0)
    assert float(via_z + via_w) == float(ev.grad("y"))
    # The total is an add node over the two contributions.
    total = gg.grads["y"]
    assert gg.op(total) == "add"
    assert sorted(gg.operands(total)) == sorted(gg.edge_grads[k]["downstream"]
                                               for k in gg.edge_grads if gg.name_of(k[0]) == "y")


def test_autodiff_lecture_example_relu_inactive():
    # w = 3*(-2) + (-2) = -8 < 0: ReLU blocks every gradient.
    ev = gc.evaluate(gc.grad(gc.trace(autodiff_example, (), ())), x=3.0, y=-2.0)
    assert float(ev.outputs["o"]) == 0.0
    assert float(ev.grad("x")) == 0.0 and float(ev.grad("y")) == 0.0


# ----- seed 000: softmax([1, 2, 3]) = [0.09, 0.24, 0.67] ---------------------------------
def test_softmax_lecture_values():
    g = gc.trace(lambda x: gc.softmax(x), (3,), name="softmax_lecture")
    x = np.array([1.0, 2.0, 3.0])
    expected = [0.09, 0.24, 0.67]
    interpreted = gc.evaluate(g, x=x).outputs
    (out_name,) = interpreted
    assert np.round(interpreted[out_name], 2).tolist() == expected
    compiled = gc.compile(g)(x=x)
    assert np.round(compiled[out_name], 2).tolist() == expected
    # and against the textbook formula, to full precision
    ref = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(interpreted[out_name], ref, rtol=1e-15)
    np.testing.assert_allclose(compiled[out_name], ref, rtol=1e-15)


# ----- seed 003: 3-layer sigmoid network with BCE; dl/dz3 = a3 - y ------------------------
def sigmoid_net_explicit_bce(x, y, W1, b1, W2, b2, W3, b3):
    z1 = x @ W1 + b1
    a1 = gc.sigmoid(z1)
    z2 = a1 @ W2 + b2
    a2 = gc.sigmoid(z2)
    z3 = a2 @ W3 + b3
    a3 = gc.sigmoid(z3)
    l = gc.sum(-(y * gc.log(a3) + (1.0 - y) * gc.log(1.0 - a3)))
    return {"l": l, "a3": a3}


def sigmoid_net_bce_logits(x, y, W1, b1, W2, b2, W3, b3):
    z1 = x @ W1 + b1
    a1 = gc.sigmoid(z1)
    z2 = a1 @ W2 + b2
    a2 = gc.sigmoid(z2)
    z3 = a2 @ W3 + b3
    a3 = gc.sigmoid(z3)
    l = gc.sum(gc.bce_with_logits(z3, y))
    return {"l": l, "a3": a3}


P = gc.Param
SIGMOID_SPECS = (("N", 4), ("N", 1), P((4, 5)), P((5,)), P((5, 3)), P((3,)), P((3, 1)), P((1,)))


def _sigmoid_feeds(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return dict(x=rng.standard_normal((n, 4)), y=(rng.random((n, 1)) > 0.5).astype(np.float64),
                W1=rng.standard_normal((4, 5)), b1=rng.standard_normal(5),
                W2=rng.standard_normal((5, 3)), b2=rng.standard_normal(3),
                W3=rng.standard_normal((3, 1)), b3=rng.standard_normal(1))


def _sigmoid_reference(f):
    """The seed's forward pass and backward equations, by hand in NumPy (rows = samples)."""
    s = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    a1 = s(f["x"] @ f["W1"] + f["b1"])
    a2 = s(a1 @ f["W2"] + f["b2"])
    a3 = s(a2 @ f["W3"] + f["b3"])
    y = f["y"]
    loss = -np.sum(y * np.log(a3) + (1 - y) * np.log(1 - a3))
    dz3 = a3 - y
    dz2 = (dz3 @ f["W3"].T) * a2 * (1 - a2)
    dz1 = (dz2 @ f["W2"].T) * a1 * (1 - a1)
    grads = dict(W3=a2.T @ dz3, b3=dz3.sum(0), W2=a1.T @ dz2, b2=dz2.sum(0), W1=f["x"].T @ dz1, b1=dz1.sum(0))
    return loss, a3, dz3, grads


@pytest.mark.parametrize("net", [sigmoid_net_explicit_bce, sigmoid_net_bce_logits])
def test_seed003_dl_dz3_is_a3_minus_y(net):
    g = gc.trace(net, *SIGMOID_SPECS)
    feeds = _sigmoid_feeds()
    params = ["W1", "b1", "W2", "b2", "W3", "b3"]
    gg = gc.grad(g, loss="l", wrt=["z3", *params])
    ev = gc.evaluate(gg, feeds)
    loss, a3, dz3, grads = _sigmoid_reference(feeds)
    # The lecture's identity, read off the graph: the gradient node of z3 equals a3 - y.
    np.testing.assert_allclose(ev.grad("z3"), ev["a3"] - feeds["y"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ev.grad("z3"), dz3, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ev.outputs["l"], loss, rtol=1e-12)
    np.testing.assert_allclose(ev.outputs["a3"], a3, rtol=1e-12)
    for p in params:
        np.testing.assert_allclose(ev.grad(p), grads[p], rtol=1e-10, atol=1e-13, err_msg=p)


@pytest.mark.parametrize("net", [sigmoid_net_explicit_bce, sigmoid_net_bce_logits])
def test_seed003_gradcheck(net):
    g = gc.trace(net, *SIGMOID_SPECS)
    result = gradcheck(g, _sigmoid_feeds(seed=1), loss="l")
    assert result, f"gradcheck failed, max error {result.max_error}"


# ----- seed 004: 2-layer ReLU net, softmax cross-entropy + L2, spiral data ----------------
N_PER_CLASS, D, K, H, REG = 100, 2, 3, 100, 1e-3


def spiral(rng):
    """The seed's data generator (N points per class, K classes, D = 2)."""
    X = np.zeros((N_PER_CLASS * K, D))
    y = np.zeros(N_PER_CLASS * K, dtype=np.int64)
    for j in range(K):
        ix = range(N_PER_CLASS * j, N_PER_CLASS * (j + 1))
        r = np.linspace(0.0, 1, N_PER_CLASS)
        t = np.linspace(j * 4, (j + 1) * 4, N_PER_CLASS) + rng.standard_normal(N_PER_CLASS) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X, y


def seed004_backprop(X, y, W, b, W2, b2, reg):
    """The seed's hand-written NumPy backprop, line for line (CS231n)."""
    num_examples = X.shape[0]
    hidden_layer = np.maximum(0, np.dot(X, W) + b)
    scores = hidden_layer @ W2 + b2
    exp_scores = np.exp(scores)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    correct_logprobs = -np.log(probs[range(num_examples), y])
    data_loss = np.sum(correct_logprobs) / num_examples
    reg_loss = 0.5 * reg * np.sum(W * W) + 0.5 * reg * np.sum(W2 * W2)
    loss = data_loss + reg_loss
    dscores = probs
    dscores[range(num_examples), y] -= 1
    dscores /= num_examples
    dW2 = hidden_layer.T @ dscores
    db2 = np.sum(dscores, axis=0, keepdims=True)
    dhidden = dscores @ W2.T
    dhidden[hidden_layer <= 0] = 0
    dW = X.T @ dhidden
    db = np.sum(dhidden, axis=0, keepdims=True)
    dW2 += reg * W2
    dW += reg * W
    return loss, {"W1": dW, "b1": db, "W2": dW2, "b2": db2}


def two_layer(X, y, W1, b1, W2, b2):
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    loss = gc.cross_entropy(scores, y) + gc.l2_penalty(W1, W2, strength=REG)
    return loss


@pytest.fixture(scope="module")
def seed004():
    graph = gc.trace(two_layer, ("N", D), gc.Input(("N",), "int64"),
                     P((D, H)), P((1, H)), P((H, K)), P((1, K)))
    rng = np.random.default_rng(4)
    X, y = spiral(rng)
    params = dict(W1=0.01 * rng.standard_normal((D, H)), b1=np.zeros((1, H)),
                  W2=0.01 * rng.standard_normal((H, K)), b2=np.zeros((1, K)))
    # Train a few steps by hand so ReLUs and biases are no longer at their trivial start.
    for _ in range(5):
        _, grads = seed004_backprop(X, y, params["W1"], params["b1"], params["W2"], params["b2"], REG)
        params = {k: params[k] - 1.0 * grads[k] for k in params}
    return graph, gc.grad(graph), X, y, params


def test_seed004_graph_has_symbolic_batch(seed004):
    graph, gg, *_ = seed004
    assert graph.shape(graph.find("X")) == ("N", D)
    assert graph.shape(graph.find("y")) == ("N",)
    assert set(gg.grads) == {"W1", "b1", "W2", "b2"}  # wrt defaults to the params


@pytest.mark.parametrize("batch", [slice(None), slice(20, 87)], ids=["N=300", "N=67"])
def test_seed004_gradients_equal_hand_backprop(seed004, batch):
    _, gg, X, y, params = seed004
    Xb, yb = X[batch], y[batch]
    loss, ref = seed004_backprop(Xb, yb, params["W1"], params["b1"], params["W2"], params["b2"], REG)
    assert 0 < np.mean(np.maximum(0, Xb @ params["W1"] + params["b1"]) > 0) < 1  # some ReLUs off, some on
    feeds = dict(X=Xb, y=yb, **params)
    for backend, out in [("interpreter", gc.evaluate(gg, feeds).outputs), ("python", gc.compile(gg)(feeds))]:
        np.testing.assert_allclose(out["loss"], loss, rtol=1e-12, err_msg=backend)
        for name in ("W1", "b1", "W2", "b2"):
            assert out["g_" + name].shape == params[name].shape
            np.testing.assert_allclose(out["g_" + name], ref[name], rtol=0, atol=1e-12, err_msg=f"{backend} {name}")


def test_seed004_batch_sizes_give_different_losses(seed004):
    """The same compiled graph runs at two batch sizes; each matches its own reference."""
    _, gg, X, y, params = seed004
    compiled = gc.compile(gg)
    losses = []
    for n in (300, 30):
        idx = np.random.default_rng(n).permutation(len(X))[:n]
        out = compiled(X=X[idx], y=y[idx], **params)
        ref_loss, _ = seed004_backprop(X[idx], y[idx], *(params[k] for k in ("W1", "b1", "W2", "b2")), REG)
        np.testing.assert_allclose(out["loss"], ref_loss, rtol=1e-12)
        losses.append(float(out["loss"]))
    assert losses[0] != losses[1]


def test_seed004_gradcheck_small_batch(seed004):
    graph, _, X, y, params = seed004
    # Skip the r = 0 points (X = 0): there a dead unit sits exactly on the ReLU kink.
    result = gradcheck(graph, dict(X=X[1::30], y=y[1::30], **params))
    assert result, result.max_error
