"""Composite ops: built from primitives, so their gradients come for free from
the primitives' proven rules.  None of these needs a rule of its own."""
import numpy as np

from graphc.frontend import dsl as F
from graphc.ir import shapes as S
from graphc.errors import GraphcError, ShapeError


def swish(x, name=None):
    """x * sigmoid(x), also called SiLU."""
    return F.mul(x, F.sigmoid(x), name=name)


silu = swish


def gelu(x, name=None):
    """The exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    return F.mul(0.5 * x, 1.0 + F.erf(x * (1.0 / np.sqrt(2.0))), name=name)


def maxout(*pieces, name=None):
    """Elementwise max over k linear pieces (Goodfellow et al., 2013)."""
    if len(pieces) < 2:
        raise GraphcError("maxout needs at least two pieces")
    out = pieces[0]
    for p in pieces[1:-1]:
        out = F.maximum(out, p)
    return F.maximum(out, pieces[-1], name=name)


def dropout(x, mask, p, name=None):
    """Inverted dropout: multiply by a 0/1 keep-mask and scale by 1/(1-p), so eval needs no change.

    `mask` is an input fed each step (graphc graphs are pure; the caller draws it).
    """
    if not 0.0 <= p < 1.0:
        raise GraphcError(f"dropout probability must be in [0, 1), got {p}")
    return F.mul(x * F.cast(mask, x.dtype) if mask.dtype == "bool" else x * mask, 1.0 / (1.0 - p), name=name)


def _normalize(x, axis, eps):
    mu = F.mean(x, axis=axis, keepdims=True)
    centered = x - F.broadcast_to(mu, x.shape)
    var = F.mean(centered * centered, axis=axis, keepdims=True)
    return centered / F.broadcast_to(F.sqrt(var + eps), x.shape)


def layer_norm(x, gamma, beta, eps=1e-5, name=None):
    """Normalize each row over its features, then scale and shift."""
    return F.add(_normalize(x, -1, eps) * gamma, beta, name=name)


def batch_norm(x, gamma, beta, eps=1e-5, name=None):
    """Training-mode batch norm: normalize each feature over the batch axis.

    Running statistics for eval mode belong to the training toolkit's layer.
    """
    return F.add(_normalize(x, 0, eps) * gamma, beta, name=name)


def _same_shape(loss, pred, target):
    """A loss compares prediction and target element by element: (4, 1) against
    (4,) must not broadcast to (4, 4) and average 16 wrong pairs.  A plain number
    target is fine; anything else the user broadcasts explicitly (F.broadcast_to)."""
    if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (pred, target)):
        return
    p, t = (tuple(getattr(v, "shape", ())) for v in (pred, target))
    if p != t:
        raise ShapeError(f"{loss}: prediction {S.fmt(p)} and target {S.fmt(t)} differ in shape; reshape "
                         "one, or broadcast it explicitly with broadcast_to, if that is what you mean")


def mse(pred, target, name=None):
    """Mean squared error over every element; prediction and target have one shape."""
    _same_shape("mse", pred, target)
    diff = pred - target
    return F.mean(diff * diff, name=name)


def bce_loss(logits, targets, name=None):
    """Mean binary cross-entropy, on logits; logits and targets have one shape."""
    _same_shape("bce_loss", logits, targets)
    return F.mean(F.bce_with_logits(logits, targets), name=name)


def cross_entropy(logits, labels, name=None):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,)."""
    return F.mean(F.softmax_cross_entropy(logits, labels), name=name)


def l2_penalty(*weights, strength=1.0, name=None):
    """strength/2 * sum of squared entries: its gradient is strength * W (weight decay)."""
    if not weights:
        raise GraphcError("l2_penalty needs at least one weight")
    total = F.sum(weights[0] * weights[0])
    for w in weights[1:]:
        total = total + F.sum(w * w)
    return F.mul(total, 0.5 * strength, name=name)
