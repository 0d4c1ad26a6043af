"""Optimizers: the compiled step's parameter trajectory against NumPy references
written directly from each optimizer's textbook formula.

The model's gradient is known in closed form: with loss
    sum(0.5 * a * W * W + c * W) + 0.5 * sum((b - t) ** 2)
the gradients are g_W = a * W + c and g_b = b - t, for inputs a, c, t fed anew
each step (so the gradients change sign and size between steps).
"""
import inspect
import json

import numpy as np
import pytest

import graphc as gc
from graphc import GraphcError
from graphc.frontend.dsl import Input, Param
from graphc.train import build_step, compile_step
from graphc.train import optim
from graphc.train.optim import SGD, Adagrad, Adam, Momentum, Nesterov, Optimizer, RMSProp
from graphc.train.schedules import ExponentialDecay, ReduceLROnPlateau, StepDecay

BACKENDS = ("python", "numba")
STEPS = 5


def quad(a, c, t, W, b):
    return gc.sum(0.5 * a * W * W + c * W) + 0.5 * gc.sum((b - t) * (b - t))


def _model(dtype="float64"):
    return gc.trace(quad, Input((2, 3), dtype), Input((2, 3), dtype), Input((3,), dtype),
                    Param((2, 3), dtype), Param((3,), dtype), dtype=dtype)


def _params():
    rng = np.random.default_rng(1)
    return {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}


def _feeds(k):
    rng = np.random.default_rng(100 + k)
    return {"a": rng.uniform(0.5, 2.0, (2, 3)), "c": rng.standard_normal((2, 3)), "t": rng.standard_normal(3)}


def _grads(params, feeds):
    return {"W": feeds["a"] * params["W"] + feeds["c"], "b": params["b"] - feeds["t"]}


# ----- NumPy references: p, g, state {slot: array} (updated in place), hyper h, t = 1-based step -----
def ref_sgd(p, g, s, h, t):
    return p - h["lr"] * g


def ref_momentum(p, g, s, h, t):
    s["velocity"] = h["momentum"] * s["velocity"] - h["lr"] * g
    return p + s["velocity"]


def ref_nesterov(p, g, s, h, t):
    v_prev = s["velocity"]
    s["velocity"] = h["momentum"] * v_prev - h["lr"] * g
    return p - h["momentum"] * v_prev + (1 + h["momentum"]) * s["velocity"]


def ref_adagrad(p, g, s, h, t):
    s["cache"] = s["cache"] + g ** 2
    return p - h["lr"] * g / (np.sqrt(s["cache"]) + h["eps"])


def ref_rmsprop(p, g, s, h, t):
    s["cache"] = h["rho"] * s["cache"] + (1 - h["rho"]) * g ** 2
    return p - h["lr"] * g / (np.sqrt(s["cache"]) + h["eps"])


def ref_adam(p, g, s, h, t):
    s["m"] = h["beta1"] * s["m"] + (1 - h["beta1"]) * g
    s["v"] = h["beta2"] * s["v"] + (1 - h["beta2"]) * g ** 2
    mhat = s["m"] / (1 - h["beta1"] ** t)
    vhat = s["v"] / (1 - h["beta2"] ** t)
    return p - h["lr"] * mhat / (np.sqrt(vhat) + h["eps"])


# optimizer class -> (reference, non-default hyperparameters)
CASES = {
    SGD: (ref_sgd, {"lr": 0.1}),
    Momentum: (ref_momentum, {"lr": 0.05, "momentum": 0.8}),
    Nesterov: (ref_nesterov, {"lr": 0.05, "momentum": 0.8}),
    Adagrad: (ref_adagrad, {"lr": 0.3, "eps": 1e-6}),
    RMSProp: (ref_rmsprop, {"lr": 0.01, "rho": 0.85, "eps": 1e-6}),
    Adam: (ref_adam, {"lr": 0.02, "beta1": 0.8, "beta2": 0.95, "eps": 1e-7}),
}


def _reference_run(cls, hyper_at, steps=STEPS, params=None):
    """Params (and slots) after each step; hyper_at(k) gives step k's hyperparameters."""
    ref, _ = CASES[cls]
    params = {k: v.copy() for k, v in (params or _params()).items()}
    state = {name: {slot: np.zeros_like(p) for slot in cls.slots} for name, p in params.items()}
    history = []
    for k in range(steps):
        grads = _grads(params, _feeds(k))
        params = {name: ref(params[name], grads[name], state[name], hyper_at(k), k + 1) for name in params}
        history.append(({n: v.copy() for n, v in params.items()},
                        {f"{n}.{slot}": v.copy() for n, s in state.items() for slot, v in s.items()}))
    return history


def _assert_trajectory(step, history, rtol=1e-12, atol=1e-14, between=None):
    for k, (params, slots) in enumerate(history):
        step(_feeds(k))
        if between:
            between(k)
        for name, expected in {**params, **slots}.items():
            np.testing.assert_allclose(step.params[name], expected, rtol=rtol, atol=atol,
                                       err_msg=f"{name} after step {k + 1}")


def _optimizer_classes():
    return sorted((c for _, c in inspect.getmembers(optim, inspect.isclass)
                   if issubclass(c, Optimizer) and c is not Optimizer), key=lambda c: c.__name__)


def test_every_optimizer_has_a_reference():
    assert set(_optimizer_classes()) == set(CASES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_step_matches_numpy_reference(cls, backend):
    _, hyper = CASES[cls]
    step = compile_step(_model(), _params(), cls(**hyper), backend=backend)
    assert set(step.params) == {"W", "b"} | {f"{p}.{s}" for p in "Wb" for s in cls.slots}
    _assert_trajectory(step, _reference_run(cls, lambda k: hyper))


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_float32_follows_float64_reference(backend):
    _, hyper = CASES[Adam]
    params = {k: v.astype(np.float32) for k, v in _params().items()}
    step = compile_step(_model("float32"), params, Adam(**hyper), backend=backend)
    for k, (expected, _) in enumerate(_reference_run(Adam, lambda k: hyper, params=params)):
        step({n: v.astype(np.float32) for n, v in _feeds(k).items()})
        for name in expected:
            assert step.params[name].dtype == np.float32
            np.testing.assert_allclose(step.params[name], expected[name], rtol=2e-5, atol=2e-6)


class _NesterovTwoReads(Nesterov):
    """Nesterov as the formula reads, with the old velocity read twice, once
    after the new velocity is computed."""

    def update(self, p, g, state, hyper):
        mu, v = hyper["momentum"], state["velocity"]
        v_new = mu * v - hyper["lr"] * g
        return p - mu * v + (1 + mu) * v_new, {"velocity": v_new}


def test_update_reading_old_state_after_new_state():
    """A state slot updated in place inside a fused loop must not be stored before
    a later member of that loop reads its old value (a codegen bug this found)."""
    _, hyper = CASES[Nesterov]
    step = compile_step(_model(), _params(), _NesterovTwoReads(**hyper), backend="numba")
    _assert_trajectory(step, _reference_run(Nesterov, lambda k: hyper))


def test_default_hyperparameters():
    assert SGD().hyper == {"lr": 0.01}
    assert Momentum().hyper == Nesterov().hyper == {"lr": 0.01, "momentum": 0.9}
    assert Adagrad().hyper == {"lr": 0.01, "eps": 1e-8}
    assert RMSProp().hyper == {"lr": 0.001, "rho": 0.9, "eps": 1e-8}
    assert Adam().hyper == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


# ----- Adam's bias correction --------------------------------------------------------------
def test_adam_correction_factors_by_hand():
    adam = Adam(beta1=0.5, beta2=0.75)
    assert adam.input_keys() == ("lr", "beta1", "beta2", "eps", "c1", "c2")
    v0, v1 = adam.values(0), adam.values(1)
    assert (v0["c1"], v0["c2"]) == (2.0, 4.0)  # 1/(1-0.5), 1/(1-0.75)
    assert v1["c1"] == pytest.approx(4 / 3, rel=1e-15)  # 1/(1-0.25)
    assert v1["c2"] == pytest.approx(16 / 7, rel=1e-15)  # 1/(1-0.5625)
    graph = build_step(_model(), adam)
    names = {graph.name_of(n) for n in graph.inputs}
    assert {"opt.lr", "opt.beta1", "opt.beta2", "opt.eps", "opt.c1", "opt.c2"} <= names


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_adam_first_step_is_lr_times_sign_of_gradient(betas):
    """At t=1, mhat = g and vhat = g*g, so the step is lr * g / (|g| + eps) = lr * sign(g)."""
    lr = 0.1
    step = compile_step(_model(), _params(), Adam(lr=lr, beta1=betas[0], beta2=betas[1], eps=1e-12),
                        backend="numba")
    before, grads = _params(), _grads(_params(), _feeds(0))
    step(_feeds(0))
    for name in before:
        np.testing.assert_allclose(step.params[name] - before[name], -lr * np.sign(grads[name]), rtol=1e-9)


# ----- hyperparameter validation ---------------------------------------------------------------
@pytest.mark.parametrize("cls, hyper, message", [
    (SGD, {"lr": 0}, r"SGD: hyperparameter lr=0 must be a finite number > 0"),
    (SGD, {"lr": -0.1}, r"SGD: hyperparameter lr=-0.1 must be a finite number > 0"),
    (SGD, {"lr": float("nan")}, r"SGD: hyperparameter lr=nan must be"),
    (SGD, {"lr": float("inf")}, r"SGD: hyperparameter lr=inf must be"),
    (SGD, {"lr": "0.1"}, r"SGD: hyperparameter lr='0.1' must be a finite number > 0 \(or a Schedule\)"),
    (SGD, {"lr": True}, r"SGD: hyperparameter lr=True must be"),
    (Momentum, {"momentum": 1.0}, r"Momentum: hyperparameter momentum=1.0 must be in \[0, 1\)"),
    (Momentum, {"momentum": -0.1}, r"Momentum: hyperparameter momentum=-0.1 must be in \[0, 1\)"),
    (Nesterov, {"momentum": 1.5}, r"Nesterov: hyperparameter momentum=1.5 must be in \[0, 1\)"),
    (Adagrad, {"eps": 0.0}, r"Adagrad: hyperparameter eps=0.0 must be a finite number > 0"),
    (RMSProp, {"rho": 1}, r"RMSProp: hyperparameter rho=1 must be in \[0, 1\)"),
    (RMSProp, {"eps": -1e-8}, r"RMSProp: hyperparameter eps=-1e-08 must be a finite number > 0"),
    (Adam, {"beta1": 1.0}, r"Adam: hyperparameter beta1=1.0 must be in \[0, 1\)"),
    (Adam, {"beta2": -0.5}, r"Adam: hyperparameter beta2=-0.5 must be in \[0, 1\)"),
    (Adam, {"lr": 0.0}, r"Adam: hyperparameter lr=0.0 must be a finite number > 0"),
])
def test_bad_hyperparameters_are_rejected(cls, hyper, message):
    with pytest.raises(GraphcError, match=message):
        cls(**hyper)
    opt = cls()
    with pytest.raises(GraphcError, match=message):  # set between steps: checked too
        opt.hyper.update(hyper)
    assert opt.hyper == cls().hyper  # unchanged


def test_hyperparameter_names_are_fixed():
    adam = Adam()
    with pytest.raises(GraphcError, match="Adam has no hyperparameter 'c1'; it has lr, beta1, beta2, eps"):
        adam.hyper["c1"] = 2.0
    with pytest.raises(GraphcError, match="fixed"):
        del adam.hyper["lr"]
    with pytest.raises(TypeError):
        SGD(momentum=0.9)
    adam.hyper["lr"] = 0.5
    assert adam.values(0)["lr"] == 0.5


def test_scheduled_values_are_checked_when_used():
    opt = Momentum(momentum=ExponentialDecay(1.5, rate=0.5))  # 1.5 at step 0, 0.75 at step 1
    with pytest.raises(GraphcError, match=r"Momentum: hyperparameter momentum=1.5 \(from ExponentialDecay\(.*\) "
                                          r"at step 0\) must be in \[0, 1\)"):
        opt.values(0)
    assert opt.values(1) == {"lr": 0.01, "momentum": 0.75}


# ----- schedules inside the compiled step --------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_step_decay_drives_lr_without_recompiling(backend):
    schedule = StepDecay(0.1, drop=0.5, every=2)
    step = compile_step(_model(), _params(), SGD(lr=schedule), backend=backend)
    compiled = step.compiled
    _assert_trajectory(step, _reference_run(SGD, lambda k: {"lr": 0.1 * 0.5 ** (k // 2)}))
    assert step.compiled is compiled and step.steps == STEPS


def test_every_hyperparameter_can_follow_a_schedule():
    lr, mu = ExponentialDecay(0.05, rate=0.5), ExponentialDecay(0.9, rate=0.8, every=2, staircase=True)
    step = compile_step(_model(), _params(), Momentum(lr=lr, momentum=mu), backend="numba")
    _assert_trajectory(step, _reference_run(
        Momentum, lambda k: {"lr": 0.05 * 0.5 ** k, "momentum": 0.9 * 0.8 ** (k // 2)}))


def test_plateau_lowers_lr_between_epochs():
    """Two steps an epoch; the loss never improves after epoch 0, patience 1, so
    the rate halves after epochs 1 and 2: steps 0-3 use 0.2, 4-5 use 0.1, 6-7 0.05."""
    opt = Adam(lr=ReduceLROnPlateau(0.2, factor=0.5, patience=1, monitor="loss"), beta1=0.8, beta2=0.95)
    step = compile_step(_model(), _params(), opt, backend="numba")
    lrs = [0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    hyper = dict(CASES[Adam][1], eps=1e-8)
    history = _reference_run(Adam, lambda k: dict(hyper, lr=lrs[k]), steps=8)

    def between(k):
        if k % 2 == 1:
            opt.epoch_end(k // 2, {"loss": 1.0})
    _assert_trajectory(step, history, between=between)
    assert opt.values(step.steps)["lr"] == 0.025


# ----- state_dict / epoch_end -----------------------------------------------------------------
def test_state_dict_round_trip_restores_a_plateau_mid_run():
    def run(opt, losses):
        for epoch, loss in losses:
            opt.epoch_end(epoch, {"loss": 2.0, "val_loss": loss})
        return opt.values(0)["lr"]

    plateau = ReduceLROnPlateau(0.1, factor=0.5, patience=2, min_delta=0.0)
    first, rest = [(0, 1.0), (1, 1.0)], [(2, 1.0), (3, 1.0), (4, 1.0)]
    a = RMSProp(lr=plateau, rho=0.8)
    run(a, first)  # one epoch from a reduction
    saved = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    b = RMSProp()
    b.load_state_dict(saved)
    assert repr(b) == repr(a) and b.state_dict() == saved
    assert run(a, rest) == run(b, rest) == 0.025  # reduced at epochs 2 and 4 in both
    # restoring into a schedule of the same type keeps the object the user holds
    c_plateau = ReduceLROnPlateau(1.0)
    c = RMSProp(lr=c_plateau)
    c.load_state_dict(saved)
    assert c.hyper["lr"] is c_plateau and c_plateau.current == 0.1 and c_plateau.wait == 1


def test_load_state_dict_rejects_bad_state_and_changes_nothing():
    opt = Adam(lr=0.01)
    with pytest.raises(GraphcError, match="Adam.load_state_dict: got the state of 'SGD'"):
        opt.load_state_dict(SGD().state_dict())
    with pytest.raises(GraphcError, match="hyperparameters"):
        opt.load_state_dict({"type": "Adam", "hyper": {"lr": 0.1}})
    bad = Adam(lr=0.5).state_dict()
    bad["hyper"]["beta2"] = 1.0
    with pytest.raises(GraphcError, match="beta2=1.0 must be in"):
        opt.load_state_dict(bad)
    assert opt.hyper["lr"] == 0.01


def test_epoch_end_reaches_each_schedule_once():
    shared = ReduceLROnPlateau(0.5, factor=0.5, patience=0, monitor="loss")
    opt = Momentum(lr=shared, momentum=shared)
    opt.epoch_end(0, {"loss": 1.0})
    opt.epoch_end(1, {"loss": 1.0})  # no improvement, patience 0: one reduction
    assert opt.values(3) == {"lr": 0.25, "momentum": 0.25}
    with pytest.raises(GraphcError, match="monitored metric 'loss' is not among the metrics of epoch 2"):
        opt.epoch_end(2, {"val_loss": 1.0})
    SGD(lr=0.1).epoch_end(0, {})  # nothing scheduled: nothing to do
