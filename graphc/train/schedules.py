"""Learning-rate schedules: host-side functions of the step count.

A schedule is given to an optimizer in place of a number (`SGD(lr=StepDecay(0.1,
every=100))`).  The optimizer evaluates it before each step and feeds the value
to the compiled step as a scalar input, so the learning rate changes without
recompiling.  `step` is always the 0-based number of steps already taken: the
first step is trained with `schedule(0)`.

`ReduceLROnPlateau` is driven by epochs instead: call `optimizer.epoch_end(epoch,
metrics)` after each epoch.  Every schedule's `state_dict()` is JSON-able and
restores it mid-run with `load_state_dict` (or `Schedule.from_state_dict`).
"""
import math
import numbers

from graphc.errors import GraphcError


class Schedule:
    """Base class.  Subclasses list their constructor arguments in `config` and
    any state that changes as training runs in `state`; both go in state_dict."""
    config = ()  # constructor arguments, in order
    state = ()  # mutable attributes, e.g. ReduceLROnPlateau's best metric
    _registry = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Schedule._registry[cls.__name__] = cls

    def __call__(self, step):
        """The value for the step after `step` steps have been taken."""
        raise NotImplementedError

    def epoch_end(self, epoch, metrics):
        """Called after each epoch with metrics such as {"loss": .., "val_loss": ..}."""

    def state_dict(self):
        return {"type": type(self).__name__,
                "config": {k: getattr(self, k) for k in self.config},
                "state": {k: getattr(self, k) for k in self.state}}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise GraphcError(f"{type(self).__name__}.load_state_dict: got the state of {got!r}")
        config, saved = state.get("config", {}), state.get("state", {})
        for what, got, expected in (("config", config, self.config), ("state", saved, self.state)):
            if set(got) != set(expected):
                raise GraphcError(f"{type(self).__name__}.load_state_dict: {what} keys {sorted(got)}, "
                                  f"expected {sorted(expected)}")
        fresh = type(self)(**config)  # validates the configuration
        vars(self).update(vars(fresh))
        vars(self).update(saved)

    @staticmethod
    def from_state_dict(state):
        """A new schedule restored from `state_dict()`'s output."""
        cls = Schedule._registry.get(state.get("type")) if isinstance(state, dict) else None
        if cls is None:
            raise GraphcError(f"not the state of a schedule: {state!r}")
        schedule = cls.__new__(cls)
        schedule.load_state_dict(state)  # checks the keys and builds through __init__
        return schedule

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.config)
        return f"{type(self).__name__}({args})"


def _number(owner, name, value, ok, allowed):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        raise GraphcError(f"{owner}: {name}={value!r} must be {allowed}")
    return value


def _lr(owner, lr):
    return float(_number(owner, "lr", lr, lambda v: v > 0, "a finite number > 0"))


def _count(owner, name, value, least):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise GraphcError(f"{owner}: {name}={value!r} must be an integer >= {least}")
    return int(value)


class ExponentialDecay(Schedule):
    """lr * rate ** (step / every); with staircase=True, lr * rate ** floor(step / every)."""
    config = ("lr", "rate", "every", "staircase")

    def __init__(self, lr, rate, every=1, staircase=False):
        self.lr = _lr("ExponentialDecay", lr)
        self.rate = float(_number("ExponentialDecay", "rate", rate, lambda v: 0 < v <= 1, "in (0, 1]"))
        self.every = _count("ExponentialDecay", "every", every, 1)
        self.staircase = bool(staircase)

    def __call__(self, step):
        return self.lr * self.rate ** (step // self.every if self.staircase else step / self.every)


class InverseSqrtDecay(Schedule):
    """The 1/sqrt(t) schedule: lr / sqrt(1 + step / scale).  The first step uses lr;
    after `scale` steps the rate is lr / sqrt(2), after 3 * scale steps lr / 2."""
    config = ("lr", "scale")

    def __init__(self, lr, scale=1.0):
        self.lr = _lr("InverseSqrtDecay", lr)
        self.scale = float(_number("InverseSqrtDecay", "scale", scale, lambda v: v > 0, "a finite number > 0"))

    def __call__(self, step):
        return self.lr / math.sqrt(1.0 + step / self.scale)


class StepDecay(Schedule):
    """lr * drop ** floor(step / every): the rate is multiplied by `drop` every `every` steps."""
    config = ("lr", "drop", "every")

    def __init__(self, lr, drop=0.5, every=1000):
        self.lr = _lr("StepDecay", lr)
        self.drop = float(_number("StepDecay", "drop", drop, lambda v: 0 < v <= 1, "in (0, 1]"))
        self.every = _count("StepDecay", "every", every, 1)

    def __call__(self, step):
        return self.lr * self.drop ** (step // self.every)


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by `factor` once `metrics[monitor]` (a loss: lower is
    better) has gone `patience` epochs without improving; an epoch improves when
    its value is below best - min_delta.  After a reduction, the next `cooldown`
    epochs are not counted.  The rate never goes below `min_lr`; a NaN metric
    counts as no improvement.  The rate does not depend on the step."""
    config = ("lr", "factor", "patience", "min_delta", "min_lr", "monitor", "cooldown")
    state = ("current", "best", "wait", "cooldown_counter")

    def __init__(self, lr, factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0, monitor="val_loss", cooldown=0):
        owner = "ReduceLROnPlateau"
        self.lr = _lr(owner, lr)
        self.factor = float(_number(owner, "factor", factor, lambda v: 0 < v < 1, "in (0, 1)"))
        self.patience = _count(owner, "patience", patience, 0)
        self.min_delta = float(_number(owner, "min_delta", min_delta, lambda v: v >= 0, "a finite number >= 0"))
        self.min_lr = float(_number(owner, "min_lr", min_lr, lambda v: 0 <= v <= self.lr, f"in [0, lr={self.lr!r}]"))
        if not isinstance(monitor, str) or not monitor:
            raise GraphcError(f"{owner}: monitor={monitor!r} must be a metric name such as 'val_loss'")
        self.monitor = monitor
        self.cooldown = _count(owner, "cooldown", cooldown, 0)
        self.current, self.best, self.wait, self.cooldown_counter = self.lr, None, 0, 0

    def __call__(self, step):
        return self.current

    def epoch_end(self, epoch, metrics):
        if self.monitor not in metrics:
            raise GraphcError(f"ReduceLROnPlateau: monitored metric {self.monitor!r} is not among the "
                              f"metrics of epoch {epoch}: {sorted(metrics)}")
        try:
            value = float(metrics[self.monitor])
        except (TypeError, ValueError):
            raise GraphcError(f"ReduceLROnPlateau: metric {self.monitor!r}={metrics[self.monitor]!r} "
                              f"of epoch {epoch} is not a number") from None
        improved = not math.isnan(value) and (self.best is None or value < self.best - self.min_delta)
        if improved:
            self.best, self.wait = value, 0
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
        elif not improved:
            self.wait += 1
            if self.wait >= self.patience and self.current > self.min_lr:
                self.current = max(self.current * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0

    def __repr__(self):
        return f"{super().__repr__()} [current={self.current!r}]"
