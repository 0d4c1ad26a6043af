"""Annotated drawings of a graph: the lecture's backprop slide, drawn from code.

`annotate(graph, feeds)` differentiates the graph (when it has a scalar loss),
evaluates it, and returns an `Annotated` whose `to_dot()` gives DOT source:
every node shows its op, name, value and gradient; every edge shows the
upstream gradient U, the local gradient L and their product U·L.  `render()`
writes svg, png, pdf or dot (see graphc.view.engines for how it is laid out).

Labels are Graphviz HTML-like labels built from escaped text, so a name such
as `a<b>` or a quote cannot break the DOT.
"""
import html

import graphviz
import numpy as np

from graphc.ir import shapes as S
from graphc.errors import GraphcError
from graphc.check.interpreter import bind_feeds, evaluate
from graphc.ir.ops.registry import FLOATS
from graphc.check.exact import exact_values, parse_rational

SMALL = 6  # tensors with at most this many entries show their values
RANKDIRS = ("LR", "TB", "RL", "BT")
FILL = {"input": "#dbe9f6", "param": "#fdf0c4", "const": "#eeeeee"}
VALUE_COLOR, GRAD_COLOR, BACKWARD_FILL = "#1a7f37", "#c62828", "#fde2e1"


class Annotated:
    """A graph evaluated at given inputs: values of every node, U/L/U·L of every recorded edge."""

    def __init__(self, graph, values, feeds_text="", note="", exact=False, dims=None):
        self.graph, self.values, self.exact = graph, values, exact
        self.feeds_text, self.note, self.dims = feeds_text, note, dims or {}

    @property
    def has_grads(self):
        return bool(self.graph.edge_grads)

    def value(self, n):
        return None if self.values is None else self.values.get(n)

    def grad(self, n):
        """dL/dn for a forward node n, or None where the backward pass never reached it."""
        if not hasattr(self, "_grad_nodes"):
            self._grad_nodes = grad_nodes(self.graph)
        node = self._grad_nodes.get(n)
        return None if node is None else self.value(node)

    def edge(self, key):
        """(U, L, U·L) values of the edge record `key` = (src, dst, pos); L is None for VJP ops."""
        rec = self.graph.edge_grads[key]
        return tuple(None if rec[r] is None else self.value(rec[r]) for r in ("upstream", "local", "downstream"))

    def to_dot(self, **options):
        return to_dot(self, **options)

    def trace(self):
        from graphc.view.backprop_table import backprop_rows
        return backprop_rows(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        from graphc.view.backprop_table import format_text
        return mimebundle(self, format_text(self) if self.has_grads else self.graph.to_text())


def grad_nodes(graph):
    """{forward node n: the node holding dL/dn}.  That is the upstream gradient recorded
    on n's operand edges (autodiff hands a node its summed cotangent), or for a
    differentiated leaf its entry in graph.grads."""
    found = {dst: rec["upstream"] for (_, dst, _), rec in graph.edge_grads.items()}
    for name, node in graph.grads.items():
        found.setdefault(graph.find(name), node)
    return found


# ----- evaluation --------------------------------------------------------------------
def annotate(graph, feeds=None, loss=None, wrt=None, exact=False, differentiate=True):
    """Differentiate (if the graph has a scalar loss and no gradients yet) and evaluate.

    `feeds` maps every input and param name to a value.  With `exact=True`
    the graph is evaluated with SymPy: float feeds become rationals (a string
    such as "0.1" becomes exactly 1/10), so the numbers match a hand calculation.
    `feeds=None` draws the structure alone, without values.
    """
    from graphc.transform.autodiff import grad
    g, note = graph, ""
    if differentiate and not graph.edge_grads:
        why = _why_no_grad(graph, loss)
        if why:
            note = f"no gradients: {why}"
        else:
            g = grad(graph, loss=loss, wrt=wrt)
    if feeds is None:
        return Annotated(g, None, note=note)
    values, dims = (exact_values if exact else _float_values)(g, feeds)
    return Annotated(g, values, feeds_text=_feeds_text(feeds), note=note, exact=exact, dims=dims)


def _why_no_grad(graph, loss):
    """Why this graph cannot be differentiated as it stands, or None."""
    if loss is None and len(graph.outputs) != 1:
        return f"{len(graph.outputs)} outputs ({', '.join(graph.outputs)}); pass a loss"
    name = loss or next(iter(graph.outputs))
    n = graph.outputs.get(name)
    n = graph.find(name) if n is None else n
    if graph.shape(n) != ():
        return f"output {name!r} has shape {S.fmt(graph.shape(n))}, not a scalar"
    if graph.dtype(n) not in FLOATS:
        return f"output {name!r} is {graph.dtype(n)}"
    if not any(graph.dtype(x) in FLOATS for x in graph.nodes_with_op("input", "param")):
        return "no float inputs or params"
    return None


def _float_values(g, feeds):
    feeds = {k: numeric(v) for k, v in feeds.items()}
    _, dims = bind_feeds(g, feeds)
    return evaluate(g, feeds).values, dims


def _is_text(v):
    return isinstance(v, str) or (isinstance(v, np.ndarray) and v.dtype.kind in "US")


def numeric(v):
    """Text feeds ("0.1", "1/3", as the command line passes them) become floats."""
    if not _is_text(v):
        return v
    arr = np.asarray(v)
    # A loop, not np.vectorize: its ufunc reports FPU flags that SymPy's own arithmetic
    # leaves behind as a spurious "invalid value" RuntimeWarning on stderr.
    return np.array([float(parse_rational(s)) for s in arr.ravel()], dtype=float).reshape(arr.shape)


def _feeds_text(feeds):
    scalars = [f"{k}={_num(v)}" for k, v in feeds.items() if np.ndim(v) == 0]
    return ", ".join(scalars) if len(scalars) == len(feeds) else ""


# ----- formatting numbers --------------------------------------------------------------
def _num(v):
    """A scalar as a hand calculation writes it: 9, -1, 0.25, 1/3, 2.718."""
    import sympy
    if isinstance(v, np.ndarray):
        v = v.item() if v.dtype != object else v.reshape(())[()]
    if isinstance(v, str):
        return v
    if isinstance(v, sympy.Basic):
        text = str(v)
        if v.is_Rational and len(text) <= 40:
            return text
        return text if len(text) <= 24 else f"≈{sympy.N(v, 6)}"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


def fmt_value(v):
    """Lines describing a value: a scalar's number, a small tensor's entries, else statistics."""
    if v is None:
        return []
    arr = np.asarray(v)
    if arr.ndim == 0:
        return [_num(arr)]
    if arr.size <= SMALL:
        return [_nested(arr)]
    stats = arr.astype(float)
    return [f"mean {_num(stats.mean())}  std {_num(stats.std())}",
            f"min {_num(stats.min())}  max {_num(stats.max())}"]


def _nested(arr):
    if np.ndim(arr) == 0:  # an entry of an exact (object) array is a bare SymPy number
        return _num(arr)
    return "[" + ", ".join(_nested(a) for a in arr) + "]"


def fmt_short(v):
    """One short line for an edge label: the number, or shape and largest magnitude."""
    if v is None:
        return "—"
    arr = np.asarray(v)
    if arr.size <= 3:
        return _nested(arr)
    return f"{S.fmt(arr.shape)} max|·| {_num(np.abs(arr.astype(float)).max())}"


def type_text(graph, n, dims=None):
    shape = S.bind(graph.shape(n), dims) if dims and not S.is_concrete(graph.shape(n)) else graph.shape(n)
    return f"{graph.dtype(n)} {S.fmt(shape)}"


# ----- DOT -------------------------------------------------------------------------------
def esc(text):
    """Text made safe inside a Graphviz HTML-like label.  Graphviz still reads backslash
    escapes there (`\\\\` becomes one backslash, `\\N` the node's name), so each backslash
    is followed by a zero-width space that no escape starts with; control characters
    are shown escaped (a loaded graph has none: names are identifiers)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return html.escape(text, quote=True).replace("\\", "&#92;&#8203;")


def node_label(ann, n, show_grad=True):
    g = ann.graph
    rows = [f"<B>{esc(g.name_of(n))}</B>  {esc(g.op(n))}"]
    if g.shape(n) != ():
        rows.append(f'<FONT POINT-SIZE="10">{esc(type_text(g, n, ann.dims))}</FONT>')
    aliases = [k for k, v in g.outputs.items() if v == n and k != g.name_of(n)]
    if aliases:  # e.g. the gradient graph's output g_x1 is the node g_a
        rows.append(f'<FONT POINT-SIZE="10">output {esc(", ".join(aliases))}</FONT>')
    rows += [f'<FONT COLOR="{VALUE_COLOR}">{"value " if i == 0 else ""}{esc(t)}</FONT>'
             for i, t in enumerate(fmt_value(ann.value(n)))]
    if show_grad:
        rows += [f'<FONT COLOR="{GRAD_COLOR}">{"grad " if i == 0 else ""}{esc(t)}</FONT>'
                 for i, t in enumerate(fmt_value(ann.grad(n)))]
    return html_rows(rows)


def html_rows(rows):
    body = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{body}</TABLE>>'


def edge_label(ann, key):
    u, loc, down = ann.edge(key)
    local = "VJP" if ann.graph.edge_grads[key]["local"] is None else fmt_short(loc)
    return html_rows([f"U = {esc(fmt_short(u))}", f"L = {esc(local)}",
                      f'<FONT COLOR="{GRAD_COLOR}">U·L = {esc(fmt_short(down))}</FONT>'])


def node_attrs(graph, n, backward=False):
    op, phase = graph.op(n), graph.node(n)["phase"]
    fill = BACKWARD_FILL if backward and phase == "backward" else FILL.get(op, "white")
    outputs = set(graph.outputs.values())
    return {"shape": "box", "style": "rounded,filled", "fillcolor": fill,
            "penwidth": "2" if n in outputs else "1"}


def to_dot(ann, forward_only=False, backward_graph=False, rankdir="LR", collapse=False):
    """graphviz.Digraph of the annotated graph (see the module docstring for the options)."""
    if rankdir not in RANKDIRS:
        raise GraphcError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    g = ann.graph
    # No name: graphviz would write it unquoted when it looks like an HTML string
    # (`<a>{ evil ... } digraph <b>`).  The name shows in the escaped title instead.
    dot = graphviz.Digraph(graph_attr={"rankdir": rankdir, "labelloc": "t", "fontsize": "12",
                                                         "fontname": "Helvetica"},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    dot.attr(label=html_rows([esc(title(ann, forward_only, backward_graph))]))
    if backward_graph:
        _draw_all(dot, ann)
    elif collapse:
        from graphc.view.collapse import draw_collapsed
        draw_collapsed(dot, ann, show_grads=not forward_only)
    else:
        _draw_forward(dot, ann, show_grads=not forward_only)
    return dot


def title(ann, forward_only, backward_graph):
    parts = [f"graph {ann.graph.name}"]
    if ann.feeds_text:
        parts.append(f"at {ann.feeds_text}")
    if ann.values is not None:
        parts.append("exact values" if ann.exact else "values")
    if ann.has_grads and not forward_only and not backward_graph:
        parts.append("edges: U (upstream), L (local), U·L (downstream)")
    if ann.note:
        parts.append(ann.note)
    return "; ".join(parts)


def forward_nodes(graph):
    return [n for n in graph.toposort() if graph.node(n)["phase"] == "forward"]


def _draw_forward(dot, ann, show_grads):
    g = ann.graph
    nodes = forward_nodes(g)
    for n in nodes:
        dot.node(f"n{n}", label=node_label(ann, n, show_grads), **node_attrs(g, n))
    for n in nodes:
        for pos, src in enumerate(g.operands(n)):
            dot.edge(f"n{src}", f"n{n}", **edge_attrs(ann, (src, n, pos), show_grads))


def edge_attrs(ann, key, show_grads):
    if show_grads and ann.values is not None and key in ann.graph.edge_grads:
        return {"label": edge_label(ann, key)}
    return {}


def _draw_all(dot, ann):
    """The gradient graph itself: forward and backward nodes, each with its value."""
    g = ann.graph
    for n in g.toposort():
        dot.node(f"n{n}", label=node_label(ann, n, show_grad=False), **node_attrs(g, n, backward=True))
    for n in g.toposort():
        for src in g.operands(n):
            dot.edge(f"n{src}", f"n{n}")


# ----- output ------------------------------------------------------------------------------
FORMATS = ("svg", "png", "pdf", "dot")


def render(graph_or_ann, path, fmt=None, **options):
    """Write the drawing to `path` (format from its suffix unless `fmt`); returns the engine used."""
    from graphc.view.engines import write
    ann = graph_or_ann if isinstance(graph_or_ann, Annotated) else annotate(graph_or_ann)
    fmt = fmt or str(path).rsplit(".", 1)[-1].lower()
    if fmt not in FORMATS:
        raise GraphcError(f"cannot write {path}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    return write(ann.to_dot(**options).source, path, fmt)


def mimebundle(ann, text, **options):
    """SVG for Jupyter when a layout engine is present, and the text form always."""
    from graphc.view.engines import draw
    bundle = {"text/plain": text}
    try:
        bundle["image/svg+xml"] = draw(ann.to_dot(**options).source, "svg").decode("utf-8")
    except Exception:  # noqa: BLE001 - a notebook should still show the text form
        pass
    return bundle


def graph_mimebundle(graph):
    """A bare graph's drawing: structure only; a gradient graph shows its backward nodes too."""
    backward = any(p == "backward" for _, p in graph.nx.nodes(data="phase"))
    return mimebundle(annotate(graph, differentiate=False), graph.to_text(), backward_graph=backward)
