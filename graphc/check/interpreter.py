"""The reference semantics, and graphc's one graph walker.

`walk` visits the topological order and gives every node the value of a pluggable
value function: `numpy_value` (each op's NumPy reference: the semantics every
backend is tested against, used by `evaluate`) or `sympy_value` (each op's SymPy
form over object arrays: exact renders in check/exact.py and the VJP proofs in
check/verify.py).  SymPy is imported only when a SymPy value is asked for.
"""
import numpy as np

from graphc.ir import shapes as S
from graphc.errors import CallError, LabelRangeError, NumericError, label_range_message, where
from graphc.ir.ops.registry import get


def bind_feeds(graph, feeds):
    """Check fed arrays against the graph's inputs and params; bind symbolic dims.

    Returns ({node: array}, {dim name: size}).  Raises CallError naming the
    input, its declared shape and dtype, and what was passed.
    """
    leaves = {graph.name_of(n): n for n in graph.nodes_with_op("input", "param")}
    unknown = sorted(set(feeds) - set(leaves))
    if unknown:
        raise CallError(f"unexpected argument(s) {', '.join(unknown)}; graph {graph.name!r} takes {', '.join(leaves)}")
    missing = [name for name in leaves if name not in feeds]
    if missing:
        raise CallError(f"missing argument(s) {', '.join(missing)} for graph {graph.name!r}")
    values, dims = {}, {}
    for name, n in leaves.items():
        values[n] = _check_array(graph, n, feeds[name], dims)
    return values, dims


def _check_array(graph, n, value, dims):
    declared, dtype = graph.shape(n), graph.dtype(n)
    label = f"{graph.op(n)} '{graph.name_of(n)}' {S.fmt(declared)} {dtype}"
    if isinstance(value, np.ndarray):
        if value.dtype.name != dtype:
            raise CallError(f"{label}: got dtype {value.dtype.name}; cast it with .astype('{dtype}')")
        arr = value
    else:
        try:
            arr = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise CallError(f"{label}: cannot convert {type(value).__name__} ({e})") from None
    reason = S.unify(declared, arr.shape, dims)
    if reason:
        raise CallError(f"{label}: {reason}")
    return arr


def empty_axis_checks(graph):
    """(node, axis, dim) for every max that reduces an axis of symbolic size.  A max over
    an empty axis has no value: refused when built (ops/tensor.py) for a size that is 0
    in the graph, and by `check_empty_axes` for a dim bound to 0 at call time."""
    out = []
    for n in graph.nodes_with_op("max"):
        shape = graph.shape(graph.operands(n)[0])
        out += [(n, a, shape[a]) for a in S.normalize_axes(graph.node(n)["attrs"]["axes"], len(shape))
                if isinstance(shape[a], str)]
    return out


def check_empty_axes(graph, checks, dims):
    """Raise the CallError every backend raises for a max over an axis bound to size 0."""
    for n, a, d in checks:
        if dims.get(d) == 0:
            shape = graph.shape(graph.operands(n)[0])
            raise CallError(where(graph.name_of(n), graph.op(n), f"max over axis {a} of {S.fmt(shape)} with {d} = 0 "
                                  f"has no value (graph {graph.name!r})"))


def bound_attrs(attrs, dims):
    """Attrs with symbolic `shape` entries replaced by their bound sizes."""
    if "shape" in attrs:
        return {**attrs, "shape": S.bind(attrs["shape"], dims)}
    return attrs


def numpy_value(graph, n, args, attrs):
    """Node n's value by its op's NumPy reference."""
    op = graph.op(n)
    try:
        with np.errstate(all="ignore"):  # NaN/Inf are reported by check_finite, by node
            return np.asarray(get(op).numpy_impl(*args, **attrs))
    except LabelRangeError as e:  # the reference knows the bound; here we know the node
        raise CallError(label_range_message(graph.name, op, graph.name_of(n), e.bound)) from None


def exact(value):
    """Float attrs (alpha=0.1) become exact rationals, so SymPy values never see a Float."""
    if isinstance(value, (float, np.floating)):
        import sympy
        return sympy.nsimplify(float(value), rational=True)
    return value


def sym_apply(opdef, args, attrs):
    """Apply one op to object arrays of SymPy expressions."""
    attrs = {k: exact(v) for k, v in attrs.items()}
    impl = opdef.sympy_impl or opdef.numpy_impl  # structural ops work on object arrays
    return np.asarray(impl(*args, **attrs), dtype=object)


def sympy_value(graph, n, args, attrs):
    """Node n's value by its op's SymPy form (structural ops: their NumPy reference on object arrays)."""
    return sym_apply(get(graph.op(n)), args, attrs)


def walk(graph, values, value_of, dims=None):
    """The one graph walker.  `values` holds the leaves ({node: value}, as bound);
    every other node, in topological order, gets value_of(graph, n, operand values,
    attrs with symbolic shapes bound from `dims`).  Returns {node: value}."""
    values, dims = dict(values), dims or {}
    for n in graph.toposort():
        if n not in values:
            attrs = bound_attrs(graph.node(n)["attrs"], dims)
            values[n] = value_of(graph, n, [values[o] for o in graph.operands(n)], attrs)
    return values


class Evaluation:
    """Every node's value after one evaluation, readable by name."""

    def __init__(self, graph, values):
        self.graph, self.values = graph, values

    def __getitem__(self, name):
        return self.values[self.graph.find(name)]

    @property
    def outputs(self):
        return {k: self.values[n] for k, n in self.graph.outputs.items()}

    @property
    def updates(self):
        """A step graph's new state: param name -> its value after the step (the interpreter never mutates feeds)."""
        return {self.graph.name_of(p): self.values[v] for p, v in self.graph.updates.items()}

    def grad(self, name):
        """The gradient of the loss with respect to node `name`."""
        return self.values[self.graph.grads[name]]

    def edge(self, src, dst, pos=None):
        """Upstream, local and downstream gradient on the edge src -> dst (names)."""
        s, d = self.graph.find(src), self.graph.find(dst)
        keys = [k for k in self.graph.edge_grads if k[0] == s and k[1] == d and (pos is None or k[2] == pos)]
        if len(keys) != 1:
            raise KeyError(f"edge {src} -> {dst}: {len(keys)} gradient records (pass pos=)")
        rec = self.graph.edge_grads[keys[0]]
        return {role: (None if v is None else self.values[v]) for role, v in rec.items()}


def evaluate(graph, feeds=None, check_finite=False, **kw_feeds):
    """Evaluate every node of `graph`; returns an Evaluation."""
    feeds = dict(feeds or {}, **kw_feeds)
    graph.check_dims_bound()  # a graph edited by hand may skip validate()
    values, dims = bind_feeds(graph, feeds)
    check_empty_axes(graph, empty_axis_checks(graph), dims)
    return Evaluation(graph, walk(graph, values, _finite_value if check_finite else numpy_value, dims))


def _finite_value(graph, n, args, attrs):
    value = numpy_value(graph, n, args, attrs)
    _check_finite(graph, n, value)
    return value


def _check_finite(graph, n, value):
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        bad = "NaN" if np.isnan(value).any() else "Inf"
        raise NumericError(where(graph.name_of(n), graph.op(n), f"produced {bad} (first node to do so)"))
