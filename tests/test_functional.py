"""Composite ops (graphc.frontend.functional): each against a NumPy formula written out
here, and its gradient against finite differences."""
import numpy as np
import pytest
from scipy.special import erf

import graphc as gc
from graphc.check.gradcheck import gradcheck

RNG = np.random.default_rng(7)
X = RNG.standard_normal((5, 4))
Y = RNG.standard_normal((5, 4))
T = RNG.uniform(0, 1, (5, 4))
MASK = (RNG.uniform(size=(5, 4)) > 0.3).astype(np.float64)
GAMMA, BETA = RNG.standard_normal(4), RNG.standard_normal(4)
LABELS = RNG.integers(0, 4, 5)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _normalize(x, axis, eps=1e-5):
    mu = x.mean(axis=axis, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=axis, keepdims=True) + eps)


# name -> (graph over the leaf values v, the same thing in plain NumPy)
CASES = {
    "swish": (lambda v: gc.swish(v["x"]), lambda: X * _sigmoid(X)),
    "gelu": (lambda v: gc.gelu(v["x"]), lambda: 0.5 * X * (1 + erf(X / np.sqrt(2)))),
    "maxout": (lambda v: gc.maxout(v["x"], v["y"], 0.5 * v["x"]), lambda: np.maximum(np.maximum(X, Y), 0.5 * X)),
    "dropout": (lambda v: gc.dropout(v["x"], v["mask"], 0.3), lambda: X * MASK / 0.7),
    "layer_norm": (lambda v: gc.layer_norm(v["x"], v["gamma"], v["beta"]), lambda: _normalize(X, -1) * GAMMA + BETA),
    "batch_norm": (lambda v: gc.batch_norm(v["x"], v["gamma"], v["beta"]), lambda: _normalize(X, 0) * GAMMA + BETA),
    "mse": (lambda v: gc.mse(v["x"], v["y"]), lambda: np.mean((X - Y) ** 2)),
    "bce_loss": (lambda v: gc.bce_loss(v["x"], v["t"]),
                 lambda: np.mean(-T * np.log(_sigmoid(X)) - (1 - T) * np.log(1 - _sigmoid(X)))),
    "cross_entropy": (lambda v: gc.cross_entropy(v["x"], v["labels"]),
                      lambda: np.mean(-np.log(np.exp(X)[np.arange(5), LABELS] / np.exp(X).sum(1)))),
    "l2_penalty": (lambda v: gc.l2_penalty(v["x"], v["y"], strength=0.3),
                   lambda: 0.15 * ((X ** 2).sum() + (Y ** 2).sum())),
}


def build(case):
    b = gc.Builder(case)
    v = {name: b.input(name, (5, 4)) for name in ("x", "y", "mask", "t")}
    v |= {"gamma": b.param("gamma", (4,)), "beta": b.param("beta", (4,)),
          "labels": b.input("labels", (5,), "int64")}
    out = CASES[case][0](v)
    w = b.const(RNG.standard_normal(out.shape)) if out.shape else b.const(1.0)
    b.graph.set_output(out.node, "out")
    return b.output(loss=gc.sum(out * w)), w


FEEDS = dict(x=X, y=Y, gamma=GAMMA, beta=BETA, mask=MASK, t=T, labels=LABELS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_value_matches_numpy_formula(case):
    graph, _ = build(case)
    got = gc.evaluate(graph, FEEDS).outputs["out"]
    np.testing.assert_allclose(got, CASES[case][1](), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_matches_finite_differences(case):
    graph, _ = build(case)
    wrt = [w for w in ("x", "y", "gamma", "beta") if w in _used_leaves(graph)]
    result = gradcheck(graph, FEEDS, wrt=wrt, loss="loss")
    assert result.ok, result.max_error


def _used_leaves(graph):
    from graphc.transform.rewrite import live_nodes
    live = live_nodes(graph, [graph.outputs["loss"]])
    return {graph.name_of(n) for n in live}


def test_l2_penalty_gradient_is_weight_decay():
    """The seed-004 fact: d/dW (alpha/2 ||W||^2) = alpha W."""
    b = gc.Builder("l2")
    W = b.param("W", (3, 2))
    graph = gc.grad(b.output(loss=gc.l2_penalty(W, strength=0.25)))
    W0 = RNG.standard_normal((3, 2))
    np.testing.assert_allclose(gc.evaluate(graph, W=W0).outputs["g_W"], 0.25 * W0, rtol=1e-15)


def test_dropout_rejects_bad_probability():
    b = gc.Builder("d")
    x, m = b.input("x", (2,)), b.input("m", (2,))
    with pytest.raises(gc.GraphcError, match=r"\[0, 1\)"):
        gc.dropout(x, m, 1.0)
