"""Collapse repeated blocks of a big model into one box each (`graphc render --collapse`).

Blocks are found two ways:

1. By name prefix.  Nodes named `layer1.W`, `layer1.h`, ... form the block
   `layer1` (the name up to its last dot).  Every such block becomes one box.
2. By repeated structure, for the nodes left over.  In topological order,
   a window of p >= 2 ops that is followed by copies of itself (same ops,
   shapes, dtypes, attrs and wiring inside the window) is a block; k >= 2
   consecutive copies form a run.  A loop `for W, b in layers: h = relu(h @ W + b)`
   gives one run of k blocks with no names needed.

Consecutive blocks with the same structure merge into one box labelled with
the count (x6).  Params and constants used only inside one box are drawn
inside it.  A box shows the value and gradient of its last block's output.
"""
from dataclasses import dataclass, field

from graphc.view.format import esc, html_rows, type_text
from graphc.view.labels import FILL, edge_attrs, forward_nodes, node_attrs, node_label, small, value_rows

LEAVES = ("input", "param", "const")
MAX_PERIOD = 32  # longest block (in ops) that structure detection looks for


@dataclass(eq=False)  # hashed by identity
class Unit:
    blocks: list  # lists of member nodes, one per block, in order
    names: list  # block names (prefixes), or [] for structure-detected blocks
    members: set = field(default_factory=set)


def signature(graph, members):
    """What makes two blocks 'the same': ops, types, attrs and wiring inside the block."""
    index = {m: i for i, m in enumerate(members)}
    sig = []
    for m in members:
        d = graph.node(m)
        attrs = () if d["op"] in LEAVES else tuple(sorted((k, repr(v)) for k, v in d["attrs"].items()))
        refs = tuple(index.get(o, ("ext", graph.shape(o))) for o in graph.operands(m))
        sig.append((d["op"], d["shape"], d["dtype"], attrs, refs))
    return tuple(sig)


def find_units(graph, nodes=None):
    """The boxes to draw: a list of Units (every other node is drawn as itself)."""
    nodes = forward_nodes(graph) if nodes is None else nodes
    order = {n: i for i, n in enumerate(nodes)}
    named = _prefix_groups(graph, nodes, order)
    grouped = {m for _, members in named for m in members}
    rest = [n for n in nodes if n not in grouped and graph.op(n) not in LEAVES]
    units = _merge_named(graph, named) + _repeated_runs(graph, rest)
    _absorb_leaves(graph, units)
    return units


def _prefix_groups(graph, nodes, order):
    groups = {}
    for n in nodes:
        name = graph.name_of(n)
        if "." in name:
            groups.setdefault(name.rsplit(".", 1)[0], set()).add(n)
    _adopt_unnamed(graph, nodes, groups)

    def first_compute(members):  # leaves are often all created first; order by the first op
        computed = [order[m] for m in members if graph.op(m) not in LEAVES]
        return min(computed or [order[m] for m in members])
    named = [(prefix, sorted(members, key=order.get)) for prefix, members in groups.items()
             if any(graph.op(m) not in LEAVES for m in members)]  # a lone param is no block
    return sorted(named, key=lambda item: first_compute(item[1]))


def _adopt_unnamed(graph, nodes, groups):
    """An automatically named op (matmul_3) whose users all lie in one block joins it:
    `layer1.h = tanh(x @ layer1.W + layer1.b)` names only the last node."""
    owner = {m: p for p, members in groups.items() for m in members}
    for n in reversed(nodes):
        d = graph.node(n)
        if n in owner or d["op"] in LEAVES or not d["name"].startswith(d["op"] + "_"):
            continue
        prefixes = {owner.get(dst) for dst in forward_users(graph, n)}
        if len(prefixes) == 1 and None not in prefixes:
            owner[n] = prefixes.pop()
            groups[owner[n]].add(n)


def _merge_named(graph, named):
    units = []
    for prefix, members in named:
        sig = signature(graph, members)
        last = units[-1] if units else None
        if last and last.names and signature(graph, last.blocks[-1]) == sig:
            last.blocks.append(members)
            last.names.append(prefix)
        else:
            units.append(Unit([members], [prefix]))
    for u in units:
        u.members = {m for b in u.blocks for m in b}
    return units


def _repeated_runs(graph, seq):
    """Greedy left-to-right: at each position take the period covering the most ops."""
    units, i = [], 0
    while i < len(seq):
        best = (0, 0)  # (ops covered, period)
        for p in range(2, min(MAX_PERIOD, (len(seq) - i) // 2) + 1):
            k = _copies(graph, seq, i, p)
            if k >= 2 and p * k > best[0]:
                best = (p * k, p)
        if best[0]:
            p = best[1]
            blocks = [seq[j:j + p] for j in range(i, i + best[0], p)]
            units.append(Unit(blocks, [], {m for b in blocks for m in b}))
            i += best[0]
        else:
            i += 1
    return units


def _copies(graph, seq, i, p):
    first = signature(graph, seq[i:i + p])
    k = 1
    while i + (k + 1) * p <= len(seq) and signature(graph, seq[i + k * p:i + (k + 1) * p]) == first:
        k += 1
    return k


def forward_users(graph, n):
    """Users in the forward graph (a gradient graph's backward nodes use params too)."""
    return [dst for dst, _ in graph.users(n) if graph.node(dst)["phase"] == "forward"]


def _absorb_leaves(graph, units):
    """A param or constant used only inside one box is drawn inside it."""
    owner = {m: u for u in units for m in u.members}
    for n in graph.nodes_with_op("param", "const"):
        if n in owner or graph.node(n)["phase"] != "forward":
            continue
        users = {owner.get(dst) for dst in forward_users(graph, n)}
        if len(users) == 1 and None not in users:
            users.pop().members.add(n)


def exit_node(graph, unit):
    """The last block's output: its last member used outside the box (else its last member)."""
    last = unit.blocks[-1]
    outside = [m for m in last if any(dst not in unit.members for dst in forward_users(graph, m))]
    return (outside or last)[-1]


def unit_head(unit, gap="  "):
    """A box's heading: its block name, 'layer1 … layer5<gap>×5', or 'block ×3'."""
    k = len(unit.blocks)
    if not unit.names:
        return f"block ×{k}"
    return unit.names[0] if k == 1 else f"{unit.names[0]} … {unit.names[-1]}{gap}×{k}"


def unit_attrs(unit):
    """A box's style: named blocks in the params' colour, found-by-structure ones green."""
    return {"shape": "box3d", "style": "filled", "fillcolor": FILL["param"] if unit.names else "#e8f5e9"}


def unit_label(ann, unit, show_grads):
    g = ann.graph
    ops = [g.op(m) for m in unit.blocks[0] if g.op(m) not in LEAVES]
    ops_text = " → ".join(ops[:6]) + (" → …" if len(ops) > 6 else "")
    out = exit_node(g, unit)
    rows = [f"<B>{esc(unit_head(unit))}</B>", small(ops_text), small(f"out {g.name_of(out)}: {type_text(g, out, ann.dims)}")]
    return html_rows(rows + value_rows(ann, out, show_grads))


def bundles(graph, nodes, box):
    """{(drawn source, drawn destination): [edge keys]} for the edges between drawn elements
    (box: node -> the name of the box drawing it; other nodes are drawn as n<node>)."""
    out = {}
    for n in nodes:
        for pos, src in enumerate(graph.operands(n)):
            a, b = box.get(src, f"n{src}"), box.get(n, f"n{n}")
            if a != b:
                out.setdefault((a, b), []).append((src, n, pos))
    return out


def bundle_attrs(ann, keys, show_grads):
    """One edge shows its U, L, U·L; a bundle of several shows their count."""
    return edge_attrs(ann, keys[0], show_grads) if len(keys) == 1 else {"label": f"×{len(keys)}"}


def draw_collapsed(dot, ann, show_grads=True, ids=None, units=None):
    """Draw the boxes, the nodes outside them, and the bundled edges between them; returns the
    units.  ids: a prefix giving stable SVG ids (<ids>-u<i>, <ids>-n<node>, <ids>-b-<a>-<b>)."""
    g = ann.graph
    nodes = forward_nodes(g)
    units = find_units(g, nodes) if units is None else units
    box = {m: f"u{i}" for i, u in enumerate(units) for m in u.members}
    ident = (lambda name: {"id": f"{ids}-{name}"}) if ids else (lambda name: {})
    for i, u in enumerate(units):
        dot.node(f"u{i}", label=unit_label(ann, u, show_grads), **ident(f"u{i}"), **unit_attrs(u))
    for n in nodes:
        if n not in box:
            dot.node(f"n{n}", label=node_label(ann, n, show_grads), **ident(f"n{n}"), **node_attrs(g, n))
    for (a, b), keys in bundles(g, nodes, box).items():
        dot.edge(a, b, **ident(f"b-{a}-{b}"), **bundle_attrs(ann, keys, show_grads))
    return units
