"""Model and Trainer against independent oracles: parameter counts by hand,
losses and weight decay from their NumPy formulas, one training step against
SGD on finite-difference gradients, and the numba step against the python one.

Only one test compiles with numba; its step graph is the one test_layers.py
also compiles, so the session's shared numba cache serves the repeat.
"""
import math
import re

import numpy as np
import pytest

import graphc as gc
from graphc import GraphcError
from graphc.train import (SGD, BatchNorm, Dense, Dropout, LayerNorm, Maxout, Model, ReLU, Residual,
                          Trainer)
from graphc.train import losses
from graphc.train.model import ParamSpec
from tests.train.finite_diff import central_differences

# --------------------------------------------------------------------------- helpers


def _rng(seed=0):
    return np.random.default_rng(seed)


def _random_params(model, seed=0):
    rng = _rng(seed)
    return {name: (rng.uniform(0.5, 2.0, s.shape) if name.endswith(("gamma", "running_var"))
                   else rng.standard_normal(s.shape))
            for name, s in model.params.items()}


def _eval_graph(model, params, X, y, training=False, **extra):
    out = gc.evaluate(model.graph(training), {"X": X, "y": y, **params, **extra}).outputs
    return out["output"], float(out["loss"])


def _np_logsumexp(z):
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def _np_cross_entropy(z, labels):
    return np.mean(_np_logsumexp(z) - z[np.arange(len(z)), labels])


def _np_bce(z, t):
    s = 1.0 / (1.0 + np.exp(-z))
    return -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s))


def _np_mse(z, t):
    return np.mean((z - t) ** 2)


def _mixed_model():
    """The same model as test_layers._mixed_model (shared numba cache)."""
    return Model([Dense(5, "tanh"), BatchNorm(momentum=0.8), Dropout(0.25), LayerNorm(), Dense(3)],
                 input_shape=(4,), loss="cross_entropy")


def _np_mixed_forward(p, X, mask, training, eps=1e-5):
    h = np.tanh(X @ p["dense_1.W"] + p["dense_1.b"])
    if training:
        mean, var = h.mean(axis=0, keepdims=True), h.var(axis=0, keepdims=True)
    else:
        mean, var = p["batch_norm_1.running_mean"], p["batch_norm_1.running_var"]
    h = (h - mean) / np.sqrt(var + eps) * p["batch_norm_1.gamma"] + p["batch_norm_1.beta"]
    if training:
        h = h * mask / 0.75
    mu, v = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
    h = (h - mu) / np.sqrt(v + eps) * p["layer_norm_1.gamma"] + p["layer_norm_1.beta"]
    return h @ p["dense_2.W"] + p["dense_2.b"]


# --------------------------------------------------------------------------- counting and summary


def test_count_params_by_hand():
    model = Model([Dense(100, "relu"), Dense(3)], input_shape=(2,))
    assert model.count_params() == 2 * 100 + 100 + 100 * 3 + 3 == 603
    assert model.count_params(trainable=False) == 0
    # Dense 4->5 (25), BN(5): gamma+beta 10 trainable, 10 running; LayerNorm(5) 10;
    # Maxout 5->2 with 3 pieces: 3*(10+2) = 36; Residual(Dense 2->2): 6; Dense 2->3: 9
    model = Model([Dense(5), BatchNorm(), LayerNorm(), Maxout(2, pieces=3), Residual(Dense(2)), Dense(3)],
                  input_shape=(4,))
    assert model.count_params() == 25 + 10 + 10 + 36 + 6 + 9
    assert model.count_params(trainable=False) == 10
    assert sum(int(np.prod(s.shape)) for s in model.params.values()) == 96 + 10
    assert model.trainable() == [n for n in model.params if "running" not in n]


def test_summary_lists_every_param_and_the_totals():
    model = Model([Dense(100, "relu"), BatchNorm(), Dense(3)], input_shape=(2,))
    text = model.summary()
    for name, spec in model.params.items():
        line = next(ln for ln in text.splitlines() if re.search(rf"\s{re.escape(name)}(\s|$)", ln))
        assert str(spec.shape) in line and f"{math.prod(spec.shape):,}" in line
    trainable = 2 * 100 + 100 + 100 + 100 + 100 * 3 + 3
    assert f"trainable params: {trainable:,}" in text
    assert "non-trainable: 200" in text
    assert "(running)" in text


def test_layer_groups_are_the_trainable_params_by_layer():
    model = Model([Dense(3), BatchNorm(), Dropout(0.2), Dense(2)], input_shape=(2,))
    assert model.layer_groups() == {"dense_1": ["dense_1.W", "dense_1.b"],
                                    "batch_norm_1": ["batch_norm_1.gamma", "batch_norm_1.beta"],
                                    "dense_2": ["dense_2.W", "dense_2.b"]}


# --------------------------------------------------------------------------- init


def test_init_is_reproducible_and_per_name_independent():
    small = Model([Dense(4, name="a"), Dense(3, name="b")], input_shape=(2,))
    p1, p2, other = small.init(7), small.init(7), small.init(8)
    assert list(p1) == list(small.params)
    for name in p1:
        np.testing.assert_array_equal(p1[name], p2[name])
        assert p1[name].shape == small.params[name].shape and p1[name].dtype == np.float64
    assert not np.array_equal(p1["a.W"], other["a.W"])
    assert not np.array_equal(p1["a.W"][:, :3], p1["b.W"][:2, :3])  # streams differ by name
    # adding layers (before and after) leaves the draws of the existing names alone
    bigger = Model([Dense(6, name="z"), Dense(4, name="a"), ReLU(), Dense(3, name="b"), Dense(5)],
                   input_shape=(2,))
    q = bigger.init(7)
    np.testing.assert_array_equal(q["b.W"], p1["b.W"])
    # a.W changed shape (its input is now 6 wide), so only b's arrays can match; check b.b too
    np.testing.assert_array_equal(q["b.b"], p1["b.b"])
    appended = Model([Dense(4, name="a"), Dense(3, name="b"), Dense(2)], input_shape=(2,)).init(7)
    for name in p1:
        np.testing.assert_array_equal(appended[name], p1[name])


def test_init_follows_the_initializers_and_dtype():
    """Xavier-uniform weights lie in +-sqrt(6/(fan_in+fan_out)); biases start at 0."""
    model = Model([Dense(50), Dense(20)], input_shape=(30,), dtype="float32")
    p = model.init(0)
    assert all(v.dtype == np.float32 for v in p.values())
    for name, (fi, fo) in (("dense_1.W", (30, 50)), ("dense_2.W", (50, 20))):
        limit = math.sqrt(6 / (fi + fo))
        assert np.abs(p[name]).max() <= limit
        assert np.abs(p[name]).max() > 0.9 * limit  # it does use the range
    assert not p["dense_1.b"].any() and not p["dense_2.b"].any()


# --------------------------------------------------------------------------- losses


def test_cross_entropy_loss_and_target():
    model = Model([Dense(4)], input_shape=(3,), loss="cross_entropy")
    graph = model.graph(False)
    y = graph.find("y")
    assert graph.shape(y) == ("N",) and graph.dtype(y) == "int64"
    params = _random_params(model)
    rng = _rng(1)
    X, labels = rng.standard_normal((8, 3)) * 3, rng.integers(0, 4, 8)
    out, loss = _eval_graph(model, params, X, labels)
    np.testing.assert_allclose(out, X @ params["dense_1.W"] + params["dense_1.b"], rtol=1e-12)
    assert loss == pytest.approx(_np_cross_entropy(out, labels), rel=1e-12)
    assert model.loss.accuracy(out, labels) == np.mean(out.argmax(axis=1) == labels)


def test_binary_cross_entropy_loss_and_target():
    model = Model([Dense(2)], input_shape=(3,), loss="bce")
    graph = model.graph(False)
    y = graph.find("y")
    assert graph.shape(y) == ("N", 2) and graph.dtype(y) == "float64"
    params = _random_params(model, seed=2)
    rng = _rng(3)
    X, t = rng.standard_normal((10, 3)), (rng.random((10, 2)) < 0.5).astype(np.float64)
    out, loss = _eval_graph(model, params, X, t)
    assert loss == pytest.approx(_np_bce(out, t), rel=1e-12)
    assert model.loss.accuracy(out, t) == np.mean((out > 0) == (t == 1))


def test_mse_loss_and_target():
    model = Model([Dense(2)], input_shape=(3,), loss="mse")
    graph = model.graph(False)
    assert graph.shape(graph.find("y")) == ("N", 2)
    params = _random_params(model, seed=4)
    rng = _rng(5)
    X, t = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    out, loss = _eval_graph(model, params, X, t)
    assert loss == pytest.approx(_np_mse(out, t), rel=1e-12)
    assert model.loss.accuracy(out, t) is None


@pytest.mark.parametrize("alias, cls", [("softmax_cross_entropy", losses.CrossEntropy),
                                        ("binary_cross_entropy", losses.BinaryCrossEntropy),
                                        (losses.MeanSquaredError(), losses.MeanSquaredError)])
def test_loss_aliases_and_instances(alias, cls):
    assert isinstance(Model([Dense(2)], input_shape=(2,), loss=alias).loss, cls)


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
@pytest.mark.parametrize("decay", [0.0, 0.3])
def test_weight_decay_adds_half_strength_sum_of_squared_weights(loss, decay):
    """Only the weight matrices (Dense W, Maxout W_k) are decayed: not biases,
    BatchNorm/LayerNorm gamma and beta, or running statistics."""
    model = Model([Dense(5), BatchNorm(), LayerNorm(), Maxout(3, pieces=2)], input_shape=(4,), loss=loss,
                  weight_decay=decay)
    weights = ["dense_1.W", "maxout_1.W0", "maxout_1.W1"]
    assert sorted(n for n, s in model.params.items() if s.kind == "weight") == weights
    p = _random_params(model, seed=6)
    rng = _rng(7)
    X = rng.standard_normal((8, 4))
    h = X @ p["dense_1.W"] + p["dense_1.b"]
    h = (h - p["batch_norm_1.running_mean"]) / np.sqrt(p["batch_norm_1.running_var"] + 1e-5) \
        * p["batch_norm_1.gamma"] + p["batch_norm_1.beta"]
    mu, v = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
    h = (h - mu) / np.sqrt(v + 1e-5) * p["layer_norm_1.gamma"] + p["layer_norm_1.beta"]
    z = np.maximum(h @ p["maxout_1.W0"] + p["maxout_1.b0"], h @ p["maxout_1.W1"] + p["maxout_1.b1"])
    if loss == "cross_entropy":
        y = rng.integers(0, 3, 8)
        data = _np_cross_entropy(z, y)
    elif loss == "bce":
        y = (rng.random((8, 3)) < 0.5).astype(np.float64)
        data = _np_bce(z, y)
    else:
        y = rng.standard_normal((8, 3))
        data = _np_mse(z, y)
    penalty = decay / 2 * sum(np.sum(p[w] ** 2) for w in weights)
    out, value = _eval_graph(model, p, X, y)
    np.testing.assert_allclose(out, z, rtol=1e-11, atol=1e-12)
    assert value == pytest.approx(data + penalty, rel=1e-12)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "hinge"}, r"unknown loss 'hinge'; known: .*cross_entropy"),
    ({"dtype": "float16"}, "dtype must be float32 or float64"),
    ({"dtype": "int64"}, "dtype must be float32 or float64"),
    ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": float("inf")}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": "0.1"}, "weight_decay must be a finite number >= 0"),
])
def test_model_rejects_bad_arguments(kwargs, match):
    with pytest.raises(GraphcError, match=match):
        Model([Dense(3)], input_shape=(2,), **kwargs)


@pytest.fixture(scope="module")
def ce_trainer():
    model = Model([Dense(4, "relu"), Dense(3)], input_shape=(2,), loss="cross_entropy")
    return Trainer(model, SGD(lr=0.1), backend="python")


def test_trainer_rejects_a_wrong_X_shape(ce_trainer):
    y = np.zeros(5, dtype=np.int64)
    msg = re.escape("X has shape (5, 3); model 'model' takes (batch, 2)")
    with pytest.raises(GraphcError, match=msg):
        ce_trainer.fit(np.zeros((5, 3)), y, epochs=1, progress=False)
    with pytest.raises(GraphcError, match=msg):
        ce_trainer.evaluate(np.zeros((5, 3)), y)
    with pytest.raises(GraphcError, match=re.escape("X has shape (5,)")):
        ce_trainer.predict(np.zeros(5))


def test_trainer_rejects_float_labels_for_cross_entropy(ce_trainer):
    X = np.zeros((4, 2))
    with pytest.raises(GraphcError, match="takes integer class labels, got float64"):
        ce_trainer.fit(X, np.array([0.0, 1.0, 2.0, 1.0]), epochs=1, progress=False)
    with pytest.raises(GraphcError, match="takes integer class labels, got float64"):
        ce_trainer.evaluate(X, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(GraphcError, match=re.escape("y has shape (4, 1)")):
        ce_trainer.evaluate(X, np.zeros((4, 1), dtype=np.int64))
    assert ce_trainer.step.steps == 0  # nothing ran


def test_trainer_params_must_be_complete():
    model = Model([Dense(3)], input_shape=(2,), loss="mse")
    with pytest.raises(GraphcError, match="params lack dense_1.b"):
        Trainer(model, SGD(), backend="python", params={"dense_1.W": np.zeros((2, 3))})


# --------------------------------------------------------------------------- Trainer


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
def test_predict_and_evaluate_agree_with_the_interpreter(loss):
    model = Model([Dense(6, "tanh"), BatchNorm(), Dropout(0.5), Dense(3)], input_shape=(4,), loss=loss)
    params = _random_params(model, seed=8)
    trainer = Trainer(model, SGD(lr=0.1), backend="python", params=params)
    rng = _rng(9)
    X = rng.standard_normal((23, 4))
    y = {"cross_entropy": rng.integers(0, 3, 23), "bce": (rng.random((23, 3)) < 0.5).astype(np.float64),
         "mse": rng.standard_normal((23, 3))}[loss]
    out, value = _eval_graph(model, params, X, y)
    np.testing.assert_allclose(trainer.predict(X), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trainer.predict(X, batch_size=5), out, rtol=1e-12, atol=1e-12)
    # eval mode: dropout off, running statistics (a NumPy forward, independently)
    h = np.tanh(X @ params["dense_1.W"] + params["dense_1.b"])
    h = (h - params["batch_norm_1.running_mean"]) / np.sqrt(params["batch_norm_1.running_var"] + 1e-5) \
        * params["batch_norm_1.gamma"] + params["batch_norm_1.beta"]
    np.testing.assert_allclose(out, h @ params["dense_2.W"] + params["dense_2.b"], rtol=1e-11, atol=1e-12)
    for batch_size in (4096, 5):  # every loss is a mean, so batches weighted by size give the full mean
        metrics = trainer.evaluate(X, y, batch_size=batch_size)
        assert metrics["loss"] == pytest.approx(value, rel=1e-12)
        if loss == "cross_entropy":
            assert metrics["accuracy"] == np.mean(out.argmax(axis=1) == y)
        elif loss == "bce":
            assert metrics["accuracy"] == np.mean((out > 0) == (y == 1))
        else:
            assert "accuracy" not in metrics


def test_one_step_is_sgd_on_finite_difference_gradients():
    """The python-backend step of a model with every kind of layer, weight decay
    and a dropout mask: new params = old - lr * (central-difference gradient of
    the training loss), new running stats by the BN rule; the training loss the
    step reports equals a NumPy forward."""
    model = Model([Dense(5, "tanh"), BatchNorm(momentum=0.8), Dropout(0.25), LayerNorm(), Dense(3)],
                  input_shape=(4,), loss="cross_entropy", weight_decay=0.05)
    params = _random_params(model, seed=10)
    rng = _rng(11)
    X, y = rng.standard_normal((12, 4)), rng.integers(0, 3, 12)
    mask = (rng.random((12, 5)) > 0.25).astype(np.float64)
    feeds = {"X": X, "y": y, "dropout_1.mask": mask}
    lr = 0.3
    trainer = Trainer(model, SGD(lr=lr), backend="python", params=params)
    out = trainer.step(dict(feeds))

    z = _np_mixed_forward(params, X, mask, training=True)
    penalty = 0.025 * (np.sum(params["dense_1.W"] ** 2) + np.sum(params["dense_2.W"] ** 2))
    assert float(out["loss"]) == pytest.approx(_np_cross_entropy(z, y) + penalty, rel=1e-12)
    np.testing.assert_allclose(out["output"], z, rtol=1e-11, atol=1e-12)

    graph = model.graph(True)
    loss = lambda p: float(gc.evaluate(graph, {**feeds, **p}).outputs["loss"])  # noqa: E731
    grads = central_differences(loss, params, model.trainable())
    after = trainer.params
    for name in model.trainable():
        np.testing.assert_allclose(after[name], params[name] - lr * grads[name], rtol=1e-7, atol=1e-8,
                                   err_msg=name)
    h = np.tanh(X @ params["dense_1.W"] + params["dense_1.b"])
    np.testing.assert_allclose(after["batch_norm_1.running_mean"],
                               0.8 * params["batch_norm_1.running_mean"] + 0.2 * h.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(after["batch_norm_1.running_var"],
                               0.8 * params["batch_norm_1.running_var"] + 0.2 * h.var(axis=0), rtol=1e-12)
    # and the per-layer gradient norms the step reports are those of the same gradients
    for layer, names in model.layer_groups().items():
        assert float(out[f"grad_norm/{layer}"]) == pytest.approx(
            math.sqrt(sum(np.sum(grads[n] ** 2) for n in names)), rel=1e-6)


def test_numba_step_matches_python_step():
    """Same seed, same feeds: one step on each backend leaves the same params."""
    rng = _rng(12)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    mask = (rng.random((16, 5)) > 0.25).astype(np.float64)
    results = {}
    for backend in ("python", "numba"):
        model = _mixed_model()
        trainer = Trainer(model, SGD(lr=0.1), seed=3, backend=backend, eval_backend="python")
        out = trainer.step({"X": X, "y": y, "dropout_1.mask": mask})
        results[backend] = (float(out["loss"]), trainer.params)
    (loss_py, p_py), (loss_nb, p_nb) = results["python"], results["numba"]
    assert loss_nb == pytest.approx(loss_py, rel=1e-12)
    assert p_py.keys() == p_nb.keys() == set(_mixed_model().params)
    start = _mixed_model().init(3)
    for name in p_py:
        np.testing.assert_allclose(p_nb[name], p_py[name], rtol=1e-12, atol=1e-12, err_msg=name)
        assert not np.array_equal(p_py[name], start[name]), name  # every param and buffer moved


def test_fit_learns_a_separable_problem():
    """A smoke check of the loop on the python backend: two Gaussian blobs far
    apart are separable, so the training accuracy must reach 1 and the loss fall."""
    rng = _rng(13)
    X = np.concatenate([rng.normal(-3, 0.5, (40, 2)), rng.normal(3, 0.5, (40, 2))])
    y = np.repeat([0, 1], 40)
    model = Model([Dense(8, "relu"), Dense(2)], input_shape=(2,), loss="cross_entropy")
    trainer = Trainer(model, SGD(lr=0.1), backend="python")
    before = trainer.evaluate(X, y)["loss"]
    history = trainer.fit(X, y, epochs=20, batch_size=16, progress=False)
    after = trainer.evaluate(X, y)
    assert after["loss"] < 0.5 * before and after["accuracy"] == 1.0
    assert len(history["loss"]) == 20


def test_param_spec_kinds():
    assert ParamSpec("a", "l", (1,), None, "buffer").trainable is False
    assert ParamSpec("a", "l", (1,), None, "weight").trainable is True
    assert ParamSpec("a", "l", (1,), None, "param").trainable is True
