"""Losses: what the model's output is compared with, and how accuracy is read.

Each loss builds graph on the model's raw output (logits, for the
classification losses, so the stable log-sum-exp forms in the op table are
used), declares the target input it needs, and knows how to turn outputs into
predictions and an accuracy on the host.
"""
import numpy as np

from graphc.frontend import functional as functional
from graphc.frontend.dsl import Input
from graphc.errors import GraphcError


class Loss:
    name = "loss"

    def target(self, output_shape, dtype):
        """The Input spec of the targets for an output of this shape."""
        raise NotImplementedError

    def __call__(self, output, target):
        raise NotImplementedError

    def accuracy(self, output, target):
        """Fraction of correct predictions, or None for a regression loss."""
        return None

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,)."""
    name = "cross_entropy"

    def target(self, output_shape, dtype):
        return Input((output_shape[0],), "int64")

    def __call__(self, output, target):
        return functional.cross_entropy(output, target)

    def accuracy(self, output, target):
        return np.count_nonzero(np.argmax(output, axis=1) == target) / len(target)


class BinaryCrossEntropy(Loss):
    """Mean binary cross-entropy of logits against 0/1 targets of the same shape
    (one sigmoid unit per target), computed stably from the logits."""
    name = "bce"

    def target(self, output_shape, dtype):
        return Input(tuple(output_shape), dtype)

    def __call__(self, output, target):
        return functional.bce_loss(output, target)

    def accuracy(self, output, target):
        return np.count_nonzero((output > 0) == (target > 0.5)) / target.size


class MeanSquaredError(Loss):
    """Mean of the squared differences over every element."""
    name = "mse"

    def target(self, output_shape, dtype):
        return Input(tuple(output_shape), dtype)

    def __call__(self, output, target):
        return functional.mse(output, target)


LOSSES = {"cross_entropy": CrossEntropy, "softmax_cross_entropy": CrossEntropy,
          "bce": BinaryCrossEntropy, "binary_cross_entropy": BinaryCrossEntropy,
          "mse": MeanSquaredError}


def get(loss):
    if isinstance(loss, Loss):
        return loss
    if loss in LOSSES:
        return LOSSES[loss]()
    raise GraphcError(f"unknown loss {loss!r}; known: {', '.join(sorted(LOSSES))}")


def l2_penalty(weights, strength):
    """strength/2 * sum of squared weights: weight decay, added to the loss."""
    return functional.l2_penalty(*weights, strength=strength)
