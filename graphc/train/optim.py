"""Optimizers as graph builders.

An optimizer does not touch arrays: it adds the nodes that compute each
parameter's new value (and its state's), so the update is emitted and fused
into the compiled step like any other op.  Hyperparameters such as the
learning rate become scalar inputs of the step graph, so a schedule can change
them between steps without recompiling: any hyperparameter may be a number or
a `Schedule`, evaluated host-side before each step by `values(step)`.

Per-parameter state (velocity, caches, moments) lives in zero-initialised
slots held by the step next to the parameters, named `<param>.<slot>`.
"""
import math
import numbers
from abc import ABC, abstractmethod

from graphc.frontend import dsl as F
from graphc.errors import GraphcError
from graphc.train.schedules import Schedule

_UNIT = ("in [0, 1)", lambda v: 0 <= v < 1)
_POSITIVE = ("a finite number > 0", lambda v: v > 0)
_RULES = {"lr": _POSITIVE, "eps": _POSITIVE, "momentum": _UNIT, "rho": _UNIT, "beta1": _UNIT, "beta2": _UNIT}
_DEFAULT_RULE = ("a finite number >= 0", lambda v: v >= 0)  # hyperparameters of user-defined optimizers


def _check_hyper(owner, name, value, source=""):
    """`value` if it is allowed for hyperparameter `name`, else a GraphcError
    naming the optimizer, the hyperparameter and the allowed range."""
    if isinstance(value, Schedule) and not source:
        return value  # its values are checked as they are used
    allowed, ok = _RULES.get(name, _DEFAULT_RULE)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        what = f"{name}={value!r}{source}"
        raise GraphcError(f"{owner}: hyperparameter {what} must be {allowed}"
                          + ("" if source else " (or a Schedule)"))
    return value


class Hyperparameters(dict):
    """An optimizer's hyperparameters as the user gave them, numbers or schedules.
    The set of names is fixed; a value is checked as it is set, so
    `optimizer.hyper["lr"] = 0.05` between steps is validated too."""

    def __init__(self, owner, values):
        super().__init__()
        self.owner = owner
        for name, value in values.items():
            super().__setitem__(name, _check_hyper(owner, name, value))

    def __setitem__(self, name, value):
        if name not in self:
            raise GraphcError(f"{self.owner} has no hyperparameter {name!r}; it has {', '.join(self)}")
        super().__setitem__(name, _check_hyper(self.owner, name, value))

    def update(self, *args, **kwargs):
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def _fixed(self, *args, **kwargs):
        raise GraphcError(f"{self.owner}: the set of hyperparameters is fixed; assign new values instead")

    __delitem__ = pop = popitem = clear = setdefault = _fixed

    def __reduce__(self):  # copy and pickle rebuild through __init__
        return type(self), (self.owner, dict(self))


class Optimizer(ABC):
    """Base class.  Subclasses name their hyperparameters (constructor keywords)
    and per-parameter state slots and build the update with `update`."""
    slots = ()  # per-parameter state arrays, e.g. ("velocity",), zero at the start
    derived = ()  # step inputs `values` computes from the hyperparameters; not user-settable

    def __init__(self, **hyper):
        self.hyper = Hyperparameters(type(self).__name__, hyper)

    def input_keys(self):
        """Names of the step graph's scalar inputs (prefixed `opt.` there)."""
        return (*self.hyper, *self.derived)

    @abstractmethod
    def update(self, p, g, state, hyper):
        """New value of parameter `p` given its gradient `g` (both graph Values),
        its `state` {slot: Value} and the hyperparameter inputs {name: Value}.
        Returns (new_p, {slot: new state Value})."""

    def values(self, step):
        """Plain float values of `input_keys()` for the step after `step` steps
        (0-based); schedules are evaluated at `step`."""
        owner, values = type(self).__name__, {}
        for name, value in self.hyper.items():
            if isinstance(value, Schedule):
                value = _check_hyper(owner, name, value(step), f" (from {value!r} at step {step})")
            values[name] = float(value)
        return values

    def epoch_end(self, epoch, metrics):
        """Forward the end of an epoch to the schedules (ReduceLROnPlateau);
        `metrics` is a dict such as {"loss": .., "val_loss": ..}."""
        seen = set()
        for value in self.hyper.values():
            if isinstance(value, Schedule) and id(value) not in seen:
                seen.add(id(value))
                value.epoch_end(epoch, metrics)

    def state_dict(self):
        """The host-side state as a JSON-able dict: hyperparameter values and the
        schedules' states.  (The per-parameter slots are held by the Step.)"""
        return {"type": type(self).__name__,
                "hyper": {k: v.state_dict() if isinstance(v, Schedule) else float(v) for k, v in self.hyper.items()}}

    def load_state_dict(self, state):
        """Restore `state_dict()`'s output; a schedule of the same type is restored in place."""
        owner = type(self).__name__
        if not isinstance(state, dict) or state.get("type") != owner:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise GraphcError(f"{owner}.load_state_dict: got the state of {got!r}")
        saved = state.get("hyper", {})
        if set(saved) != set(self.hyper):
            raise GraphcError(f"{owner}.load_state_dict: hyperparameters {sorted(saved)}, expected {sorted(self.hyper)}")
        # Check everything before changing anything.
        new = {k: Schedule.from_state_dict(v) if isinstance(v, dict) else _check_hyper(owner, k, v)
               for k, v in saved.items()}
        for name, value in new.items():
            current = self.hyper[name]
            if isinstance(value, Schedule) and type(current) is type(value):
                current.load_state_dict(saved[name])
            else:
                self.hyper[name] = value

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Plain gradient descent: p <- p - lr * g."""

    def __init__(self, lr=0.01):
        super().__init__(lr=lr)

    def update(self, p, g, state, hyper):
        return p - hyper["lr"] * g, {}


class Momentum(Optimizer):
    """Momentum, in the classic (CS231n) form, with v starting at zero:
        v <- momentum * v - lr * g
        p <- p + v"""
    slots = ("velocity",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr=lr, momentum=momentum)

    def update(self, p, g, state, hyper):
        v = hyper["momentum"] * state["velocity"] - hyper["lr"] * g
        return p + v, {"velocity": v}


class Nesterov(Optimizer):
    """Nesterov momentum in the practical form of Sutskever et al. (as in CS231n),
    which keeps p at the point without the look-ahead (mu = momentum):
        v' = mu * v - lr * g
        p <- p - mu * v + (1 + mu) * v';   v <- v'"""
    slots = ("velocity",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr=lr, momentum=momentum)

    def update(self, p, g, state, hyper):
        mu = hyper["momentum"]
        mu_v = mu * state["velocity"]  # one read of the old velocity, before its new value is stored
        v_new = mu_v - hyper["lr"] * g
        return p - mu_v + (1 + mu) * v_new, {"velocity": v_new}


class Adagrad(Optimizer):
    """Adagrad: per-element rates that shrink with the gradients seen so far.
        cache <- cache + g * g
        p <- p - lr * g / (sqrt(cache) + eps)"""
    slots = ("cache",)

    def __init__(self, lr=0.01, eps=1e-8):
        super().__init__(lr=lr, eps=eps)

    def update(self, p, g, state, hyper):
        cache = state["cache"] + g * g
        return p - hyper["lr"] * g / (F.sqrt(cache) + hyper["eps"]), {"cache": cache}


class RMSProp(Optimizer):
    """RMSProp: Adagrad with a leaky (moving-average) cache.
        cache <- rho * cache + (1 - rho) * g * g
        p <- p - lr * g / (sqrt(cache) + eps)"""
    slots = ("cache",)

    def __init__(self, lr=0.001, rho=0.9, eps=1e-8):
        super().__init__(lr=lr, rho=rho, eps=eps)

    def update(self, p, g, state, hyper):
        rho = hyper["rho"]
        cache = rho * state["cache"] + (1 - rho) * (g * g)
        return p - hyper["lr"] * g / (F.sqrt(cache) + hyper["eps"]), {"cache": cache}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; t = step + 1 is the 1-based step:
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g * g
        p <- p - lr * (m * c1) / (sqrt(v * c2) + eps),  c1 = 1 / (1 - beta1**t), c2 = 1 / (1 - beta2**t)
    c1 and c2 are computed host-side in float64 by `values` and fed as the step's
    inputs opt.c1 and opt.c2 (derived, not settable)."""
    slots = ("m", "v")
    derived = ("c1", "c2")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps)

    def values(self, step):
        values, t = super().values(step), step + 1
        values["c1"] = 1.0 / (1.0 - values["beta1"] ** t)
        values["c2"] = 1.0 / (1.0 - values["beta2"] ** t)
        return values

    def update(self, p, g, state, hyper):
        b1, b2 = hyper["beta1"], hyper["beta2"]
        m = b1 * state["m"] + (1 - b1) * g
        v = b2 * state["v"] + (1 - b2) * (g * g)
        new_p = p - hyper["lr"] * (m * hyper["c1"]) / (F.sqrt(v * hyper["c2"]) + hyper["eps"])
        return new_p, {"m": m, "v": v}
