"""Learning-rate schedules against hand-computed values."""
import json
import math

import pytest

from graphc import GraphcError
from graphc.train.optim import SGD
from graphc.train.schedules import (ExponentialDecay, InverseSqrtDecay, ReduceLROnPlateau, Schedule,
                                    StepDecay)


@pytest.mark.parametrize("schedule, expected", [
    # lr * rate ** (step / every)
    (ExponentialDecay(0.1, rate=0.5, every=2), [0.1, 0.1 / math.sqrt(2), 0.05, 0.05 / math.sqrt(2), 0.025]),
    (ExponentialDecay(0.1, rate=0.5, every=2, staircase=True), [0.1, 0.1, 0.05, 0.05, 0.025]),
    (ExponentialDecay(3.0, rate=1.0), [3.0] * 5),
    # lr / sqrt(1 + step / scale)
    (InverseSqrtDecay(0.2, scale=4), {0: 0.2, 4: 0.2 / math.sqrt(2), 12: 0.1, 32: 0.2 / 3}),
    (InverseSqrtDecay(1.0), {0: 1.0, 3: 0.5, 8: 1 / 3, 99: 0.1}),
    # lr * drop ** floor(step / every)
    (StepDecay(1.0, drop=0.1, every=3), [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]),
    (StepDecay(0.8, every=1), [0.8, 0.4, 0.2, 0.1]),
], ids=repr)
def test_values_match_closed_forms(schedule, expected):
    expected = dict(enumerate(expected)) if isinstance(expected, list) else expected
    assert {step: schedule(step) for step in expected} == pytest.approx(expected, rel=1e-15)


def test_optimizer_evaluates_its_schedule_at_the_step():
    opt = SGD(lr=StepDecay(0.5, drop=0.5, every=10))
    assert [opt.values(k)["lr"] for k in (0, 9, 10, 25)] == [0.5, 0.5, 0.25, 0.125]
    assert type(opt.values(0)["lr"]) is float


# ----- ReduceLROnPlateau -----------------------------------------------------------------
# patience 2, min_delta 0.01, cooldown 1, factor 0.5, floor 0.2.  By hand:
#  e0 1.0    first value: best 1.0
#  e1 0.995  not below 0.99: wait 1
#  e2 0.98   improves: best 0.98, wait 0
#  e3 0.98   wait 1
#  e4 0.975  not below 0.97: wait 2 = patience -> lr 0.5, cooldown 1
#  e5 0.99   cooldown epoch, not counted
#  e6 0.99   wait 1
#  e7 0.96   improves: best 0.96
#  e8 nan    no improvement: wait 1
#  e9 0.96   wait 2 -> lr 0.25, cooldown 1
#  e10 1.0   cooldown
#  e11 1.0   wait 1
#  e12 1.0   wait 2 -> lr max(0.125, 0.2) = 0.2, cooldown 1
#  e13 1.0   cooldown
#  e14-16    wait 1, 2, 3: already at min_lr, no change
METRICS = [1.0, 0.995, 0.98, 0.98, 0.975, 0.99, 0.99, 0.96, float("nan"), 0.96, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
LRS = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2]


def _plateau():
    return ReduceLROnPlateau(1.0, factor=0.5, patience=2, min_delta=0.01, min_lr=0.2, cooldown=1)


def _run(schedule, epochs):
    lrs = []
    for epoch in epochs:
        schedule.epoch_end(epoch, {"loss": 123.0, "val_loss": METRICS[epoch]})
        lrs.append(schedule(step=1000 * epoch))  # the step does not matter
    return lrs


def test_plateau_follows_hand_worked_sequence():
    schedule = _plateau()
    assert schedule(0) == 1.0
    assert _run(schedule, range(len(METRICS))) == LRS


def test_plateau_patience_zero_and_no_cooldown():
    schedule = ReduceLROnPlateau(1.0, factor=0.1, patience=0, min_delta=0.0, monitor="loss")
    lrs = []
    for epoch, loss in enumerate([3.0, 2.0, 2.0, 1.0, 1.0]):  # every non-improving epoch reduces
        schedule.epoch_end(epoch, {"loss": loss})
        lrs.append(schedule(0))
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01], rel=1e-15)


@pytest.mark.parametrize("split", [3, 5, 8, 10])
def test_plateau_state_dict_round_trip_mid_run(split):
    a = _plateau()
    _run(a, range(split))
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    assert state["type"] == "ReduceLROnPlateau" and set(state["state"]) == {"current", "best", "wait", "cooldown_counter"}
    b = ReduceLROnPlateau(0.3, monitor="loss")  # a different configuration: replaced by the saved one
    b.load_state_dict(state)
    c = Schedule.from_state_dict(state)
    assert repr(b) == repr(c) == repr(a)
    rest = range(split, len(METRICS))
    assert _run(b, rest) == _run(c, rest) == _run(a, rest) == LRS[split:]


def test_stateless_schedules_round_trip():
    for schedule in (ExponentialDecay(0.1, 0.9, every=5, staircase=True), InverseSqrtDecay(0.3, scale=7.5),
                     StepDecay(0.2, drop=0.25, every=4)):
        copy = Schedule.from_state_dict(json.loads(json.dumps(schedule.state_dict())))
        assert type(copy) is type(schedule) and repr(copy) == repr(schedule)
        assert [copy(k) for k in range(20)] == [schedule(k) for k in range(20)]


def test_plateau_metric_errors():
    schedule = _plateau()
    with pytest.raises(GraphcError, match=r"monitored metric 'val_loss' is not among the metrics of epoch 3: \['loss'\]"):
        schedule.epoch_end(3, {"loss": 1.0})
    with pytest.raises(GraphcError, match="metric 'val_loss'='low' of epoch 0 is not a number"):
        schedule.epoch_end(0, {"val_loss": "low"})


def test_load_state_dict_errors():
    with pytest.raises(GraphcError, match="StepDecay.load_state_dict: got the state of 'ExponentialDecay'"):
        StepDecay(0.1).load_state_dict(ExponentialDecay(0.1, 0.5).state_dict())
    state = _plateau().state_dict()
    del state["state"]["wait"]
    with pytest.raises(GraphcError, match=r"state keys \['best', 'cooldown_counter', 'current'\]"):
        _plateau().load_state_dict(state)
    state = _plateau().state_dict()
    state["config"]["factor"] = 2.0
    with pytest.raises(GraphcError, match=r"factor=2.0 must be in \(0, 1\)"):
        Schedule.from_state_dict(state)
    with pytest.raises(GraphcError, match="not the state of a schedule"):
        Schedule.from_state_dict({"type": "Nope"})


@pytest.mark.parametrize("make, message", [
    (lambda: ExponentialDecay(0.0, 0.5), r"ExponentialDecay: lr=0.0 must be a finite number > 0"),
    (lambda: ExponentialDecay(float("inf"), 0.5), r"ExponentialDecay: lr=inf must be"),
    (lambda: ExponentialDecay(0.1, 0.0), r"ExponentialDecay: rate=0.0 must be in \(0, 1\]"),
    (lambda: ExponentialDecay(0.1, 1.5), r"ExponentialDecay: rate=1.5 must be in \(0, 1\]"),
    (lambda: ExponentialDecay(0.1, 0.5, every=0), r"ExponentialDecay: every=0 must be an integer >= 1"),
    (lambda: ExponentialDecay(0.1, 0.5, every=2.5), r"ExponentialDecay: every=2.5 must be an integer >= 1"),
    (lambda: InverseSqrtDecay(-1.0), r"InverseSqrtDecay: lr=-1.0 must be a finite number > 0"),
    (lambda: InverseSqrtDecay(0.1, scale=0), r"InverseSqrtDecay: scale=0 must be a finite number > 0"),
    (lambda: StepDecay(0.1, drop=0), r"StepDecay: drop=0 must be in \(0, 1\]"),
    (lambda: StepDecay(0.1, every=True), r"StepDecay: every=True must be an integer >= 1"),
    (lambda: StepDecay("0.1"), r"StepDecay: lr='0.1' must be a finite number > 0"),
    (lambda: ReduceLROnPlateau(0.1, factor=1.0), r"ReduceLROnPlateau: factor=1.0 must be in \(0, 1\)"),
    (lambda: ReduceLROnPlateau(0.1, factor=0), r"ReduceLROnPlateau: factor=0 must be in \(0, 1\)"),
    (lambda: ReduceLROnPlateau(0.1, patience=-1), r"ReduceLROnPlateau: patience=-1 must be an integer >= 0"),
    (lambda: ReduceLROnPlateau(0.1, cooldown=0.5), r"ReduceLROnPlateau: cooldown=0.5 must be an integer >= 0"),
    (lambda: ReduceLROnPlateau(0.1, min_delta=-1e-3), r"ReduceLROnPlateau: min_delta=-0.001 must be a finite number >= 0"),
    (lambda: ReduceLROnPlateau(0.1, min_lr=0.5), r"ReduceLROnPlateau: min_lr=0.5 must be in \[0, lr=0.1\]"),
    (lambda: ReduceLROnPlateau(0.1, monitor=""), r"ReduceLROnPlateau: monitor='' must be a metric name"),
])
def test_bad_arguments_are_rejected(make, message):
    with pytest.raises(GraphcError, match=message):
        make()
