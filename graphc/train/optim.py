"""Optimizers as graph builders.

An optimizer does not touch arrays: it adds the nodes that compute each
parameter's new value (and its state's), so the update is emitted and fused
into the compiled step like any other op.  Hyperparameters such as the
learning rate become scalar inputs of the step graph, so a schedule can change
them between steps without recompiling.
"""
import math
from abc import ABC, abstractmethod

from graphc.errors import GraphcError


class Optimizer(ABC):
    """Base class.  Subclasses name their hyperparameters and per-parameter state
    slots and build the update with `update`."""
    slots = ()  # per-parameter state arrays, e.g. ("velocity",), zero at the start

    def __init__(self, **hyper):
        for name, value in hyper.items():
            _check_hyper(type(self).__name__, name, value)
        self.hyper = dict(hyper)

    @abstractmethod
    def update(self, p, g, state, hyper):
        """New value of parameter `p` given its gradient `g` (both graph Values),
        its `state` {slot: Value} and the hyperparameter inputs {name: Value}.
        Returns (new_p, {slot: new state Value})."""

    def values(self, step):
        """Hyperparameter values fed to step number `step` (0-based); a subclass
        that needs the step count (Adam's bias correction) adds it here."""
        return dict(self.hyper)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"


def _check_hyper(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GraphcError(f"{owner}: hyperparameter {name}={value!r} must be a finite number")
    if value < 0:
        raise GraphcError(f"{owner}: hyperparameter {name}={value!r} must not be negative")


class SGD(Optimizer):
    """Plain gradient descent: p <- p - lr * g."""

    def __init__(self, lr=0.01):
        super().__init__(lr=lr)

    def update(self, p, g, state, hyper):
        return p - hyper["lr"] * g, {}
