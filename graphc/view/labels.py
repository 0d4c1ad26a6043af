"""The pieces of a drawing, read from an annotation: node and edge labels, styles, titles.

An annotation is what graphc.check.annotate hands the view: `.graph`, `.values`
(None for the structure alone), `.dims`, `.feeds`, `.note`, `.exact`, `.has_grads`,
and `.value(n)`, `.grad(n)`, `.edge(key)`.  A bare Graph is drawn through
`Structure`, the same reads with no values.  Labels are Graphviz HTML-like labels
built from escaped text, so a name such as `a<b>` or a quote cannot break the DOT.
"""
import graphviz

from graphc.ir.graph import Graph
from graphc.view.format import esc, feeds_text, fmt_short, fmt_value, html_rows, type_text

FILL = {"input": "#dbe9f6", "param": "#fdf0c4", "const": "#eeeeee"}
VALUE_COLOR, GRAD_COLOR, BACKWARD_FILL = "#1a7f37", "#c62828", "#fde2e1"
GRAPH_ATTRS = {"labelloc": "t", "fontsize": "12", "fontname": "Helvetica"}


class Structure:
    """A bare graph as the view reads an annotation: its structure, no values."""
    values, exact, note = None, False, ""

    def __init__(self, graph):
        self.graph, self.dims, self.feeds = graph, {}, {}

    @property
    def has_grads(self):
        return bool(self.graph.edge_grads)

    def value(self, n):
        return None

    grad = value

    def edge(self, key):
        return None, None, None


def readable(graph_or_ann):
    """What the view reads: an annotation as it is, a bare Graph as its Structure."""
    return Structure(graph_or_ann) if isinstance(graph_or_ann, Graph) else graph_or_ann


def new_dot(rankdir, label=None, name=None):
    """An empty graphviz.Digraph in the drawings' style; `label` is plain text (escaped here)."""
    dot = graphviz.Digraph(name=name, graph_attr={"rankdir": rankdir, **GRAPH_ATTRS},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    if label:
        dot.attr(label=html_rows([esc(label)]))
    return dot


def title(ann, forward_only=False, backward_graph=False):
    parts = [f"graph {ann.graph.name}"]
    at = feeds_text(ann.feeds)
    if at:
        parts.append(f"at {at}")
    if ann.values is not None:
        parts.append("exact values" if ann.exact else "values")
    if ann.has_grads and not forward_only and not backward_graph:
        parts.append("edges: U (upstream), L (local), U·L (downstream)")
    if ann.note:
        parts.append(ann.note)
    return "; ".join(parts)


def forward_nodes(graph):
    return [n for n in graph.toposort() if graph.node(n)["phase"] == "forward"]


def value_rows(ann, n, show_grad=True):
    """Label rows for node n's value (green) and, with show_grad, its gradient (red)."""
    rows = [f'<FONT COLOR="{VALUE_COLOR}">{"value " if i == 0 else ""}{esc(t)}</FONT>'
            for i, t in enumerate(fmt_value(ann.value(n)))]
    if show_grad:
        rows += [f'<FONT COLOR="{GRAD_COLOR}">{"grad " if i == 0 else ""}{esc(t)}</FONT>'
                 for i, t in enumerate(fmt_value(ann.grad(n)))]
    return rows


def small(text):
    return f'<FONT POINT-SIZE="10">{esc(text)}</FONT>'


def node_label(ann, n, show_grad=True):
    g = ann.graph
    rows = [f"<B>{esc(g.name_of(n))}</B>  {esc(g.op(n))}"]
    if g.shape(n) != ():
        rows.append(small(type_text(g, n, ann.dims)))
    aliases = [k for k, v in g.outputs.items() if v == n and k != g.name_of(n)]
    if aliases:  # e.g. the gradient graph's output g_x1 is the node g_a
        rows.append(small(f"output {', '.join(aliases)}"))
    return html_rows(rows + value_rows(ann, n, show_grad))


def edge_texts(ann, key):
    """(U, L, U·L) of an edge record as short text; L is 'VJP' where the op gives a whole VJP."""
    u, loc, down = ann.edge(key)
    local = "VJP" if ann.graph.edge_grads[key]["local"] is None else fmt_short(loc)
    return fmt_short(u), local, fmt_short(down)


def edge_label(ann, key):
    u, local, down = edge_texts(ann, key)
    return html_rows([f"U = {esc(u)}", f"L = {esc(local)}", f'<FONT COLOR="{GRAD_COLOR}">U·L = {esc(down)}</FONT>'])


def node_attrs(graph, n, backward=False):
    op, phase = graph.op(n), graph.node(n)["phase"]
    fill = BACKWARD_FILL if backward and phase == "backward" else FILL.get(op, "white")
    outputs = set(graph.outputs.values())
    return {"shape": "box", "style": "rounded,filled", "fillcolor": fill,
            "penwidth": "2" if n in outputs else "1"}


def edge_attrs(ann, key, show_grads):
    if show_grads and ann.values is not None and key in ann.graph.edge_grads:
        return {"label": edge_label(ann, key)}
    return {}


def draw_nodes(dot, ann, nodes, show_grads=True, ids=None, backward=False):
    """Draw `nodes` and the operand edges among them.  ids: a prefix giving each node and
    edge a stable SVG id (`<ids>-n<node>`, `<ids>-e<src>-<dst>-<pos>`), or None;
    backward: backward nodes get their own fill."""
    g, inside = ann.graph, set(nodes)
    for n in nodes:
        extra = {"id": f"{ids}-n{n}"} if ids else {}
        dot.node(f"n{n}", label=node_label(ann, n, show_grads), **extra, **node_attrs(g, n, backward))
    for n in nodes:
        for pos, src in enumerate(g.operands(n)):
            if src in inside:
                extra = {"id": f"{ids}-e{src}-{n}-{pos}"} if ids else {}
                dot.edge(f"n{src}", f"n{n}", **extra, **edge_attrs(ann, (src, n, pos), show_grads))
