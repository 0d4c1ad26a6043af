"""The training loop: batches, validation, early stopping, divergence, progress,
grad norms, plots and checkpoint resume.  Oracles: NumPy by hand, gc.evaluate
and gc.grad at the same parameters, and an uninterrupted run of the same seed."""
import io
import math
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphcError, NumericError
from graphc.train import (SGD, Adam, BatchNorm, Dense, Dropout, EarlyStopping, Model, ReduceLROnPlateau,
                          Trainer)
from graphc.train import checkpoint


def blobs(n=120, seed=0):
    """Three Gaussian blobs in 2-D: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = rng.integers(0, 3, n)
    return centers[y] + 0.6 * rng.standard_normal((n, 2)), y


def small_model(**kw):
    return Model([Dense(16, "tanh"), Dense(3)], input_shape=(2,), name="small", **kw)


def test_each_epoch_visits_every_sample_once_in_a_seeded_shuffled_order():
    X, y = blobs(50)
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    seen = []
    real_step = trainer.step.__class__.__call__

    def spy(step, feeds=None, **kw):
        seen.append(feeds["X"].copy())
        return real_step(step, feeds, **kw)

    trainer.step.__class__.__call__ = spy
    try:
        trainer.fit(X, y, epochs=2, batch_size=16)
    finally:
        trainer.step.__class__.__call__ = real_step
    assert [len(b) for b in seen] == [16, 16, 16, 2] * 2
    epoch1, epoch2 = np.concatenate(seen[:4]), np.concatenate(seen[4:])
    key = lambda a: sorted(map(tuple, a))  # noqa: E731
    assert key(epoch1) == key(X) == key(epoch2)
    assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch
    assert not np.array_equal(epoch1, X)


def test_training_loss_and_accuracy_are_the_epochs_sample_weighted_means():
    X, y = blobs(40)
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    losses = []
    trainer.fit(X, y, epochs=1, batch_size=30, shuffle=False,
                callback=lambda t, m: losses.append(m["loss"]))
    # replay by hand: the same initial params, two batches of 30 and 10, SGD by gc.grad
    params = small_model().init(0)
    graph = gc.grad(small_model().graph(True), loss="loss", wrt=list(params))
    expected = 0.0
    for sl in (slice(0, 30), slice(30, 40)):
        ev = gc.evaluate(graph, {"X": X[sl], "y": y[sl], **params})
        expected += float(ev["loss"]) * len(X[sl])
        params = {k: v - 0.1 * ev[f"g_{k}"] for k, v in params.items()}
    assert losses[0] == pytest.approx(expected / 40, rel=1e-12)
    for k, v in params.items():
        np.testing.assert_allclose(trainer.params[k], v, rtol=1e-12, atol=1e-15)


def test_validation_split_is_held_out_and_reported():
    X, y = blobs(100)
    trainer = Trainer(small_model(), Adam(lr=0.05), backend="python")
    history = trainer.fit(X, y, epochs=3, batch_size=32, validation_split=0.2)
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(history.metrics)
    assert len(history["val_loss"]) == 3
    # the split is fixed by the seed: the same 20 points are evaluated each epoch
    order = np.random.default_rng([0, 1]).permutation(100)
    val = trainer.evaluate(X[order[:20]], y[order[:20]])
    assert history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-12)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 2)), rng.integers(0, 3, 40)  # noise labels: validation loss rises
    Xv, yv = rng.standard_normal((40, 2)), rng.integers(0, 3, 40)
    model = Model([Dense(64, "relu"), Dense(3)], input_shape=(2,), name="overfit")
    trainer = Trainer(model, Adam(lr=0.05), backend="python")
    best = {}
    history = trainer.fit(X, y, epochs=200, batch_size=40, validation_data=(Xv, yv),
                          early_stopping=EarlyStopping(patience=3),
                          callback=lambda t, m: best.setdefault(t.epoch, {k: v.copy() for k, v in t.params.items()}))
    val = history["val_loss"]
    best_epoch = int(np.argmin(val)) + 1
    assert len(val) == best_epoch + 3 < 200  # stopped after 3 epochs without improvement
    assert trainer.early_stopping.best_epoch == best_epoch
    for k, v in best[best_epoch].items():
        np.testing.assert_array_equal(trainer.params[k], v)
    assert trainer.evaluate(Xv, yv)["loss"] == pytest.approx(min(val), rel=1e-12)


def diverging_trainer(lr):
    model = Model([Dense(32, "relu", init="he_normal"), Dense(3)], input_shape=(2,), name="diverge")
    return Trainer(model, SGD(lr=lr), backend="python")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_divergence_stops_with_the_step_and_first_bad_node_and_keeps_the_epoch_start_params():
    X, y = blobs(64)
    trainer = diverging_trainer(0.1)
    trainer.fit(X, y, epochs=1, batch_size=16)  # one good epoch
    good = {k: v.copy() for k, v in trainer.step.params.items()}
    trainer.optimizer.hyper["lr"] = 1e200  # one step makes the weights ~1e200: the next forward overflows
    with pytest.raises(NumericError) as err:
        trainer.fit(X, y, epochs=50, batch_size=16)
    message = str(err.value)
    assert "training stopped at step" in message and "(epoch 2, batch " in message
    assert "first non-finite value: node '" in message
    assert trainer.epoch == 1 and trainer.step.steps == 4  # back at the start of epoch 2
    assert all(np.array_equal(good[k], v) for k, v in trainer.step.params.items())  # params and optimizer state
    # the named node really is a node of the step graph
    node = message.split("first non-finite value: node '")[1].split("'")[0]
    graph = trainer.step.graph
    assert graph.toposort().index(graph.find(node)) >= 0


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=0), dict(validation_split=1.0),
                                 dict(batch_size=2.5), dict(checkpoint_every=0)])
def test_bad_fit_arguments_are_one_clear_error(bad):
    X, y = blobs(10)
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    args = dict(epochs=1, batch_size=4) | bad
    with pytest.raises(GraphcError, match="fit: "):
        trainer.fit(X, y, **args)


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(capsys):
    X, y = blobs(20)
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    trainer.fit(X, y, epochs=2, batch_size=10)
    assert capsys.readouterr().err == ""
    trainer.fit(X, y, epochs=4, batch_size=10, progress=True)
    assert "4/4" in capsys.readouterr().err


def test_grad_norms_are_each_layers_gradient_norm():
    X, y = blobs(30)
    model = small_model()
    trainer = Trainer(model, SGD(lr=0.1), backend="python")  # one full batch: one step, at the initial params
    history = trainer.fit(X, y, epochs=1, batch_size=30)
    ev = gc.evaluate(gc.grad(model.graph(True), loss="loss", wrt=model.trainable()), {"X": X, "y": y, **model.init(0)})
    for layer, names in model.layer_groups().items():
        expected = math.sqrt(sum(float(np.sum(ev[f"g_{n}"] ** 2)) for n in names))
        assert history[f"grad_norm/{layer}"][0] == pytest.approx(expected, rel=1e-12)


def test_history_plots_are_png_files(tmp_path):
    X, y = blobs(40)
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    history = trainer.fit(X, y, epochs=3, batch_size=20, validation_split=0.25)
    for path in (history.plot(tmp_path / "loss.png"), history.plot_grad_norms(tmp_path / "norms.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def resumable_model():
    return Model([Dense(24, "relu"), BatchNorm(), Dropout(0.3), Dense(3)], input_shape=(2,), name="resume")


def resumable_trainer():
    optimizer = Adam(lr=ReduceLROnPlateau(0.02, factor=0.5, patience=1))
    return Trainer(resumable_model(), optimizer, seed=7, backend="numba")


def test_interrupted_and_resumed_training_reproduces_the_uninterrupted_run(tmp_path):
    X, y = blobs(90)
    args = dict(batch_size=16, validation_split=0.2, early_stopping=EarlyStopping(patience=50))
    straight = resumable_trainer()
    straight.fit(X, y, epochs=6, **args)

    path = tmp_path / "run.npz"
    first = resumable_trainer()

    def crash(trainer, metrics):
        if trainer.epoch == 3:
            raise KeyboardInterrupt  # after epoch 3's checkpoint was written

    with pytest.raises(KeyboardInterrupt):
        first.fit(X, y, epochs=6, checkpoint=path, callback=crash, **args)
    args["early_stopping"] = EarlyStopping(patience=50)
    resumed = resumable_trainer()  # a new process would build the same objects
    resumed.fit(X, y, epochs=6, checkpoint=path, resume=True, **args)

    assert resumed.epoch == straight.epoch == 6
    assert resumed.history.to_dict() == straight.history.to_dict()
    for k, v in straight.step.params.items():  # params, running stats and Adam's moments
        np.testing.assert_array_equal(resumed.step.params[k], v, err_msg=k)
    assert resumed.rng.bit_generator.state == straight.rng.bit_generator.state
    assert resumed.optimizer.state_dict() == straight.optimizer.state_dict()


def test_a_checkpoint_from_another_model_is_refused(tmp_path):
    X, y = blobs(20)
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    trainer.fit(X, y, epochs=1, batch_size=10, checkpoint=tmp_path / "a.npz")
    other = Trainer(Model([Dense(8, "tanh"), Dense(3)], input_shape=(2,), name="small"), SGD(lr=0.1),
                    backend="python")
    with pytest.raises(checkpoint.CheckpointError, match="graph"):
        other.load(tmp_path / "a.npz")


def test_a_checkpoint_holds_the_full_state(tmp_path):
    X, y = blobs(30)
    trainer = Trainer(resumable_model(), Adam(lr=0.01), seed=3, backend="python")
    trainer.fit(X, y, epochs=2, batch_size=10, validation_split=0.2, early_stopping=EarlyStopping(patience=5),
                checkpoint=tmp_path / "c.npz")
    arrays, meta = checkpoint.load(tmp_path / "c.npz")
    names = {k.split("/", 1)[1] for k in arrays if k.startswith("state/")}
    assert names == set(trainer.step.params)  # params, running stats, Adam's m and v
    assert {"dense_1.W", "batch_norm_1.running_mean", "dense_1.W.m", "dense_1.W.v"} <= names
    assert meta["epoch"] == 2 and meta["step"] == 6 and meta["format_version"] == checkpoint.FORMAT_VERSION
    assert meta["rng"] == trainer.rng.bit_generator.state
    assert meta["early_stopping"]["best_epoch"] in (1, 2)
    assert any(k.startswith("best/") for k in arrays)
    with open(tmp_path / "c.npz", "rb") as f:  # no pickle anywhere in the file
        np.load(io.BytesIO(f.read()), allow_pickle=False).files


@pytest.mark.parametrize("backend", ["numba", "cuda"])
def test_compiled_backends_train_like_the_python_backend(backend):
    """PyTensor's rule: every backend against the Python one, here through fit
    (Adam, batch norm's running statistics, dropout masks, a partial last batch)."""
    X, y = blobs(40)
    model = Model([Dense(8, "relu"), BatchNorm(), Dropout(0.25), Dense(3)], input_shape=(2,), name="agree")
    runs = {b: Trainer(model, Adam(lr=0.01), seed=1, backend=b) for b in ("python", backend)}
    for trainer in runs.values():
        trainer.fit(X, y, epochs=2, batch_size=16)
    reference, compiled = runs["python"], runs[backend]
    for k, v in reference.step.params.items():
        np.testing.assert_allclose(compiled.step.params[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    assert compiled.history["loss"] == pytest.approx(reference.history["loss"], rel=1e-10)


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((4, 3)), np.zeros(4, "int64"), r"X has shape \(4, 3\); model 'small' takes \(batch, 2\)"),
    (np.zeros((4, 2)), np.zeros(4), "takes integer class labels, got float64"),
    (np.zeros((4, 2)), np.array([0, 1, 3, 2]), "label 3 is out of range: model 'small' has 3 classes"),
    (np.zeros((4, 2)), np.zeros(5, "int64"), "X has 4 samples but y has 5"),
    (np.full((4, 2), np.nan), np.zeros(4, "int64"), "X contains NaN or Inf"),
])
def test_bad_data_is_one_clear_error(X, y, match):
    trainer = Trainer(small_model(), SGD(lr=0.1), backend="python")
    with pytest.raises(GraphcError, match=match):
        trainer.fit(X, y, epochs=1)


# ----- careless use (issue 13): one clear error that names the culprit ----------------------
def python_trainer(model=None, optimizer=None):
    return Trainer(model or small_model(), optimizer or SGD(lr=0.1), backend="python")


@pytest.fixture(scope="module")
def trainer():
    return python_trainer()


@pytest.mark.parametrize("X, y, match", [
    (np.zeros((0, 2)), np.zeros(0, "int64"), "fit: X and y hold 0 samples"),
    (np.array([["1.5", "2"]] * 4), np.zeros(4, "int64"), "X cannot be read as float64 numbers: it holds str"),
    (np.array([[b"a", b"b"]] * 4), np.zeros(4, "int64"), "X cannot be read as float64 numbers: it holds bytes"),
    (np.array([[1.0, None]] * 4, dtype=object), np.zeros(4, "int64"), "X cannot be read as float64 numbers"),
    ([[1.0, 2.0], [3.0]], [0, 1], "X cannot be read as float64 numbers"),
    (np.zeros((4, 2)), np.array(["0", "1", "2", "0"]), "takes integer class labels, got <U1"),
])
def test_data_that_is_no_data_is_one_clear_error(trainer, X, y, match):
    before = trainer.step.steps
    with pytest.raises(GraphcError, match=match):
        trainer.fit(X, y, epochs=1)
    assert trainer.step.steps == before


@pytest.mark.parametrize("n, split", [(5, 0.999), (1, 0.5)])
def test_a_validation_split_that_leaves_nothing_to_train_on_is_refused(trainer, n, split):
    X, y = blobs(n)
    with pytest.raises(GraphcError, match=f"validation_split={split} holds out all {n} samples, leaving 0 to train on"):
        trainer.fit(X, y, epochs=1, validation_split=split)


def test_empty_validation_data_is_refused_before_training(trainer):
    X, y = blobs(8)
    with pytest.raises(GraphcError, match="fit: validation_data holds 0 samples"):
        trainer.fit(X, y, epochs=1, validation_data=(np.zeros((0, 2)), np.zeros(0, "int64")))
    assert trainer.epoch == 0


def test_evaluate_on_no_samples_is_an_error_not_loss_zero(trainer):
    with pytest.raises(GraphcError, match="evaluate: X and y hold 0 samples"):
        trainer.evaluate(np.zeros((0, 2)), np.zeros(0, "int64"))
    X, y = blobs(8)
    assert trainer.evaluate(X, y)["loss"] > 0.1  # a real evaluation still works


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_regression_target_is_refused_up_front(bad):
    regress = python_trainer(Model([Dense(1)], input_shape=(2,), loss="mse", name="reg"))
    y = np.zeros((6, 1))
    y[4, 0] = bad
    with pytest.raises(NumericError, match="y contains NaN or Inf; MeanSquaredError"):
        regress.fit(np.ones((6, 2)), y, epochs=1)
    assert regress.step.steps == 0
    with pytest.raises(GraphcError, match=r"y cannot be read as float64 numbers: it holds str"):
        regress.fit(np.ones((6, 2)), np.full((6, 1), "0.5"), epochs=1)


@pytest.mark.parametrize("value", [np.float32(1e-3), np.float64(1e-3), np.int64(0), 1e-3])
def test_weight_decay_takes_numpy_scalars_as_lr_does(value):
    model = small_model(weight_decay=value)
    assert model.weight_decay == float(value) and type(model.weight_decay) is float


@pytest.mark.parametrize("value", [True, "1e-3", -1e-3, np.float32(np.nan)])
def test_a_bad_weight_decay_is_refused(value):
    with pytest.raises(GraphcError, match="Model: weight_decay must be a finite number >= 0"):
        small_model(weight_decay=value)


def test_a_param_that_does_not_reach_the_loss_is_an_error_not_a_silent_zero_gradient():
    from graphc.train.step import build_step

    def net(X, W, V, y):
        loss = gc.cross_entropy(X @ W, y)
        unused = V * 2.0
        return {"loss": loss, "aux": unused}
    graph = gc.trace(net, ("N", 2), gc.Param((2, 3)), gc.Param((3,)), gc.Input(("N",), "int64"), name="stray")
    with pytest.raises(GraphcError, match=r"graph 'stray': param\(s\) 'V' do not reach the loss 'loss'.*never train"):
        build_step(graph, SGD(lr=0.1), loss="loss")
    assert build_step(graph, SGD(lr=0.1), loss="loss", params=["W"]).updates  # leaving it out is the way


def test_resuming_with_a_new_learning_rate_uses_it_and_says_so(tmp_path):
    X, y = blobs(20)
    first = python_trainer(optimizer=SGD(lr=0.1))
    first.fit(X, y, epochs=1, batch_size=10, checkpoint=tmp_path / "a.npz")
    second = python_trainer(optimizer=SGD(lr=0.01))
    with pytest.warns(UserWarning, match=r"with this trainer's lr=0.01 \(the checkpoint trained with 0.1\)"):
        second.fit(X, y, epochs=2, batch_size=10, checkpoint=tmp_path / "a.npz", resume=True)
    assert second.optimizer.hyper["lr"] == 0.01 and second.history.metrics["lr"] == [0.1, 0.01]
    same = python_trainer(optimizer=SGD(lr=0.01))  # the rate the checkpoint now records
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same rate: nothing to say
        same.load(tmp_path / "a.npz")


FIELDS = ["step", "epoch", "seed", "rng", "optimizer", "history", "early_stopping"]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run.npz"
    X, y = blobs(20)
    python_trainer(optimizer=Adam(lr=0.01)).fit(X, y, epochs=1, batch_size=10, checkpoint=path)
    return checkpoint.load(path)


@pytest.mark.parametrize("field, value", [(f, None) for f in FIELDS] + [
    ("rng", {"bit_generator": "PCG64", "state": "garbage"}), ("rng", "x"), ("step", -1), ("epoch", 1.5),
    ("optimizer", {"type": "SGD", "hyper": {"lr": 0.1}}), ("history", [1, 2]), ("early_stopping", {"best": 1.0})])
def test_bad_checkpoint_metadata_is_refused_before_anything_changes(tmp_path, saved_run, field, value):
    arrays, meta = saved_run
    meta = {k: v for k, v in meta.items() if k != field} if value is None else {**meta, field: value}
    checkpoint.save(tmp_path / "bad.npz", arrays, meta)
    fresh = python_trainer(optimizer=Adam(lr=0.01))
    before = ({k: v.copy() for k, v in fresh.step.params.items()}, fresh.rng.bit_generator.state,
              fresh.optimizer.state_dict(), fresh.history.to_dict(), fresh.epoch, fresh.step.steps)
    with pytest.raises(checkpoint.CheckpointError, match="nothing was loaded") as err:
        fresh.load(tmp_path / "bad.npz")
    if value is None or field in ("rng", "step", "epoch"):
        assert f"{field!r}" in str(err.value)
    after = ({k: v.copy() for k, v in fresh.step.params.items()}, fresh.rng.bit_generator.state,
             fresh.optimizer.state_dict(), fresh.history.to_dict(), fresh.epoch, fresh.step.steps)
    for k, v in before[0].items():
        np.testing.assert_array_equal(after[0][k], v, err_msg=k)
    assert after[1:] == before[1:]


def test_a_finite_but_exploding_loss_stops_and_the_advice_works_when_followed():
    X, y = blobs(64)
    trainer = diverging_trainer(1e6)  # the case: the loss reaches ~1e27 and stays finite
    start = {k: v.copy() for k, v in trainer.step.params.items()}
    with pytest.raises(NumericError) as err:
        trainer.fit(X, y, epochs=20, batch_size=16)
    message = str(err.value)
    assert "the loss grew to" in message and "more than 10000 times its first value" in message
    assert "lower the learning rate (trainer.optimizer.hyper['lr'], now 1e+06)" in message
    assert "then call fit again" in message
    assert trainer.epoch == 0 and trainer.step.steps == 0
    for k, v in start.items():  # the last good parameters: the epoch's start
        np.testing.assert_array_equal(trainer.step.params[k], v, err_msg=k)
    trainer.optimizer.hyper["lr"] = 0.1  # follow the advice
    losses = trainer.fit(X, y, epochs=5, batch_size=16).metrics["loss"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.5 * losses[0]


def test_the_divergence_factor_is_measured_from_the_first_loss():
    trainer = diverging_trainer(0.1)
    assert Trainer.divergence_factor == 1e4
    assert trainer._loss_limit(3.0) == 3e4  # the first loss sets the scale
    assert trainer._loss_limit(1e3) == 3e4
    assert diverging_trainer(0.1)._loss_limit(0.01) == 1e4  # at least 1
