"""The stepper's picture: DOT with stable ids, laid out once by Graphviz, then cleaned.

Graphviz copies a DOT `id` attribute onto the SVG group of a node or edge, so
the tape can name what to highlight.  The laid-out SVG then goes through an
allowlist (`clean_svg`): only drawing elements and presentation attributes
survive, so no link, script, event handler or external reference from a
graph's names can reach the page.  Texts are tagged with a class saying what
they show (`gc-val` value, `gc-grad` gradient, `gc-lbl` an edge's U/L/U·L), so
the page can hide what the current step has not computed yet.
"""
import re
import xml.etree.ElementTree as ET

from graphc.view.labels import GRAD_COLOR, VALUE_COLOR, draw_nodes, forward_nodes, new_dot, title

SVG_NS = "http://www.w3.org/2000/svg"
ELEMENTS = {"svg", "g", "title", "polygon", "polyline", "path", "ellipse", "text", "tspan"}
ATTRIBUTES = {"id", "class", "transform", "viewBox", "width", "height", "points", "d", "cx", "cy",
              "rx", "ry", "x", "y", "fill", "stroke", "stroke-width", "stroke-dasharray",
              "font-family", "font-size", "font-weight", "font-style", "text-anchor",
              "text-decoration", "opacity", "fill-opacity", "stroke-opacity",
              "{http://www.w3.org/XML/1998/namespace}space"}
SAFE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
SAFE_VALUE = re.compile(r"^[^<>\"'`\\]*$")  # no markup or quoting tricks inside an attribute
GRAPH_NAME = "graphc"  # a constant: the graph's own name shows only in the escaped title


def full_dot(ann, rankdir="LR"):
    """Every forward node and edge, with the finished picture's labels and stable ids
    (gc-n<node>, gc-e<src>-<dst>-<pos>: tape.node_id and tape.edge_id)."""
    dot = new_dot(rankdir, title(ann), GRAPH_NAME)
    draw_nodes(dot, ann, forward_nodes(ann.graph), ids="gc")
    return dot


def member_dot(ann, members, prefix, rankdir="LR"):
    """The inside of a collapsed box: its members and the edges among them."""
    dot = new_dot(rankdir, name=GRAPH_NAME)
    draw_nodes(dot, ann, members, ids=prefix)
    return dot


def laid_out(dot, prefix="gc-main"):
    from graphc.view.engines import draw
    return clean_svg(draw(dot.source, "svg").decode("utf-8"), prefix)


# ----- cleaning ---------------------------------------------------------------------------
def clean_svg(text, prefix="gc-main"):
    """The SVG with only allowlisted elements and attributes, texts tagged; a string.
    Graphviz's own ids (graph0, node1) get `prefix`, so several pictures fit in one page."""
    ET.register_namespace("", SVG_NS)
    root = ET.fromstring(text)  # expat never fetches the DOCTYPE's DTD
    _clean(root)
    for el in root.iter():
        if el.get("id") and not el.get("id").startswith("gc-"):
            el.set("id", f"{prefix}-{el.get('id')}")
    _tag(root)
    return ET.tostring(root, encoding="unicode")


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else None


def _clean(el):
    for key in list(el.attrib):
        value = el.attrib[key]
        name = _local(key) if key.startswith("{" + SVG_NS) else key
        ok = name in ATTRIBUTES and SAFE_VALUE.match(value) and "url(" not in value.lower()
        if ok and name == "id":
            ok = bool(SAFE_ID.match(value))
        if not ok:
            del el.attrib[key]
    for child in list(el):
        if not isinstance(child.tag, str) or _local(child.tag) not in ELEMENTS:
            el.remove(child)  # links, images, scripts, foreign content: gone with their insides
        else:
            _clean(child)


def _tag(root):
    for g in root.iter(f"{{{SVG_NS}}}g"):
        kind = g.get("class")
        if kind not in ("node", "edge"):
            continue
        for t in g.iter(f"{{{SVG_NS}}}text"):
            fill = (t.get("fill") or "").lower()
            cls = ("gc-lbl" if kind == "edge" else
                   "gc-val" if fill == VALUE_COLOR else "gc-grad" if fill == GRAD_COLOR else None)
            if cls:
                t.set("class", cls)
        for t in g.findall(f"{{{SVG_NS}}}title"):
            g.remove(t)  # "n4" tooltips mean nothing to a reader; the page's panel names the node
