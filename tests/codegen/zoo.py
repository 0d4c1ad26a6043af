"""One graph holding every op of the table, for cross-backend agreement tests.

numba compiles are slow, so instead of one compiled graph per op (x dtypes x
parallel modes) the backends each compile this single graph, whose outputs
are named per op: y_<op> (the op's value) and g_<input>_<op> (gradients).
A disagreement is therefore still reported per op.
"""
import numpy as np

import graphc as gc
from graphc.frontend import dsl as dsl
from graphc.ir.ops import table
from tests.ops.test_op_table import graph_attrs, make_feeds

OPS = [op for op in table() if op.kind != "leaf"]
IDS = [op.name for op in OPS]


def _cast_feed(a, dtype):
    return a.astype(dtype) if a.dtype.kind == "f" else a


def build_zoo(dtype):
    """(step-free graph with gradients, feeds)."""
    b = gc.Builder(f"zoo_{dtype}", dtype=dtype)
    feeds, total = {}, None
    for k, op in enumerate(OPS):
        arrays = [_cast_feed(a, dtype) for a in make_feeds(op, seed=k)]
        xs = []
        for i, a in enumerate(arrays):
            name = f"x{i}_{op.name}"
            xs.append(b.input(name, a.shape, a.dtype.name))
            feeds[name] = a
        attrs = dict(graph_attrs(op))
        if "dtype" in attrs and attrs["dtype"].startswith("float"):
            attrs["dtype"] = dtype
        y = dsl.apply(op.name, *xs, name=f"y_{op.name}", **attrs)
        b.graph.set_output(y.node)
        w = b.const(np.random.default_rng(100 + k).standard_normal(y.shape), dtype="float64")
        term = gc.sum(gc.cast(y, "float64") * w)
        total = term if total is None else total + term
    b.graph.set_output(total.node, "loss")
    graph = b.graph.validate()
    wrt = [n for n in feeds if feeds[n].dtype.kind == "f"]
    return gc.grad(graph, loss="loss", wrt=wrt), feeds


def outputs_of(op, names):
    return [n for n in names if n == f"y_{op.name}" or n.endswith(f"_{op.name}")]
