"""Property test: random DAGs of table ops have AD gradients equal to finite differences.

Hypothesis draws a sequence of ops; each op takes earlier nodes as operands, so
values fan out and recombine.  Ops with a restricted domain are wrapped so any
input is safe (log(x*x + 1), a / (b*b + 1), ...), and the kinked ones (relu,
abs) are left out so central differences are valid.  The oracle is
graphc.check.gradcheck (float64 central differences along random directions).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.check.gradcheck import gradcheck

@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("graphc-cache")))
        yield


# Every shape is built from the dims 3 and 4, so matmul and broadcasting find partners.
INPUT_SHAPES = [(3, 4), (4, 3), (4,), (3,), ()]

UNARY = {
    "neg": lambda a: -a,
    "exp_tanh": lambda a: gc.exp(gc.tanh(a)),
    "tanh": gc.tanh,
    "sigmoid": gc.sigmoid,
    "softplus": gc.softplus,
    "log_sq1": lambda a: gc.log(a * a + 1.0),
    "sqrt_sq1": lambda a: gc.sqrt(a * a + 1.0),
    "erf": gc.erf,
    "square": lambda a: a * a,
    "swish": lambda a: gc.sigmoid(a) * a,
    "elu": gc.elu,  # alpha = 1: continuously differentiable at 0
    "scale": lambda a: 0.5 * a - 0.25,
}

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div_safe": lambda a, b: a / (b * b + 1.0),
    "pow_safe": lambda a, b: (a * a + 1.0) ** gc.tanh(b),
    "bce": lambda a, b: gc.bce_with_logits(a, gc.sigmoid(b)),
}

REDUCE = {
    "sum": lambda a, ax, kd: gc.sum(a, axis=ax, keepdims=kd),
    "mean": lambda a, ax, kd: gc.mean(a, axis=ax, keepdims=kd),
    "max": lambda a, ax, kd: gc.max(a, axis=ax, keepdims=kd),
    "logsumexp": lambda a, ax, kd: gc.logsumexp(a, axis=ax, keepdims=kd),
}

ALONG = {"softmax": gc.softmax, "log_softmax": gc.log_softmax}


def broadcastable(s, t):
    try:
        np.broadcast_shapes(s, t)
        return True
    except ValueError:
        return False


def matmul_ok(s, t):
    if not s or not t:
        return False
    return s[-1] == t[0] and len(s) <= 2 and len(t) <= 2


@st.composite
def random_dag(draw):
    """Returns (graph, feeds): a Builder graph of 1-8 ops over 1-3 inputs, and float64 inputs."""
    b = gc.Builder("random_dag")
    n_inputs = draw(st.integers(1, 3))
    shapes = [draw(st.sampled_from(INPUT_SHAPES)) for _ in range(n_inputs)]
    pool = [b.input(f"x{i}", s) for i, s in enumerate(shapes)]
    for _ in range(draw(st.integers(1, 8))):
        kinds = ["unary", "binary", "reduce", "matmul", "along", "transpose"]
        kind = draw(st.sampled_from(kinds))
        a = draw(st.sampled_from(pool))
        if kind == "unary":
            pool.append(UNARY[draw(st.sampled_from(sorted(UNARY)))](a))
        elif kind == "binary":
            partners = [v for v in pool if broadcastable(a.shape, v.shape)]
            other = draw(st.sampled_from(partners))
            pool.append(BINARY[draw(st.sampled_from(sorted(BINARY)))](a, other))
        elif kind == "matmul":
            partners = [v for v in pool if matmul_ok(a.shape, v.shape)]
            if partners:
                pool.append(a @ draw(st.sampled_from(partners)))
        elif kind == "reduce" and a.ndim:
            axis = draw(st.sampled_from([None, *range(a.ndim), -1]))
            keepdims = draw(st.booleans())
            pool.append(REDUCE[draw(st.sampled_from(sorted(REDUCE)))](a, axis, keepdims))
        elif kind == "along" and a.ndim:
            pool.append(ALONG[draw(st.sampled_from(sorted(ALONG)))](a, axis=draw(st.sampled_from(range(a.ndim)))))
        elif kind == "transpose" and a.ndim == 2:
            pool.append(a.T)
    # The loss mixes the last node with a random earlier one, so fan-out is common.
    last, other = pool[-1], draw(st.sampled_from(pool))
    loss = gc.sum(last * last) * 0.5 + gc.sum(gc.tanh(other))
    b.output(loss=loss)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    feeds = {f"x{i}": rng.uniform(-1.5, 1.5, s) for i, s in enumerate(shapes)}
    return b.graph, feeds


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dag())
def test_random_dag_gradients_match_finite_differences(case):
    graph, feeds = case
    result = gradcheck(graph, feeds, projections=3)
    assert result, (f"max error {result.max_error}\n{graph.to_text()}\n"
                    f"{[(c[1], c[2]) for c in result.checks]}")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dag())
def test_random_dag_compiled_matches_interpreter(case):
    """The emitted NumPy code and the interpreter agree on the gradient graph."""
    graph, feeds = case
    gg = gc.grad(graph, wrt=list(feeds))
    interpreted = gc.evaluate(gg, feeds).outputs
    compiled = gc.compile(gg)(feeds)
    assert list(compiled) == list(interpreted)
    for k in interpreted:
        np.testing.assert_allclose(compiled[k], interpreted[k], rtol=1e-12, atol=1e-14, err_msg=k)
