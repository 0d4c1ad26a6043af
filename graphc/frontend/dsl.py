"""The Python DSL: symbolic values with operators, and the explicit Builder.
Tracing a plain function builds on this, in graphc.frontend.tracing.

Each operation adds one node to the value's graph, checked as it is added, so a
shape error points at the line of the model that caused it.
"""
import builtins
import contextlib
from dataclasses import dataclass

import numpy as np

from graphc.ir import shapes as S
from graphc.errors import DTypeError, GraphcError, ShapeError
from graphc.errors import where as where_
from graphc.ir.graph import Graph
from graphc.ir.ops.registry import FLOATS

_phase = {"phase": "forward", "prefix": None, "count": 0}


@contextlib.contextmanager
def building(phase, prefix=None):
    """Nodes added inside are tagged with `phase`; unnamed ones get `prefix` names."""
    saved = dict(_phase)
    _phase.update(phase=phase, prefix=prefix, count=0)
    try:
        yield
    finally:
        _phase.update(saved)


class Value:
    """A symbolic value: one node of a graph."""
    __slots__ = ("graph", "node")
    __array_priority__ = 1000  # numpy scalars on the left defer to our operators

    def __init__(self, graph, node):
        self.graph, self.node = graph, node

    shape = property(lambda self: self.graph.shape(self.node))
    dtype = property(lambda self: self.graph.dtype(self.node))
    name = property(lambda self: self.graph.name_of(self.node))
    op = property(lambda self: self.graph.op(self.node))
    ndim = property(lambda self: len(self.shape))
    T = property(lambda self: transpose(self))

    def __repr__(self):
        return f"Value({self.graph.node_text(self.node)})"

    def __bool__(self):
        raise GraphcError(f"node '{self.name}' ({self.op}): a symbolic value has no truth value; use gc.where for data-dependent choices")

    # == and != build mask nodes like the other comparisons (as in JAX); hashing
    # stays by identity so values still work as dict keys.
    __hash__ = object.__hash__
    __eq__ = lambda a, b: eq(a, b)
    __ne__ = lambda a, b: ne(a, b)
    __add__ = lambda a, b: add(a, b)
    __radd__ = lambda a, b: add(b, a)
    __sub__ = lambda a, b: sub(a, b)
    __rsub__ = lambda a, b: sub(b, a)
    __mul__ = lambda a, b: mul(a, b)
    __rmul__ = lambda a, b: mul(b, a)
    __truediv__ = lambda a, b: div(a, b)
    __rtruediv__ = lambda a, b: div(b, a)
    __pow__ = lambda a, b: pow(a, b)
    __rpow__ = lambda a, b: pow(b, a)
    __matmul__ = lambda a, b: matmul(a, b)
    __rmatmul__ = lambda a, b: matmul(b, a)
    __neg__ = lambda a: neg(a)
    __gt__ = lambda a, b: gt(a, b)
    __ge__ = lambda a, b: ge(a, b)
    __lt__ = lambda a, b: lt(a, b)
    __le__ = lambda a, b: le(a, b)

    def sum(self, axis=None, keepdims=False):
        return sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return max(self, axis, keepdims)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape)

    def named(self, name):
        """Give this node a readable name; it shows in text, code and renders."""
        self.graph.rename(self.node, name)
        return self


def apply(op, *operands, name=None, **attrs):
    """Add one node to the operands' graph and return its value."""
    graphs = {id(v.graph): v.graph for v in operands if isinstance(v, Value)}
    if len(graphs) != 1:
        raise GraphcError(f"{op}: operands must come from one graph (got {len(graphs)})")
    graph = next(iter(graphs.values()))
    if name is None and _phase["prefix"]:
        _phase["count"] += 1
        name = _unique(graph, f"{_phase['prefix']}_{_phase['count']}")
    node = graph.add(op, [v.node for v in operands], attrs, name=name, phase=_phase["phase"])
    return Value(graph, node)


def _unique(graph, name):
    base, k = name, 1
    while graph.has_name(name):
        k += 1
        name = f"{base}_{k}"
    return name


def constant(graph, value, dtype, exact=None, name=None):
    value = np.asarray(value, dtype=dtype)
    attrs = {"value": value} if exact is None else {"value": value, "exact": exact}
    node = graph.add("const", [], attrs, name=name, phase=_phase["phase"])
    return Value(graph, node)


def _float_dtype(*vals):
    for v in vals:
        if isinstance(v, Value) and v.dtype in FLOATS:
            return v.dtype
    for v in vals:
        if isinstance(v, np.ndarray) and v.dtype.name in FLOATS:
            return v.dtype.name
    return "float64"


def _lift(values):
    """Python numbers adopt the float dtype of the symbolic operands; bool masks become 0/1."""
    graph = next(v.graph for v in values if isinstance(v, Value))
    dtype = _float_dtype(*values)
    out = []
    for v in values:
        if not isinstance(v, Value):
            arr = np.asarray(v)
            # Python and NumPy scalars adopt the dtype; a float array keeps its own.
            keep = arr.dtype.kind not in "biuf" or (isinstance(v, np.ndarray) and arr.dtype.name in FLOATS)
            v = constant(graph, arr, arr.dtype if keep else dtype)
        elif v.dtype == "bool":
            v = cast(v, dtype)
        out.append(v)
    return out


def _check_symbolic(*values):
    if not builtins.any(isinstance(v, Value) for v in values):
        raise GraphcError("at least one operand must be a symbolic value (an input, param or const)")


def _arith(op):
    def fn(*xs, name=None):
        _check_symbolic(*xs)
        return apply(op, *_lift(xs), name=name)
    fn.__name__ = op
    return fn


def _compare(op):
    def fn(a, b, name=None):
        _check_symbolic(a, b)
        a, b = [v if isinstance(v, Value) else constant(_graph_of(a, b), v, _float_dtype(a, b)) for v in (a, b)]
        return apply(op, a, b, name=name)
    fn.__name__ = op
    return fn


def _graph_of(*vals):
    return next(v.graph for v in vals if isinstance(v, Value))


add, sub, mul, div, pow = (_arith(o) for o in ("add", "sub", "mul", "div", "pow"))
maximum, minimum, bce_with_logits = (_arith(o) for o in ("maximum", "minimum", "bce_with_logits"))
neg, exp, log, sqrt, abs, sign, erf = (_arith(o) for o in ("neg", "exp", "log", "sqrt", "abs", "sign", "erf"))
tanh, sigmoid, relu, softplus = (_arith(o) for o in ("tanh", "sigmoid", "relu", "softplus"))
gt, ge, lt, le, eq, ne = (_compare(o) for o in ("gt", "ge", "lt", "le", "eq", "ne"))


def leaky_relu(x, alpha=0.01, name=None):
    return apply("leaky_relu", x, alpha=float(alpha), name=name)


def elu(x, alpha=1.0, name=None):
    return apply("elu", x, alpha=float(alpha), name=name)


def where(cond, a, b, name=None):
    _check_symbolic(cond, a, b)
    graph = _graph_of(cond, a, b)
    if not isinstance(cond, Value):
        cond = constant(graph, np.asarray(cond, dtype=bool), "bool")
    if cond.dtype != "bool":
        raise DTypeError(f"where: condition '{cond.name}' must be a bool mask, got {cond.dtype}")
    a, b = (v if isinstance(v, Value) else constant(graph, v, _float_dtype(a, b)) for v in (a, b))
    return apply("where", cond, a, b, name=name)


def cast(x, dtype, name=None):
    return x if x.dtype == dtype else apply("cast", x, dtype=dtype, name=name)


# ----- array ops ---------------------------------------------------------------
def matmul(a, b, name=None):
    """Matrix product; a 1-D operand is treated as a row or column, as in NumPy."""
    a, b = _lift([a, b])
    if a.ndim == 2 and b.ndim == 2:
        return apply("matmul", a, b, name=name)
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    out = apply("matmul", a2, b2)
    keep = ((a2.shape[0],) if a.ndim == 2 else ()) + ((b2.shape[1],) if b.ndim == 2 else ())
    return reshape(out, keep, name=name)


def transpose(x, perm=None, name=None):
    """Permute axes; negative entries count from the end, as in NumPy (stored normalized)."""
    perm = tuple(reversed(range(x.ndim))) if perm is None else _checked(S.normalize_perm, "transpose", name, x, tuple(perm))
    return apply("transpose", x, perm=perm, name=name)


def reshape(x, shape, name=None):
    """Reshape; one -1 entry is inferred from the size, as in NumPy (stored resolved)."""
    shape = _checked(S.resolve_reshape, "reshape", name, x, tuple(shape))
    return x if shape == x.shape and name is None else apply("reshape", x, shape=shape, name=name)


def _checked(normalize, op, name, x, attr):
    """Normalize an attr before the node exists; an error names the node to be, its op and operand."""
    try:
        return normalize(attr, x.ndim) if op == "transpose" else normalize(x.shape, attr)
    except ShapeError as e:
        label = name or f"{op}({x.name})"
        raise ShapeError(where_(label, op, f"operand '{x.name}' {S.fmt(x.shape)}: {e}")) from None


def broadcast_to(x, shape, name=None):
    shape = tuple(shape)
    return x if shape == x.shape and name is None else apply("broadcast_to", x, shape=shape, name=name)


def unbroadcast(g, shape):
    """Sum a broadcast gradient back down to `shape` (the reverse of broadcasting)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return reshape(sum(g, axes, keepdims=False) if axes else g, shape)


def _axes(x, axis):
    """Axes normalized (sorted, non-negative); on a 0-d value axis 0 or -1 means
    no axis, as PyTorch allows, so a reduction of a scalar is that scalar."""
    if x.ndim == 0 and not isinstance(axis, bool) and isinstance(axis, int) and axis in (0, -1):
        return ()
    return S.normalize_axes(axis, x.ndim)


def sum(x, axis=None, keepdims=False, name=None):
    return apply("sum", x, axes=_axes(x, axis), keepdims=bool(keepdims), name=name)


def max(x, axis=None, keepdims=False, name=None):
    return apply("max", x, axes=_axes(x, axis), keepdims=bool(keepdims), name=name)


def count(x, axis=None):
    return apply("count", x, axes=_axes(x, axis), dtype=x.dtype)


def mean(x, axis=None, keepdims=False, name=None):
    """sum / count; the count is a constant unless a reduced dim is symbolic."""
    axes = _axes(x, axis)
    total = sum(x, axes, keepdims)
    dims = [x.shape[a] for a in axes]
    if S.is_concrete(dims):
        n = int(np.prod(dims))
        if n == 0:  # the mean of nothing is nan, as in NumPy (0 * nan keeps the shape)
            return mul(total, constant(x.graph, np.nan, x.dtype, exact="nan"), name=name)
        return mul(total, constant(x.graph, 1.0 / n, x.dtype, exact=f"1/{n}"), name=name)
    return div(total, count(x, axes), name=name)


def _scalar_as_vector(x, axis):
    """A 0-d operand with axis -1, 0 or None is taken as a 1-vector, as PyTorch does."""
    if x.ndim == 0 and (axis is None or (not isinstance(axis, tuple) and axis in (-1, 0))):
        return reshape(x, (1,))
    return None


def logsumexp(x, axis=-1, keepdims=False, name=None):
    vec = _scalar_as_vector(x, axis)
    if vec is not None:  # logsumexp of one value is that value
        return reshape(apply("logsumexp", vec, axes=(0,), keepdims=False), (), name=name)
    return apply("logsumexp", x, axes=_axes(x, axis), keepdims=bool(keepdims), name=name)


def _along_axis(op, x, axis, name):
    vec = _scalar_as_vector(x, axis)
    if vec is not None:
        return reshape(apply(op, vec, axis=0), (), name=name)
    return apply(op, x, axis=_axes(x, axis)[0], name=name)


def softmax(x, axis=-1, name=None):
    return _along_axis("softmax", x, axis, name)


def log_softmax(x, axis=-1, name=None):
    return _along_axis("log_softmax", x, axis, name)


def one_hot(labels, depth, dtype="float64", name=None):
    return apply("one_hot", labels, depth=int(depth), dtype=dtype, name=name)


def gather(x, idx, name=None):
    return apply("gather", x, idx, name=name)


def softmax_cross_entropy(logits, labels, name=None):
    return apply("softmax_cross_entropy", logits, labels, name=name)


# ----- building graphs ------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    shape: tuple = ()
    dtype: str = "float64"
    op = "input"


@dataclass(frozen=True)
class Param:
    shape: tuple = ()
    dtype: str = "float64"
    op = "param"


class Builder:
    """Explicit graph building: `b = gc.Builder("net"); x = b.input("x", ("N", 2)) ...`."""

    def __init__(self, name="graph", dtype="float64"):
        self.graph = Graph(name)
        self.dtype = dtype

    def _leaf(self, op, name, shape, dtype):
        node = self.graph.add(op, [], {"shape": tuple(shape), "dtype": dtype or self.dtype}, name=name)
        return Value(self.graph, node)

    def input(self, name, shape=(), dtype=None):
        return self._leaf("input", name, shape, dtype)

    def param(self, name, shape=(), dtype=None):
        return self._leaf("param", name, shape, dtype)

    def const(self, value, dtype=None, name=None):
        return constant(self.graph, value, dtype or self.dtype, name=name)

    def output(self, *values, **named):
        """Declare outputs (positional ones keep their node names) and validate the graph."""
        for v in values:
            self.graph.set_output(v.node)
        for name, v in named.items():
            self.graph.set_output(v.node, name)
        return self.graph.validate()
