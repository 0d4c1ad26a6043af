"""Stable primitives: each has its own proven rule because composing it from
exp and log overflows at inputs of +-1000 (the log-sum-exp trick)."""
import numpy as np

from graphc.ir import shapes as S
from graphc.ir.ops.common import (broadcast_rule, check_label_range, first_float, row_labels_dtype,
                                  row_labels_shape, same_float, sympy, vectorize_sympy)
from graphc.ir.ops.registry import OpDef, register

_exp = vectorize_sympy(lambda a: sympy.exp(a))
_log = vectorize_sympy(lambda a: sympy.log(a))


def logsumexp_ref(a, axes, keepdims):
    """max + log(sum(exp(a - max))): exact, and never overflows."""
    m = np.max(a, axis=axes, keepdims=True, initial=-np.inf)  # an empty axis gives -inf, as PyTorch
    m = np.where(np.isfinite(m), m, 0)
    out = m + np.log(np.sum(np.exp(a - m), axis=axes, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axes)


def _lse_vjp(c, g):
    F = c.F
    keep = S.reduced(c.x[0].shape, c.attrs["axes"], True)
    out = F.broadcast_to(F.reshape(c.out, keep), c.x[0].shape)
    g = F.broadcast_to(F.reshape(g, keep), c.x[0].shape)
    return [g * F.exp(c.x[0] - out)]


register(OpDef(
    name="logsumexp", arity=1, kind="nn",
    shape_rule=lambda s, attrs: S.reduced(s[0], S.normalize_axes(attrs["axes"], len(s[0])), attrs["keepdims"]),
    dtype_rule=first_float, numpy_impl=logsumexp_ref,
    sympy_impl=lambda a, axes, keepdims: _log(np.sum(_exp(a), axis=axes, keepdims=keepdims)),
    vjp=_lse_vjp, differentiable=(0,),
    proof={"shapes": [(2, 3)], "attrs": {"axes": (1,), "keepdims": False}},
    doc="log(sum(exp(a))) over axes, computed stably"))


def softmax_ref(a, axis):
    return np.exp(a - logsumexp_ref(a, (axis,), True))


def log_softmax_ref(a, axis):
    return a - logsumexp_ref(a, (axis,), True)


def _sympy_softmax(a, axis):
    e = _exp(a)
    return e / np.sum(e, axis=axis, keepdims=True)


def _sympy_log_softmax(a, axis):
    return a - _log(np.sum(_exp(a), axis=axis, keepdims=True))


def _along(c, v):
    """Sum v over the softmax axis and broadcast it back."""
    F = c.F
    return F.broadcast_to(F.sum(v, axis=c.attrs["axis"], keepdims=True), c.x[0].shape)


def _softmax_axis_shape(shapes, attrs):
    S.normalize_axes(attrs["axis"], len(shapes[0]))
    return shapes[0]


register(OpDef(
    name="softmax", arity=1, kind="nn", shape_rule=_softmax_axis_shape, dtype_rule=first_float,
    numpy_impl=softmax_ref, sympy_impl=_sympy_softmax,
    vjp=lambda c, g: [c.out * (g - _along(c, g * c.out))], differentiable=(0,),
    proof={"shapes": [(2, 3)], "attrs": {"axis": 1}},
    doc="exp(a) / sum(exp(a)) along axis, computed stably"))
register(OpDef(
    name="log_softmax", arity=1, kind="nn", shape_rule=_softmax_axis_shape, dtype_rule=first_float,
    numpy_impl=log_softmax_ref, sympy_impl=_sympy_log_softmax,
    vjp=lambda c, g: [g - c.F.exp(c.out) * _along(c, g)], differentiable=(0,),
    proof={"shapes": [(2, 3)], "attrs": {"axis": 1}},
    doc="a - logsumexp(a) along axis"))


def softmax_ce_ref(logits, labels):
    check_label_range(labels, logits.shape[1])
    return logsumexp_ref(logits, (1,), False) - logits[np.arange(logits.shape[0]), labels]


def _sympy_ce(logits, labels):
    return -_sympy_log_softmax(logits, 1)[np.arange(logits.shape[0]), labels]


def _ce_vjp(c, g):
    """(softmax(z) - one_hot(y)) * g: the lecture's p_k - 1[y = k]."""
    F = c.F
    z, y = c.x
    n, k = z.shape
    delta = F.softmax(z, axis=1) - F.one_hot(y, k, c.dtype)
    return [delta * F.broadcast_to(F.reshape(g, (n, 1)), z.shape), None]


register(OpDef(
    name="softmax_cross_entropy", arity=2, kind="nn", shape_rule=row_labels_shape("logits", "labels"),
    dtype_rule=row_labels_dtype("labels"),
    numpy_impl=softmax_ce_ref, sympy_impl=_sympy_ce, vjp=_ce_vjp, differentiable=(0,),
    proof={"shapes": [(2, 3), (2,)], "values": {1: np.array([1, 2])}},
    doc="per-sample -log softmax(logits)[label], on logits with integer labels"))


def bce_logits_ref(z, y):
    """max(z, 0) - z y + log(1 + e^-|z|): the stable form of -y log s - (1-y) log(1-s)."""
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def _bce_sympy(z, y):
    return sympy.log(1 + sympy.exp(z)) - z * y


register(OpDef(
    name="bce_with_logits", arity=2, kind="elementwise", shape_rule=broadcast_rule,
    dtype_rule=same_float, numpy_impl=bce_logits_ref,
    sympy_impl=vectorize_sympy(_bce_sympy), sympy_scalar=_bce_sympy,
    derivs=lambda c, i: c.F.sigmoid(c.x[0]) - c.x[1] if i == 0 else -c.x[0],
    differentiable=(0, 1),
    doc="binary cross-entropy of sigmoid(z) against targets y, on logits z"))

