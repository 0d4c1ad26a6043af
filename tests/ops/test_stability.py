"""The stable primitives at inputs of +-1000: finite values and gradients that
match the exact result, which SymPy computes here from the textbook formula at
50 significant digits (so e ** 1000 is no obstacle)."""
import numpy as np
import pytest
import sympy

import graphc as gc

LOGITS = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]])
W = np.array([[0.5, -1.25, 2.0], [1.5, -0.75, 0.25]])  # exact in binary and as Rationals
LABELS = np.array([1, 0])
TARGETS = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.25]])


def _softmax(row):
    total = sum(sympy.exp(z) for z in row)
    return [sympy.exp(z) / total for z in row]


def _lse(row):
    return sympy.log(sum(sympy.exp(z) for z in row))


def _sigmoid(z):
    return 1 / (1 + sympy.exp(-z))


# name -> (graph builder over x, exact per-row formula over SymPy symbols)
CASES = {
    "softmax": (lambda x: gc.softmax(x, axis=1), lambda row: _softmax(row)),
    "log_softmax": (lambda x: gc.log_softmax(x, axis=1), lambda row: [sympy.log(p) for p in _softmax(row)]),
    "logsumexp": (lambda x: gc.logsumexp(x, axis=1), lambda row: [_lse(row)]),
    "softmax_cross_entropy": (lambda x: gc.softmax_cross_entropy(x, _labels(x)), None),
    "sigmoid": (gc.sigmoid, lambda row: [_sigmoid(z) for z in row]),
    "softplus": (gc.softplus, lambda row: [sympy.log(1 + sympy.exp(z)) for z in row]),
    "bce_with_logits": (lambda x: gc.bce_with_logits(x, _targets(x)), None),
}


def _labels(x):
    return gc.dsl.constant(x.graph, LABELS, "int64")


def _targets(x):
    return gc.dsl.constant(x.graph, TARGETS, "float64")


def _exact_rows(name, xs):
    """Per-row outputs as SymPy expressions of the symbol matrix xs."""
    if name == "softmax_cross_entropy":
        return [[-sympy.log(_softmax(row)[int(LABELS[r])])] for r, row in enumerate(xs)]
    if name == "bce_with_logits":  # -y log s - (1 - y) log(1 - s), written via log(1 + e^z)
        return [[sympy.log(1 + sympy.exp(z)) - z * sympy.nsimplify(y) for z, y in zip(row, TARGETS[r])]
                for r, row in enumerate(xs)]
    return [CASES[name][1](row) for row in xs]


def exact_value_and_grad(name):
    xs = [[sympy.Symbol(f"x{r}{c}", real=True) for c in range(3)] for r in range(2)]
    rows = _exact_rows(name, xs)
    width = len(rows[0])
    w = [[sympy.nsimplify(W[r, c]) for c in range(width)] for r in range(2)]
    loss = sum(rows[r][c] * w[r][c] for r in range(2) for c in range(width))
    at = {xs[r][c]: sympy.Integer(int(LOGITS[r, c])) for r in range(2) for c in range(3)}
    value = np.array([[float(e.subs(at).evalf(50)) for e in row] for row in rows])
    grad = np.array([[float(sympy.diff(loss, s).subs(at).evalf(50)) for s in row] for row in xs])
    return value, grad


def build(name):
    b = gc.Builder(name)
    x = b.input("x", (2, 3))
    y = CASES[name][0](x).named("y")
    width = y.shape[1] if len(y.shape) == 2 else 1
    w = b.const(W[:, :width].reshape(y.shape))
    return b.output(gc.sum(y * w, name="loss"), y=y)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("backend", ["interpreter", "python"])
def test_stable_at_plus_minus_1000(name, backend):
    gg = gc.grad(build(name), loss="loss", wrt=["x"])
    if backend == "interpreter":
        out = gc.evaluate(gg, {"x": LOGITS}, check_finite=True).outputs
    else:
        out = gc.compile(gg)({"x": LOGITS}, check_finite=True)
    value, grad = exact_value_and_grad(name)
    assert np.all(np.isfinite(out["y"])) and np.all(np.isfinite(out["g_x"]))
    np.testing.assert_allclose(np.reshape(out["y"], value.shape), value, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(out["g_x"], grad, rtol=1e-13, atol=1e-13)


def test_exact_oracle_is_not_trivial():
    """The oracle's own numbers at +-1000 are the textbook limits."""
    value, grad = exact_value_and_grad("softmax")
    np.testing.assert_allclose(value, [[1, 0, 0], [0, 0.5, 0.5]], atol=1e-300)
    value, _ = exact_value_and_grad("softplus")
    np.testing.assert_allclose(value, np.where(LOGITS == 0, np.log(2), np.maximum(LOGITS, 0)), atol=1e-300)
