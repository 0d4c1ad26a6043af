"""Reverse-mode AD that returns graph.

Walk the topological order backwards; at each node apply its op's VJP (which
builds nodes), sum cotangents where a value fans out, and unbroadcast each one
back to its operand's shape.  The result is one Graph with forward and
backward nodes, so it can be emitted, rendered, and differentiated again.
Cost is linear in nodes plus edges: every edge is visited once.
"""
import numpy as np

from graphc.frontend import dsl as F
from graphc.transform import rewrite as rewrite
from graphc.ir import shapes as S
from graphc.errors import GraphcError, NonScalarLossError
from graphc.ir.ops.registry import FLOATS, get


class VJPContext:
    """What a VJP or derivative rule sees: operands, output, attrs, and `F` to build graph."""
    F = F

    def __init__(self, graph, node):
        self.graph, self.node = graph, node
        self.x = [F.Value(graph, o) for o in graph.operands(node)]
        self.out = F.Value(graph, node)
        self.attrs = graph.node(node)["attrs"]
        self.dtype = graph.dtype(node)

    def const(self, value, exact=None):
        return F.constant(self.graph, value, self.dtype, exact=exact)


def grad(graph, loss=None, wrt=None, seed=None, optimize=True):
    """Differentiate `loss` (an output name; by default the only output, or the one named "loss") w.r.t. `wrt`.

    `wrt` defaults to the parameters, or to the float inputs when there are none.
    Returns a new Graph whose outputs are the original outputs plus `g_<name>`
    for each name in `wrt` (`g_<name>_2` when that output exists already, as
    when a gradient graph is differentiated again); `graph.grads` maps each
    name to its newest gradient node.  `seed` (the name of an input in
    `graph`) replaces the scalar 1 cotangent, which makes the result a VJP of
    a non-scalar output.
    """
    g = graph.copy()
    loss_node = _loss_node(g, loss)
    wrt_nodes = _wrt_nodes(g, wrt)
    with F.building("backward"):
        seed_value = _seed(g, loss_node, seed)
        cotangents = _backward(g, loss_node, wrt_nodes, seed_value)
        for n in wrt_nodes:
            total = cotangents[n] if n in cotangents else F.broadcast_to(F.constant(g, 0.0, g.dtype(n)), g.shape(n))
            name = _grad_name(g, n)
            g.grads[g.name_of(n)] = total.node
            g.set_output(total.node, name)
    return rewrite.optimize(g) if optimize else g


def _loss_node(g, loss):
    if loss is None and "loss" in g.outputs:
        loss = "loss"  # a model graph's convention: outputs loss and output
    if loss is None:
        if len(g.outputs) != 1:
            raise GraphcError(f"graph {g.name!r} has outputs {list(g.outputs)}; say which is the loss")
        loss = next(iter(g.outputs))
    node = g.outputs[loss] if loss in g.outputs else g.find(loss)
    return node


def _wrt_nodes(g, wrt):
    if wrt is None:
        nodes = g.params or [n for n in g.inputs if g.dtype(n) in FLOATS]
    else:
        nodes = [g.find(w) if isinstance(w, str) else w.node for w in wrt]
    for n in nodes:
        if g.dtype(n) not in FLOATS:
            raise GraphcError(f"node '{g.name_of(n)}' ({g.op(n)}): cannot differentiate with respect to a {g.dtype(n)} value")
    return nodes


def _seed(g, loss_node, seed):
    if seed is not None:
        return F.Value(g, g.find(seed))
    if g.shape(loss_node) != ():
        raise NonScalarLossError(
            f"node '{g.name_of(loss_node)}' ({g.op(loss_node)}): the loss must be a scalar, got shape "
            f"{S.fmt(g.shape(loss_node))}; reduce it with sum or mean, or pass seed=")
    return F.constant(g, 1.0, g.dtype(loss_node), name=_fresh(g, "g_" + g.name_of(loss_node)))


def _relevant(g, order, loss_node, wrt_nodes):
    """Nodes that both depend on some wrt node and feed the loss: only they need cotangents."""
    reaches = set(wrt_nodes)
    for n in order:
        # Only through differentiable operands: count(x) or x > 0 carry no gradient.
        diff = get(g.op(n)).differentiable
        if n not in reaches and any(o in reaches for i, o in enumerate(g.operands(n)) if i in diff):
            reaches.add(n)
    feeds = {loss_node}
    for n in reversed(order):
        if n in feeds:
            feeds.update(g.operands(n))
    return reaches & feeds


def _backward(g, loss_node, wrt_nodes, seed_value):
    order = g.toposort()
    relevant = _relevant(g, order, loss_node, wrt_nodes)
    parts = {loss_node: [(seed_value, None)]}
    totals = {}
    for n in reversed(order):
        if n not in relevant or n not in parts:
            continue
        totals[n] = _sum_parts(g, n, parts.pop(n))
        if get(g.op(n)).arity:
            _propagate(g, n, totals[n], relevant, parts)
    return totals


def _sum_parts(g, n, contributions):
    """Fan-out: a value used k times receives the sum of k cotangents."""
    src = g.name_of(n)
    if len(contributions) == 1:
        total = contributions[0][0]
        if _fresh_node(g, total):
            _try_rename(g, total.node, f"g_{src}")
        return total
    for part, dst in contributions:
        if _fresh_node(g, part):
            _try_rename(g, part.node, f"g_{src}_via_{dst}")
    total = contributions[0][0]
    for part, _ in contributions[1:]:
        total = F.add(total, part)
    _try_rename(g, total.node, f"g_{src}")
    return total


def _propagate(g, n, upstream, relevant, parts):
    opdef = get(g.op(n))
    ctx = VJPContext(g, n)
    operands = g.operands(n)
    wanted = [i for i, o in enumerate(operands)
              if i in opdef.differentiable and o in relevant and g.dtype(o) in FLOATS]
    if not wanted:
        return
    with F.building("backward", prefix=f"bwd_{g.name_of(n)}"):
        locals_, contribs = _contributions(opdef, ctx, upstream, wanted)
        for i in wanted:
            o = operands[i]
            part = _fit(contribs[i], g.shape(o), g.dtype(o))
            g.edge_grads[(o, n, i)] = {"upstream": upstream.node, "downstream": part.node,
                                       "local": locals_[i].node if locals_.get(i) is not None else None}
            _name_local(g, n, o, locals_.get(i))
            parts.setdefault(o, []).append((part, g.name_of(n)))


def _contributions(opdef, ctx, upstream, wanted):
    """Elementwise ops: downstream = upstream * local.  Others: the op's own VJP."""
    if opdef.derivs is not None:
        locals_ = {i: opdef.derivs(ctx, i) for i in wanted}
        locals_ = {i: v if isinstance(v, F.Value) else ctx.const(v) for i, v in locals_.items()}
        return locals_, {i: _times(upstream, locals_[i]) for i in wanted}
    contribs = opdef.vjp(ctx, upstream)
    return {}, {i: contribs[i] for i in wanted}


def _times(upstream, local):
    """upstream * local, skipping the multiply when local is the constant 1 or -1."""
    if local.op == "const" and np.ndim(_const(local)) == 0:
        value = float(_const(local))
        if value == 1.0:
            return upstream
        if value == -1.0:
            return F.neg(upstream)
    return F.mul(upstream, local)


def _const(v):
    return v.graph.node(v.node)["attrs"]["value"]


def _fit(part, shape, dtype):
    """Unbroadcast to the operand's shape and cast to its dtype."""
    part = F.unbroadcast(part, shape)
    if part.shape != tuple(shape):
        part = F.broadcast_to(part, shape)
    return F.cast(part, dtype)


def _name_local(g, n, o, local):
    if local is not None and _fresh_node(g, local):
        _try_rename(g, local.node, f"d_{g.name_of(n)}_d_{g.name_of(o)}")


def _fresh_node(g, v):
    """A backward node that still has an automatic name (so we may name it better)."""
    d = g.node(v.node)
    return d["phase"] == "backward" and (d["name"].startswith("bwd_") or d["name"].startswith(d["op"] + "_"))


def _fresh(g, name):
    return F._unique(g, name)


def _try_rename(g, node, name):
    g.rename(node, _fresh(g, name))


def _grad_name(g, n):
    """g_<name>, made unique among the outputs so differentiating twice keeps both."""
    base = name = "g_" + g.name_of(n)
    k = 1
    while name in g.outputs:
        k += 1
        name = f"{base}_{k}"
    return name
