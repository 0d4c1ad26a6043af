"""Graph rewrites: constant folding, common-subexpression elimination, and
dead-code elimination.  Each is one linear pass over the topological order."""
import numpy as np

from graphc.ir import shapes as S
from graphc.ir.ops.registry import get

FOLD_LIMIT = 4096  # elements: bigger results stay computed rather than baked in


def optimize(g):
    fold_constants(g)
    eliminate_common_subexpressions(g)
    eliminate_dead_code(g)
    return g


def fold_constants(g):
    """Evaluate nodes whose operands are all constants, and element counts of concrete shapes."""
    for n in g.toposort():
        data = g.node(n)
        if data["op"] == "count" and S.is_concrete(g.shape(g.operands(n)[0])):
            _make_const(g, n, _evaluate(g, n, [np.empty(g.shape(g.operands(n)[0]))]))
        elif _foldable(g, n):
            _make_const(g, n, _evaluate(g, n, [g.node(o)["attrs"]["value"] for o in g.operands(n)]))


def _foldable(g, n):
    operands = g.operands(n)
    if not operands or not all(g.op(o) == "const" for o in operands) or not S.is_concrete(g.shape(n)):
        return False
    # Never grow a constant (a broadcast scalar stays a broadcast, not a big array).
    size, biggest = int(np.prod(g.shape(n))), max(int(np.prod(g.shape(o))) for o in operands)
    return size <= max(biggest, 1) and size <= FOLD_LIMIT


def _evaluate(g, n, values):
    data = g.node(n)
    with np.errstate(all="ignore"):
        out = get(data["op"]).numpy_impl(*values, **data["attrs"])
    return np.asarray(out, dtype=data["dtype"])


def _make_const(g, n, value):
    """Turn node n into a constant in place: its id, name and users stay the same."""
    g.nx.remove_edges_from(list(g.nx.in_edges(n, keys=True)))
    g.node(n).update(op="const", attrs={"value": value})


def _cse_key(g, n):
    data = g.node(n)
    if data["op"] in ("input", "param"):
        return None
    if data["op"] == "const":
        v = np.asarray(data["attrs"]["value"])
        # Scalars cost nothing to repeat, and merging them would make a local
        # derivative "1" read as the seed gradient "g_f" in emitted code.
        return None if v.ndim == 0 else ("const", v.dtype.str, v.shape, v.tobytes())
    attrs = tuple(sorted((k, repr(v)) for k, v in data["attrs"].items()))
    return (data["op"], attrs, tuple(_operand_key(g, o) for o in g.operands(n)))


def _operand_key(g, o):
    """An operand as CSE sees it: scalar constants by value (each use has its own node)."""
    data = g.node(o)
    if data["op"] == "const":
        v = np.asarray(data["attrs"]["value"])
        if v.ndim == 0:
            return ("scalar", v.dtype.str, v.tobytes())
    return o


def eliminate_common_subexpressions(g):
    """Merge nodes that compute the same op on the same operands."""
    seen, merged = {}, {}
    for n in g.toposort():
        key = _cse_key(g, n)
        if key is None:
            continue
        if key in seen:
            _redirect_edges(g, n, seen[key])
            merged[n] = seen[key]
        else:
            seen[key] = n
    _remap_records(g, merged)
    for n in merged:
        g.remove_node(n)


def _redirect_edges(g, old, new):
    for _, dst, key, data in list(g.nx.out_edges(old, keys=True, data=True)):
        g.nx.add_edge(new, dst, key=key, **data)
    g.nx.remove_edges_from(list(g.nx.out_edges(old, keys=True)))


def _remap_records(g, mapping):
    """Apply node replacements to outputs, grads and edge records in one pass (linear)."""
    if not mapping:
        return
    m = lambda v: mapping.get(v, v)  # noqa: E731
    g.outputs = {k: m(v) for k, v in g.outputs.items()}
    g.grads = {k: m(v) for k, v in g.grads.items()}
    g.updates = {m(k): m(v) for k, v in g.updates.items()}
    g.edge_grads = {(m(s), m(d), p): {role: (None if v is None else m(v)) for role, v in rec.items()}
                    for (s, d, p), rec in g.edge_grads.items()}


def live_nodes(g, roots):
    """Nodes that the given roots depend on (the roots included)."""
    live = set(roots)
    stack = list(roots)
    while stack:
        for o in g.operands(stack.pop()):
            if o not in live:
                live.add(o)
                stack.append(o)
    return live


def eliminate_dead_code(g):
    """Drop nodes no output needs; inputs, params and gradient annotations stay."""
    roots = set(g.outputs.values()) | set(g.updates.values()) | set(g.nodes_with_op("input", "param"))
    for rec in g.edge_grads.values():
        roots.update(v for v in rec.values() if v is not None)
    live = live_nodes(g, roots)
    for n in [n for n in g.nx.nodes if n not in live]:
        g.remove_node(n)
    g.edge_grads = {k: r for k, r in g.edge_grads.items() if k[0] in live and k[1] in live}
