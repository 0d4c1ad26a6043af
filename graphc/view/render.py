"""Annotated drawings of a graph: the lecture's backprop slide, drawn from code.

The view only reads.  graphc.check.annotate computes what is drawn (values,
gradients, every edge's U, L and U·L) and hands over an annotation; `to_dot`
gives DOT source in which every node shows its op, name, value and gradient and
every edge the upstream gradient U, the local gradient L and their product U·L.
`render()` writes svg, png, pdf or dot (see graphc.view.engines for how it is
laid out).  A bare Graph is drawn as its structure, without values.

The public `graphc.render.annotate` / `graphc.render.render` annotate and then
call this module.
"""
from graphc.errors import GraphcError
from graphc.view.collapse import draw_collapsed
from graphc.view.labels import draw_nodes, forward_nodes, new_dot, readable, title

RANKDIRS = ("LR", "TB", "RL", "BT")
FORMATS = ("svg", "png", "pdf", "dot")


def to_dot(graph_or_ann, forward_only=False, backward_graph=False, rankdir="LR", collapse=False):
    """graphviz.Digraph of an annotation (or a bare graph's structure).

    forward_only: no gradients; backward_graph: the gradient graph's every node;
    collapse: repeated blocks as one box each (graphc.view.collapse)."""
    if rankdir not in RANKDIRS:
        raise GraphcError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    ann = readable(graph_or_ann)
    # No name: graphviz would write it unquoted when it looks like an HTML string
    # (`<a>{ evil ... } digraph <b>`).  The name shows in the escaped title instead.
    dot = new_dot(rankdir, title(ann, forward_only, backward_graph))
    if backward_graph:
        _draw_all(dot, ann)
    elif collapse:
        draw_collapsed(dot, ann, show_grads=not forward_only)
    else:
        draw_nodes(dot, ann, forward_nodes(ann.graph), show_grads=not forward_only)
    return dot


def _draw_all(dot, ann):
    """The gradient graph itself: forward and backward nodes, each with its value."""
    draw_nodes(dot, ann, ann.graph.toposort(), show_grads=False, backward=True)


def render(graph_or_ann, path, fmt=None, **options):
    """Write the drawing to `path` (format from its suffix unless `fmt`); returns the engine used."""
    from graphc.view.engines import write
    fmt = fmt or str(path).rsplit(".", 1)[-1].lower()
    if fmt not in FORMATS:
        raise GraphcError(f"cannot write {path}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    return write(to_dot(graph_or_ann, **options).source, path, fmt)


def mimebundle(graph_or_ann, text, **options):
    """SVG for Jupyter when a layout engine is present, and the text form always."""
    from graphc.view.engines import draw
    bundle = {"text/plain": text}
    try:
        bundle["image/svg+xml"] = draw(to_dot(graph_or_ann, **options).source, "svg").decode("utf-8")
    except Exception:  # noqa: BLE001 - a notebook should still show the text form
        pass
    return bundle


def annotation_mimebundle(ann):
    """An annotation in Jupyter: its drawing, and as text the backprop trace (or the graph's text form)."""
    from graphc.view.backprop_table import format_text
    return mimebundle(ann, format_text(ann) if ann.has_grads and ann.values is not None else ann.graph.to_text())


def graph_mimebundle(graph):
    """A bare graph's drawing: structure only; a gradient graph shows its backward nodes too."""
    backward = any(p == "backward" for _, p in graph.nx.nodes(data="phase"))
    return mimebundle(graph, graph.to_text(), backward_graph=backward)
