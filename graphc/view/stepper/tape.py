"""The stepper's tape: the backward pass as a list of steps, in the backprop table's order.

Forward: one step per node (its value), in topological order.  Backward: nodes
in reverse topological order; at each node first its summed gradient (all its
users are done by then), then each operand edge from last to first with its
U, L and U·L -- the order of `graphc.view.backprop_table`.  Every step names the
SVG element it highlights: `gc-n<id>` for a node, `gc-e<src>-<dst>-<pos>` for
an edge, and in the collapse view `gc-u<i>` for a box and `gc-b<i>-<j>` for a
bundle of edges between two drawn elements.

Everything here is data (strings and numbers); the page escapes it.
"""
import numpy as np

from graphc.view.backprop_table import expression
from graphc.view.format import fmt_short, fmt_value, type_text
from graphc.view.labels import edge_texts, forward_nodes

HEAT = 24  # a heat map shows at most HEAT x HEAT cells (strided samples)
FIRST = 8  # how many leading entries a tensor's preview lists


def node_id(n):
    return f"gc-n{n}"


def edge_id(key):
    return "gc-e{}-{}-{}".format(*key)


# ----- previews of tensors -----------------------------------------------------------
def _floats(v):
    arr = np.asarray(v)
    if arr.dtype == object:
        return np.vectorize(lambda x: float(x), otypes=[float])(arr) if arr.size else arr.astype(float)
    return arr.astype(float)


def preview(v):
    """Shape, first entries and a small heat map of a tensor; None for scalars and missing values."""
    if v is None or np.ndim(v) == 0:
        return None
    try:
        arr = _floats(v)
    except (TypeError, ValueError):
        return None
    flat = np.asarray(v).reshape(-1)
    if arr.size == 0:  # e.g. a batch of 0: a shape, no entries
        return {"shape": list(arr.shape), "first": [], "more": 0, "min": "—", "max": "—", "heat": []}
    grid = arr.reshape(arr.shape[0], -1) if arr.ndim >= 2 else arr.reshape(1, -1)
    rows = np.unique(np.linspace(0, grid.shape[0] - 1, min(HEAT, grid.shape[0])).astype(int))
    cols = np.unique(np.linspace(0, grid.shape[1] - 1, min(HEAT, grid.shape[1])).astype(int))
    cells = grid[np.ix_(rows, cols)]
    finite = cells[np.isfinite(cells)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    span = hi - lo or 1.0
    levels = [[-1 if not np.isfinite(c) else int(round(255 * (c - lo) / span)) for c in row] for row in cells]
    return {"shape": list(arr.shape), "first": [fmt_short(x) for x in flat[:FIRST]],
            "more": int(flat.size > FIRST), "min": fmt_short(lo), "max": fmt_short(hi), "heat": levels}


# ----- the tape -------------------------------------------------------------------------
def _value_text(v):
    lines = fmt_value(v)
    return " ".join(lines) if lines else "—"


def element_info(ann, n, ident):
    g = ann.graph
    return {"id": ident, "name": g.name_of(n), "op": g.op(n), "type": type_text(g, n, ann.dims),
            "value": preview(ann.value(n)), "grad": preview(ann.grad(n))}


def value_step(ann, n, target):
    g = ann.graph
    leaf = g.op(n) in ("input", "param", "const")
    what = f"{g.name_of(n)} ({g.op(n)})" if leaf else expression(g, n)
    return {"kind": "value", "target": target, "node": g.name_of(n), "title": f"forward: {what}",
            "value": _value_text(ann.value(n))}


def grad_step(ann, n, target, loss_node):
    g = ann.graph
    name = g.name_of(n)
    step = {"kind": "grad", "target": target, "node": name, "title": f"gradient of {name}",
            "grad": _value_text(ann.grad(n))}
    if n == loss_node:
        step["sum"] = f"seed: ∂{name}/∂{name} = 1"
        return step
    parts = [fmt_short(ann.edge(k)[2]) for k in sorted(g.edge_grads) if k[0] == n]
    step["sum"] = f"sum of U·L over {name}'s out-edges: {' + '.join(parts) or '—'}"
    return step


def edge_step(ann, key, target):
    g = ann.graph
    u, local, down = edge_texts(ann, key)
    src, dst, _ = key
    return {"kind": "edge", "target": target, "node": g.name_of(dst),
            "title": f"backward: {g.name_of(src)} -> {g.name_of(dst)} in {expression(g, dst)}",
            "U": u, "L": local, "UL": down, "formula": ann.formula(key)}


def loss_node(ann, nodes):
    """The node the backward pass starts from: it has a gradient but sends none on."""
    sources = {k[0] for k in ann.graph.edge_grads}
    return next((n for n in reversed(nodes) if ann.grad(n) is not None and n not in sources), None)


def backward_steps(ann, order, incoming, seed):
    """The backward steps.  order: [(element id, node it shows)] in forward order;
    incoming: {element id: [(source element id, step)]} in visiting order.  Elements
    are visited in reverse order, their incoming edges last operand first; an
    element's gradient step comes as soon as its last outgoing edge is done (so
    before its own incoming edges), the seed's first."""
    outgoing = {}
    for edges in incoming.values():
        for src, _ in edges:
            outgoing[src] = outgoing.get(src, 0) + 1
    shows, steps, done = dict(order), [], set()

    def grad(ident):
        if ident not in done and ann.grad(shows[ident]) is not None:
            done.add(ident)
            steps.append(grad_step(ann, shows[ident], ident, seed))

    for ident, _ in reversed(order):
        if not outgoing.get(ident):
            grad(ident)
        for src, step in incoming.get(ident, ()):
            steps.append(step)
            outgoing[src] -= 1
            if outgoing[src] == 0:
                grad(src)
    return steps


def build_tape(ann):
    """(elements, steps) for the full view: every forward node and every recorded edge."""
    g = ann.graph
    nodes = forward_nodes(g)
    elements = {node_id(n): element_info(ann, n, node_id(n)) for n in nodes}
    if ann.values is None:
        return elements, []
    steps = [value_step(ann, n, node_id(n)) for n in nodes]
    if not g.edge_grads:
        return elements, steps
    incoming = {}
    for n in nodes:
        keys = sorted((k for k in g.edge_grads if k[1] == n), key=lambda k: -k[2])
        incoming[node_id(n)] = [(node_id(k[0]), edge_step(ann, k, edge_id(k))) for k in keys]
    order = [(node_id(n), n) for n in nodes]
    return elements, steps + backward_steps(ann, order, incoming, loss_node(ann, nodes))
