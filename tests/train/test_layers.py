"""Training layers against independent oracles.

Every forward is compared with a NumPy computation written here from the
textbook formula (never with values printed by the code under test), every
gradient with central finite differences in float64, and the compiled
training step's running statistics with the batch-norm update rule computed
in NumPy.  Numerical checks use the reference interpreter (`gc.evaluate`) or
the "python" backend; the numba backend is used by one test only (its step
graph is the same one test_model.py compiles, so the session's shared numba
cache serves the repeat).
"""
import math
import re

import numpy as np
import pytest

import graphc as gc
from graphc import GraphcError
from graphc.train import (ELU, GELU, SGD, Activation, BatchNorm, Dense, Dropout, LayerNorm,
                          LeakyReLU, Maxout, Model, ReLU, Residual, Sequential, Sigmoid,
                          Softplus, Swish, Tanh, Trainer)
from graphc.train import layers as L
from graphc.train.layers import walk
from tests.train.finite_diff import central_differences

# --------------------------------------------------------------------------- helpers


def _rng(seed=0):
    return np.random.default_rng(seed)


def _random_params(model, seed=0, positive=("running_var",)):
    """Parameters with every entry random (biases and gamma too), so a test
    would notice a parameter that is ignored or used in the wrong place."""
    rng = _rng(seed)
    out = {}
    for name, spec in model.params.items():
        if name.endswith(positive) or name.endswith("gamma"):
            out[name] = rng.uniform(0.5, 2.0, spec.shape)
        else:
            out[name] = rng.standard_normal(spec.shape)
    return out


def _dummy_y(model, n):
    graph = model.graph(False)
    attrs = graph.node(graph.find("y"))["attrs"]
    shape = tuple(n if d == "N" else d for d in attrs["shape"])
    return np.zeros(shape, dtype=attrs["dtype"])


def _forward(model, params, X, training=False, y=None, **extra):
    """(output, loss) of the model's train or eval graph by the reference interpreter."""
    y = _dummy_y(model, len(X)) if y is None else y
    out = gc.evaluate(model.graph(training), {"X": X, "y": y, **params, **extra}).outputs
    return out["output"], float(out["loss"])


def _loss_fn(model, feeds, training):
    graph = model.graph(training)
    return lambda params: float(gc.evaluate(graph, {**feeds, **params}).outputs["loss"])


def _analytic_grads(model, feeds, params, names, training):
    gg = gc.grad(model.graph(training), loss="loss", wrt=names)
    ev = gc.evaluate(gg, {**feeds, **params})
    return {name: ev.grad(name) for name in names}


def _check_grads(model, feeds, params, training=False, rtol=1e-6, atol=1e-8):
    names = [n for n, s in model.params.items() if s.trainable]
    analytic = _analytic_grads(model, feeds, params, names, training)
    numeric = central_differences(_loss_fn(model, feeds, training), params, names)
    for name in names:
        np.testing.assert_allclose(analytic[name], numeric[name], rtol=rtol, atol=atol, err_msg=name)
    return analytic


def _np_mse(out, t):
    return np.mean((out - t) ** 2)


# --------------------------------------------------------------------------- activations
# NumPy references written from the definitions.  Every entry of
# layers.ACTIVATIONS must have one (test_every_activation_has_a_reference), so a
# new activation is picked up by the parametrized tests below automatically.
_erf = np.vectorize(math.erf)

REFERENCE = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x, alpha=0.01: np.where(x > 0, x, alpha * x),
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, alpha * (np.exp(x) - 1.0)),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),  # exact GELU: x * Phi(x)
    "swish": lambda x: x / (1.0 + np.exp(-x)),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
}

# (name, kwargs): every activation with its defaults, plus non-default alphas
ACT_CASES = [(name, {}) for name in sorted(L.ACTIVATIONS)] + [
    ("leaky_relu", {"alpha": 0.2}), ("elu", {"alpha": 0.5}), ("elu", {"alpha": 2.0})]
ACT_IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in ACT_CASES]

# the convenience constructors: (factory call, activation name, kwargs)
FACTORIES = [
    (Sigmoid, (), "sigmoid", {}), (Tanh, (), "tanh", {}), (ReLU, (), "relu", {}),
    (LeakyReLU, (), "leaky_relu", {"alpha": 0.01}), (LeakyReLU, (0.3,), "leaky_relu", {"alpha": 0.3}),
    (ELU, (), "elu", {"alpha": 1.0}), (ELU, (0.4,), "elu", {"alpha": 0.4}),
    (GELU, (), "gelu", {}), (Swish, (), "swish", {}), (Softplus, (), "softplus", {}),
]

# inputs on both sides of every kink and into the saturating tails, none at 0 exactly
X_ACT = np.concatenate([np.linspace(-8.0, 8.0, 40), [-1e-3, 1e-3, -0.5, 0.5]]).reshape(4, 11)


def test_every_activation_has_a_reference():
    assert set(L.ACTIVATIONS) <= set(REFERENCE), "add a NumPy reference for the new activation"


@pytest.mark.parametrize("name, kwargs", ACT_CASES, ids=ACT_IDS)
def test_activation_forward_matches_numpy(name, kwargs):
    model = Model([Activation(name, **kwargs)], input_shape=(11,), loss="mse")
    assert model.params == {}
    for training in (False, True):
        out, _ = _forward(model, {}, X_ACT, training=training)
        np.testing.assert_allclose(out, REFERENCE[name](X_ACT, **kwargs), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("factory, args, name, kwargs", FACTORIES,
                         ids=[f"{f.__name__}{a if a else ''}" for f, a, _, _ in FACTORIES])
def test_activation_factories(factory, args, name, kwargs):
    layer = factory(*args)
    assert layer.fn_name == name
    model = Model([layer], input_shape=(11,), loss="mse")
    assert layer.name == f"{name}_1"
    out, _ = _forward(model, {}, X_ACT)
    np.testing.assert_allclose(out, REFERENCE[name](X_ACT, **kwargs), rtol=1e-12, atol=1e-14)


def test_named_activation_and_unknown_activation():
    assert Tanh(name="squash").name == "squash"
    with pytest.raises(GraphcError, match=r"unknown activation 'sigmoidd'.*known: .*relu"):
        Activation("sigmoidd")
    with pytest.raises(GraphcError, match="unknown activation"):
        Dense(3, activation="nope")
    with pytest.raises(GraphcError, match="not a layer"):
        Model([Dense(3), 42], input_shape=(2,))


@pytest.mark.parametrize("name, kwargs", ACT_CASES, ids=ACT_IDS)
def test_activation_model_gradcheck(name, kwargs):
    """d loss / d params of Dense(act) -> Dense, by autodiff vs central differences (float64)."""
    model = Model([Dense(4, activation=Activation(name, **kwargs)), Dense(2)], input_shape=(3,), loss="mse")
    rng = _rng(1)
    params = _random_params(model, seed=2)
    feeds = {"X": rng.standard_normal((5, 3)), "y": rng.standard_normal((5, 2))}
    _check_grads(model, feeds, params)


# --------------------------------------------------------------------------- Dense


def test_dense_shapes_names_and_forward():
    model = Model([Dense(5, activation="relu"), Dense(3)], input_shape=(4,), loss="mse")
    specs = model.params
    assert list(specs) == ["dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"]
    assert [specs[k].shape for k in specs] == [(4, 5), (1, 5), (5, 3), (1, 3)]
    assert [specs[k].layer for k in specs] == ["dense_1", "dense_1", "dense_2", "dense_2"]
    assert [specs[k].kind for k in specs] == ["weight", "param", "weight", "param"]
    graph = model.graph(False)
    assert graph.shape(graph.outputs["output"]) == ("N", 3)

    params = _random_params(model)
    X = _rng(3).standard_normal((7, 4))
    h = np.maximum(X @ params["dense_1.W"] + params["dense_1.b"], 0.0)
    expect = h @ params["dense_2.W"] + params["dense_2.b"]
    out, _ = _forward(model, params, X)
    assert out.shape == (7, 3)
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    # one graph serves every batch size (the batch dimension is symbolic)
    out1, _ = _forward(model, params, X[:1])
    np.testing.assert_allclose(out1, expect[:1], rtol=1e-12, atol=1e-12)


def test_dense_activation_keeps_its_settings():
    model = Model([Dense(3, activation=LeakyReLU(0.25))], input_shape=(2,), loss="mse")
    params = _random_params(model)
    X = _rng(4).standard_normal((6, 2)) * 3
    z = X @ params["dense_1.W"] + params["dense_1.b"]
    assert (z < 0).any() and (z > 0).any()
    out, _ = _forward(model, params, X)
    np.testing.assert_allclose(out, np.where(z > 0, z, 0.25 * z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("units", [0, -3, 2.5, "4"])
def test_dense_rejects_bad_units(units):
    with pytest.raises(GraphcError, match="units must be an integer >= 1"):
        Dense(units)


def test_dense_needs_a_matrix_input():
    model = Model([Dense(3)], input_shape=(2, 4), loss="mse")
    with pytest.raises(GraphcError, match=r"dense_1: expects \(batch, features\) input"):
        model.graph(False)


# --------------------------------------------------------------------------- Maxout


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_is_the_max_of_its_pieces(pieces):
    model = Model([Maxout(4, pieces=pieces)], input_shape=(3,), loss="mse")
    names = [f"maxout_1.{p}{k}" for k in range(pieces) for p in ("W", "b")]
    assert sorted(model.params) == sorted(names)
    assert model.count_params() == pieces * (3 * 4 + 4)
    params = _random_params(model, seed=5)
    X = _rng(6).standard_normal((10, 3))
    stack = np.stack([X @ params[f"maxout_1.W{k}"] + params[f"maxout_1.b{k}"] for k in range(pieces)])
    expect = stack.max(axis=0)
    # every piece wins somewhere, so a wrong piece would show
    assert len(np.unique(stack.argmax(axis=0))) == pieces
    out, _ = _forward(model, params, X)
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    _check_grads(model, {"X": X, "y": _rng(7).standard_normal((10, 4))}, params)


def test_maxout_needs_two_pieces():
    with pytest.raises(GraphcError, match="pieces must be an integer >= 2"):
        Maxout(3, pieces=1)


# --------------------------------------------------------------------------- Dropout


def test_dropout_training_graph_has_a_mask_input():
    model = Model([Dense(6), Dropout(0.3)], input_shape=(4,), loss="mse")
    train, evalg = model.graph(True), model.graph(False)
    assert sorted(train.name_of(n) for n in train.inputs) == ["X", "dropout_1.mask", "y"]
    mask = train.find("dropout_1.mask")
    assert train.shape(mask) == ("N", 6) and train.dtype(mask) == "float64"
    assert sorted(evalg.name_of(n) for n in evalg.inputs) == ["X", "y"]
    spec = model.noise["dropout_1.mask"]
    assert spec.keep == pytest.approx(0.7) and spec.shape == ("N", 6)
    assert model.params.keys() == {"dense_1.W", "dense_1.b"}  # no parameters of its own


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_is_inverted_with_a_given_mask(p):
    model = Model([Dropout(p)], input_shape=(5,), loss="mse")
    rng = _rng(8)
    X = rng.standard_normal((6, 5))
    mask = (rng.random((6, 5)) >= p).astype(np.float64)
    assert 0 < mask.sum() < mask.size
    out, _ = _forward(model, {}, X, training=True, **{"dropout_1.mask": mask})
    np.testing.assert_allclose(out, X * mask / (1.0 - p), rtol=1e-14, atol=0)


def test_dropout_preserves_the_mean_over_random_masks():
    """With masks drawn as the training loop draws them, E[output] = x.

    Each output entry is x*B/(1-p), B ~ Bernoulli(1-p): mean x, standard
    deviation |x| sqrt(p/(1-p)).  Averaging R = 20000 draws leaves a standard
    error of |x| sqrt(p/(1-p)/R) = 0.0046|x| for p = 0.3; we allow 5 standard
    errors (a false failure has probability ~1e-6 per entry; the seed is fixed
    anyway).  The fraction of kept units must likewise be 1-p within 5 standard
    errors of a binomial proportion."""
    p, R = 0.3, 20000
    model = Model([Dropout(p)], input_shape=(4,), loss="mse")
    x = np.array([[1.0, -2.0, 0.5, 3.0]])
    X = np.repeat(x, R, axis=0)
    mask = model.noise["dropout_1.mask"].draw(_rng(9), R)
    assert mask.shape == (R, 4) and set(np.unique(mask)) <= {0.0, 1.0}
    keep_se = math.sqrt(p * (1 - p) / mask.size)
    assert abs(mask.mean() - (1 - p)) < 5 * keep_se
    out, _ = _forward(model, {}, X, training=True, **{"dropout_1.mask": mask})
    se = np.abs(x) * math.sqrt(p / (1 - p) / R)
    assert np.all(np.abs(out.mean(axis=0) - x) < 5 * se)


def test_dropout_eval_is_the_identity():
    model = Model([Dense(3), Dropout(0.5)], input_shape=(2,), loss="mse")
    params = _random_params(model)
    X = _rng(10).standard_normal((4, 2))
    out, _ = _forward(model, params, X, training=False)
    np.testing.assert_allclose(out, X @ params["dense_1.W"] + params["dense_1.b"], rtol=1e-12, atol=1e-12)
    only = Model([Dropout(0.5)], input_shape=(2,), loss="mse")
    out, _ = _forward(only, {}, X, training=False)
    np.testing.assert_array_equal(out, X)


def test_dropout_zero_has_no_mask():
    model = Model([Dense(3), Dropout(0.0)], input_shape=(2,), loss="mse")
    assert model.noise == {}
    graph = model.graph(True)
    assert sorted(graph.name_of(n) for n in graph.inputs) == ["X", "y"]


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(GraphcError, match=r"p must be a number in \[0, 1\)"):
        Dropout(p)


def test_dropout_gradcheck_with_a_fixed_mask():
    model = Model([Dense(4, "tanh"), Dropout(0.4), Dense(2)], input_shape=(3,), loss="mse")
    rng = _rng(11)
    feeds = {"X": rng.standard_normal((5, 3)), "y": rng.standard_normal((5, 2)),
             "dropout_1.mask": (rng.random((5, 4)) > 0.4).astype(np.float64)}
    _check_grads(model, feeds, _random_params(model), training=True)


# --------------------------------------------------------------------------- LayerNorm


def _np_layer_norm(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_layer_norm_matches_numpy(eps):
    model = Model([LayerNorm(eps=eps)], input_shape=(6,), loss="mse")
    assert {k: s.shape for k, s in model.params.items()} == {"layer_norm_1.gamma": (1, 6), "layer_norm_1.beta": (1, 6)}
    init = model.init(0)
    np.testing.assert_array_equal(init["layer_norm_1.gamma"], np.ones((1, 6)))
    np.testing.assert_array_equal(init["layer_norm_1.beta"], np.zeros((1, 6)))
    params = _random_params(model)
    X = _rng(12).standard_normal((5, 6)) * 3 + 1
    expect = _np_layer_norm(X, params["layer_norm_1.gamma"], params["layer_norm_1.beta"], eps)
    for training in (True, False):  # the same in both modes
        out, _ = _forward(model, params, X, training=training)
        np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)


def test_layer_norm_gradcheck():
    model = Model([Dense(5), LayerNorm(), Dense(2)], input_shape=(3,), loss="mse")
    rng = _rng(13)
    feeds = {"X": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 2))}
    _check_grads(model, feeds, _random_params(model))


# --------------------------------------------------------------------------- BatchNorm


def _np_bn(x, mean, var, gamma, beta, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_batch_norm_params_and_buffers():
    model = Model([BatchNorm()], input_shape=(3,), loss="mse")
    specs = model.params
    assert {k: (s.shape, s.trainable) for k, s in specs.items()} == {
        "batch_norm_1.gamma": ((1, 3), True), "batch_norm_1.beta": ((1, 3), True),
        "batch_norm_1.running_mean": ((1, 3), False), "batch_norm_1.running_var": ((1, 3), False)}
    init = model.init(0)
    np.testing.assert_array_equal(init["batch_norm_1.running_mean"], np.zeros((1, 3)))
    np.testing.assert_array_equal(init["batch_norm_1.running_var"], np.ones((1, 3)))
    assert model.count_params() == 6 and model.count_params(trainable=False) == 6


@pytest.mark.parametrize("momentum", [0.9, 0.3])
def test_batch_norm_training_output_and_update_rule(momentum):
    """Training: batch mean and biased variance; the graph's updates are the
    running-statistics rule r <- m r + (1 - m) batch (checked by the interpreter)."""
    eps = 1e-3
    model = Model([BatchNorm(momentum=momentum, eps=eps)], input_shape=(4,), loss="mse")
    params = _random_params(model, seed=14)
    X = _rng(15).standard_normal((9, 4)) * 2 + 3
    mean, var = X.mean(axis=0, keepdims=True), X.var(axis=0, keepdims=True)  # biased (ddof=0)
    expect = _np_bn(X, mean, var, params["batch_norm_1.gamma"], params["batch_norm_1.beta"], eps)
    ev = gc.evaluate(model.graph(True), {"X": X, "y": np.zeros_like(X), **params})
    np.testing.assert_allclose(ev.outputs["output"], expect, rtol=1e-12, atol=1e-12)
    # the unbiased variance would give a different output: the check can tell them apart
    assert not np.allclose(expect, _np_bn(X, mean, X.var(axis=0, ddof=1, keepdims=True),
                                          params["batch_norm_1.gamma"], params["batch_norm_1.beta"], eps))
    updates = ev.updates
    assert set(updates) == {"batch_norm_1.running_mean", "batch_norm_1.running_var"}
    np.testing.assert_allclose(updates["batch_norm_1.running_mean"],
                               momentum * params["batch_norm_1.running_mean"] + (1 - momentum) * mean, rtol=1e-12)
    np.testing.assert_allclose(updates["batch_norm_1.running_var"],
                               momentum * params["batch_norm_1.running_var"] + (1 - momentum) * var, rtol=1e-12)


def test_batch_norm_eval_uses_running_statistics():
    eps = 1e-5
    model = Model([BatchNorm(eps=eps)], input_shape=(4,), loss="mse")
    params = _random_params(model, seed=16)
    X = _rng(17).standard_normal((3, 4))
    expect = _np_bn(X, params["batch_norm_1.running_mean"], params["batch_norm_1.running_var"],
                    params["batch_norm_1.gamma"], params["batch_norm_1.beta"], eps)
    out, _ = _forward(model, params, X, training=False)
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    # a single row works in eval mode (no batch statistics needed)
    out1, _ = _forward(model, params, X[:1], training=False)
    np.testing.assert_allclose(out1, expect[:1], rtol=1e-12, atol=1e-12)


def test_batch_norm_gradcheck_through_batch_statistics():
    """The training graph's gradient flows through the batch mean and variance."""
    model = Model([Dense(4), BatchNorm(), Dense(2)], input_shape=(3,), loss="mse")
    rng = _rng(18)
    feeds = {"X": rng.standard_normal((6, 3)), "y": rng.standard_normal((6, 2))}
    grads = _check_grads(model, feeds, _random_params(model), training=True, rtol=1e-5, atol=1e-7)
    # BN removes the per-feature mean, so the first bias cannot change the loss
    np.testing.assert_allclose(grads["dense_1.b"], 0.0, atol=1e-10)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_batch_norm_rejects_bad_momentum(bad):
    with pytest.raises(GraphcError, match=r"momentum must be a number in \[0, 1\)"):
        BatchNorm(momentum=bad)


def _mixed_model():
    """Dense + BatchNorm + Dropout + LayerNorm; test_model.py builds the same
    one, so their numba step compiles share the session cache."""
    return Model([Dense(5, "tanh"), BatchNorm(momentum=0.8), Dropout(0.25), LayerNorm(), Dense(3)],
                 input_shape=(4,), loss="cross_entropy")


def test_batch_norm_running_stats_after_one_compiled_step():
    """One numba training step: running stats = m * old + (1 - m) * batch stat of
    the BN input, the batch statistics computed in NumPy from the parameters
    the step started from."""
    model = _mixed_model()
    params = _random_params(model, seed=19)
    rng = _rng(20)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    mask = (rng.random((16, 5)) > 0.25).astype(np.float64)
    trainer = Trainer(model, SGD(lr=0.1), backend="numba", eval_backend="python", params=params)
    trainer.step({"X": X, "y": y, "dropout_1.mask": mask})
    h = np.tanh(X @ params["dense_1.W"] + params["dense_1.b"])
    mean, var = h.mean(axis=0, keepdims=True), h.var(axis=0, keepdims=True)
    after = trainer.params
    np.testing.assert_allclose(after["batch_norm_1.running_mean"],
                               0.8 * params["batch_norm_1.running_mean"] + 0.2 * mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(after["batch_norm_1.running_var"],
                               0.8 * params["batch_norm_1.running_var"] + 0.2 * var, rtol=1e-12, atol=1e-14)
    assert not np.allclose(after["dense_1.W"], params["dense_1.W"])  # it did train


def test_batch_norm_running_stats_converge_to_full_batch_stats():
    """Full-batch steps with the same data: r_k = m^k r_0 + (1 - m^k) stat, so
    after 40 steps at m = 0.5 (m^40 ~ 1e-12) eval mode normalizes exactly as
    training mode does on the whole data."""
    model = Model([BatchNorm(momentum=0.5), Dense(3)], input_shape=(3,), loss="cross_entropy")
    rng = _rng(21)
    X, y = rng.standard_normal((30, 3)) * 2 + 1, rng.integers(0, 3, 30)
    trainer = Trainer(model, SGD(lr=0.05), backend="python", grad_norms=False)
    trainer.fit(X, y, epochs=40, batch_size=len(X), shuffle=False, progress=False)
    params = trainer.params
    np.testing.assert_allclose(params["batch_norm_1.running_mean"], X.mean(axis=0, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(params["batch_norm_1.running_var"], X.var(axis=0, keepdims=True), rtol=1e-9)
    train_out, _ = _forward(model, params, X, training=True, y=y)
    np.testing.assert_allclose(trainer.predict(X), train_out, rtol=1e-8, atol=1e-9)


# --------------------------------------------------------------------------- Residual


def test_residual_adds_the_skip_connection():
    model = Model([Residual([Dense(3), ReLU()]), Residual(Dense(3))], input_shape=(3,), loss="mse")
    assert list(model.params) == ["dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"]
    params = _random_params(model, seed=22)
    X = _rng(23).standard_normal((5, 3))
    h = X + np.maximum(X @ params["dense_1.W"] + params["dense_1.b"], 0)
    expect = h + h @ params["dense_2.W"] + params["dense_2.b"]
    out, _ = _forward(model, params, X)
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    _check_grads(model, {"X": X, "y": _rng(24).standard_normal((5, 3))}, params)


def test_residual_shape_mismatch_is_a_clear_error():
    model = Model([Dense(3), Residual([Dense(4), Tanh()])], input_shape=(2,), loss="mse")
    msg = re.escape("residual_1: the block maps ('N', 3) to ('N', 4); a residual needs the same shape")
    with pytest.raises(GraphcError, match=msg):
        model.graph(True)


# --------------------------------------------------------------------------- naming


def _names(model):
    return [layer.name for layer in walk(model.net)]


def _nested():
    return Model([Dense(3, "relu"), Residual([Dense(3), ReLU()]), Sequential([Dense(3), Tanh()]),
                  Dropout(0.1), Dense(2)], input_shape=(2,), loss="mse")


def test_auto_names_are_unique_stable_and_nested():
    model = _nested()
    assert _names(model) == ["sequential_1", "dense_1", "residual_1", "sequential_2", "dense_2", "relu_1",
                             "sequential_3", "dense_3", "tanh_1", "dropout_1", "dense_4"]
    assert list(model.layer_groups()) == ["dense_1", "dense_2", "dense_3", "dense_4"]
    # the same architecture built again gets the same names, and both graphs agree on them
    assert _names(_nested()) == _names(model)
    train, evalg = model.graph(True), model.graph(False)
    assert sorted(train.name_of(n) for n in train.params) == sorted(evalg.name_of(n) for n in evalg.params) \
        == sorted(model.params)


def test_user_names_are_kept_and_auto_names_avoid_them():
    model = Model([Dense(3, name="encoder"), Dense(3), ReLU(name="act"), Dense(2)], input_shape=(2,), loss="mse")
    assert _names(model)[1:] == ["encoder", "dense_1", "act", "dense_2"]
    assert "encoder.W" in model.params and "dense_2.b" in model.params
    # a user name that looks like an auto name, placed after the layer that would get it
    model = Model([Dense(3), Dense(3, name="dense_1")], input_shape=(2,), loss="mse")
    assert _names(model)[1:] == ["dense_2", "dense_1"]
    assert list(model.params) == ["dense_2.W", "dense_2.b", "dense_1.W", "dense_1.b"]


def test_duplicate_names_are_rejected():
    with pytest.raises(GraphcError, match="two layers are named 'h'"):
        Model([Dense(3, name="h"), Sequential([Dense(3, name="h")])], input_shape=(2,))


def test_shared_layer_shares_its_parameters():
    shared = Dense(3)
    model = Model([shared, Tanh(), shared], input_shape=(3,), loss="mse")
    assert _names(model) == ["sequential_1", "dense_1", "tanh_1"]
    assert list(model.params) == ["dense_1.W", "dense_1.b"]
    assert model.count_params() == 12
    assert model.summary().count("dense_1.W") == 1
    params = _random_params(model, seed=25)
    W, b = params["dense_1.W"], params["dense_1.b"]
    X = _rng(26).standard_normal((4, 3))
    out, _ = _forward(model, params, X)
    np.testing.assert_allclose(out, np.tanh(X @ W + b) @ W + b, rtol=1e-12, atol=1e-12)
    # the gradient sums both uses
    _check_grads(model, {"X": X, "y": _rng(27).standard_normal((4, 3))}, params)


@pytest.mark.parametrize("make", [lambda: Dense(True), lambda: Dense(0), lambda: Dense(2.5), lambda: Maxout(4, pieces=1),
                                  lambda: Maxout(0), lambda: Dropout("0.5"), lambda: Dropout(1.0),
                                  lambda: BatchNorm(momentum=1.0)])
def test_bad_layer_arguments_are_one_clear_error(make):
    with pytest.raises(GraphcError, match="must be"):
        make()
