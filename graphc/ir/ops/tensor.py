"""Reductions and array primitives.  Their VJPs are written directly, as graph."""
from math import prod

import numpy as np

from graphc.ir import shapes as S
from graphc.errors import ShapeError
from graphc.ir.ops.common import (check_label_range, first_float, int_labels, row_labels_dtype, row_labels_shape,
                                  same_float, sympy)
from graphc.ir.ops.registry import OpDef, register


def _reduce_shape(shapes, attrs):
    return S.reduced(shapes[0], S.normalize_axes(attrs["axes"], len(shapes[0])), attrs["keepdims"])


def _max_shape(shapes, attrs):
    """A max over an empty axis has no identity: refused when built, as NumPy and PyTorch refuse it."""
    empty = [a for a in S.normalize_axes(attrs["axes"], len(shapes[0])) if shapes[0][a] == 0]
    if empty:
        raise ShapeError(f"max over axis {empty[0]} of {S.fmt(shapes[0])}, which has size 0, has no value")
    return _reduce_shape(shapes, attrs)


def _keep_shape(ctx):
    """The reduced shape with kept axes, so a reduced gradient broadcasts back."""
    return S.reduced(ctx.x[0].shape, ctx.attrs["axes"], True)


def _expand(ctx, v):
    """Broadcast a reduced value back to the operand's shape."""
    return ctx.F.broadcast_to(ctx.F.reshape(v, _keep_shape(ctx)), ctx.x[0].shape)


def _sum_vjp(ctx, g):
    return [_expand(ctx, g)]


def _max_vjp(ctx, g):
    F = ctx.F
    mask = F.cast(F.eq(ctx.x[0], _expand(ctx, ctx.out)), ctx.dtype)
    ties = F.sum(mask, axis=ctx.attrs["axes"], keepdims=True)
    return [mask / F.broadcast_to(ties, ctx.x[0].shape) * _expand(ctx, g)]


def _sympy_max(a, axes, keepdims):
    moved = np.moveaxis(a, axes, list(range(a.ndim - len(axes), a.ndim)))
    lead = moved.shape[: a.ndim - len(axes)]
    rows = moved.reshape(lead + (-1,))
    out = np.empty(lead, dtype=object)
    for idx in np.ndindex(lead):
        out[idx] = sympy.Max(*rows[idx])
    return out.reshape(S.reduced(a.shape, axes, keepdims))


register(OpDef(
    name="sum", arity=1, kind="reduce", shape_rule=_reduce_shape, dtype_rule=first_float,
    numpy_impl=lambda a, axes, keepdims: np.sum(a, axis=axes, keepdims=keepdims),
    vjp=_sum_vjp, differentiable=(0,),
    proof={"shapes": [(2, 3)], "attrs": {"axes": (1,), "keepdims": False}},
    doc="sum over axes"))
register(OpDef(
    name="max", arity=1, kind="reduce", shape_rule=_max_shape, dtype_rule=first_float,
    numpy_impl=lambda a, axes, keepdims: np.max(a, axis=axes, keepdims=keepdims),
    sympy_impl=_sympy_max, vjp=_max_vjp, differentiable=(0,),
    proof={"shapes": [(2, 3)], "attrs": {"axes": (1,), "keepdims": False}, "regions": [{"argmax": (1, 2)}]},
    doc="max over axes; tied maxima share the gradient evenly"))


def _count_impl(a, axes, dtype):
    return np.asarray(prod(a.shape[i] for i in axes), dtype=dtype)


register(OpDef(
    name="count", arity=1, kind="reduce",
    shape_rule=lambda shapes, attrs: (), dtype_rule=lambda d, attrs: attrs["dtype"],
    numpy_impl=_count_impl,
    sympy_impl=lambda a, axes, dtype: np.asarray(sympy.Integer(prod(a.shape[i] for i in axes)), dtype=object),
    differentiable=(), proof={"shapes": [(2, 3)], "attrs": {"axes": (0,), "dtype": "float64"}},
    doc="number of elements over axes, read at run time so symbolic batch sizes work"))


def _matmul_shape(shapes, attrs):
    a, b = shapes
    if len(a) != 2 or len(b) != 2:
        raise ShapeError(f"matmul takes two matrices, got {S.fmt(a)} @ {S.fmt(b)}")
    if a[1] != b[0]:
        raise ShapeError(f"inner dimensions differ: {S.fmt(a)} @ {S.fmt(b)}")
    return (a[0], b[1])


register(OpDef(
    name="matmul", arity=2, kind="array", shape_rule=_matmul_shape, dtype_rule=same_float,
    numpy_impl=np.matmul,
    vjp=lambda c, g: [g @ c.F.transpose(c.x[1]), c.F.transpose(c.x[0]) @ g],
    differentiable=(0, 1), proof={"shapes": [(2, 3), (3, 2)]},
    doc="matrix product of two matrices"))


def _moving_op(name, shape_rule, numpy_impl, vjp, proof, doc):
    """Register an op that only moves or repeats its one operand's elements: the
    dtype is kept, and the gradient moves back the same way (`vjp`)."""
    register(OpDef(name=name, arity=1, kind="array", shape_rule=shape_rule, dtype_rule=lambda d, attrs: d[0],
                   numpy_impl=numpy_impl, vjp=vjp, differentiable=(0,), proof=proof, doc=doc))


def _transpose_shape(shapes, attrs):
    perm = attrs["perm"]
    if sorted(perm) != list(range(len(shapes[0]))):
        raise ShapeError(f"perm {perm} is not a permutation of the axes of {S.fmt(shapes[0])}")
    return tuple(shapes[0][p] for p in perm)


_moving_op(
    "transpose", _transpose_shape, lambda a, perm: np.transpose(a, perm),
    vjp=lambda c, g: [c.F.transpose(g, tuple(int(i) for i in np.argsort(c.attrs["perm"])))],
    proof={"shapes": [(2, 3)], "attrs": {"perm": (1, 0)}}, doc="permute axes")


def _reshape_shape(shapes, attrs):
    if not S.same_size(shapes[0], attrs["shape"]):
        raise ShapeError(f"cannot reshape {S.fmt(shapes[0])} into {S.fmt(attrs['shape'])}")
    return tuple(attrs["shape"])


_moving_op(
    "reshape", _reshape_shape, lambda a, shape: np.reshape(a, shape),
    vjp=lambda c, g: [c.F.reshape(g, c.x[0].shape)],
    proof={"shapes": [(2, 3)], "attrs": {"shape": (3, 2)}}, doc="reshape; symbolic dims such as N are bound at call time")


def _broadcast_shape(shapes, attrs):
    target = tuple(attrs["shape"])
    if S.broadcast(shapes[0], target) != target:
        raise ShapeError(f"cannot broadcast {S.fmt(shapes[0])} to {S.fmt(target)}")
    return target


_moving_op(
    "broadcast_to", _broadcast_shape, lambda a, shape: np.broadcast_to(a, shape),
    vjp=lambda c, g: [c.F.unbroadcast(g, c.x[0].shape)],
    proof={"shapes": [(1, 3)], "attrs": {"shape": (2, 3)}}, doc="broadcast to a larger shape")


def _one_hot_shape(shapes, attrs):
    return tuple(shapes[0]) + (attrs["depth"],)


def _one_hot_dtype(dtypes, attrs):
    int_labels(dtypes[0])
    return attrs["dtype"]


def _one_hot(labels, depth, dtype):
    return (np.asarray(labels)[..., None] == np.arange(depth)).astype(dtype)


register(OpDef(
    name="one_hot", arity=1, kind="array", shape_rule=_one_hot_shape, dtype_rule=_one_hot_dtype,
    numpy_impl=_one_hot,
    sympy_impl=lambda labels, depth, dtype: _one_hot(labels, depth, "int64").astype(object),
    differentiable=(), proof={"shapes": [(2,)], "values": {0: np.array([2, 0])}, "attrs": {"depth": 3, "dtype": "float64"}},
    doc="integer labels to one-hot rows; not differentiable in the labels"))


def _gather(x, idx):
    check_label_range(idx, x.shape[1])
    return x[np.arange(x.shape[0]), idx]


def _gather_vjp(c, g):
    F = c.F
    hot = F.one_hot(c.x[1], c.x[0].shape[1], c.dtype)
    return [hot * F.broadcast_to(F.reshape(g, (c.x[0].shape[0], 1)), c.x[0].shape), None]


register(OpDef(
    name="gather", arity=2, kind="array", shape_rule=row_labels_shape("table", "indices"),
    dtype_rule=row_labels_dtype("indices"),
    numpy_impl=_gather, vjp=_gather_vjp, differentiable=(0,),
    proof={"shapes": [(2, 3), (2,)], "values": {1: np.array([2, 0])}},
    doc="gather(x, idx)[i] = x[i, idx[i]]: picks each row's labelled entry"))
