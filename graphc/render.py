"""Kept so that code written against the flat layout of graphc 0.1 keeps working.

The drawing lives in graphc.view.render (it only reads); what it shows is computed
by graphc.check.annotate.  `annotate` and `render` here join the two as before:
`render(annotate(graph, feeds), "g.svg")`, or `render(graph, "g.svg")` for the
structure alone (differentiated when it has a scalar loss).  docs/render.md.
"""
from dataclasses import fields

from graphc.check.annotate import Annotation, grad_nodes  # noqa: F401
from graphc.check.annotate import annotate as _annotate
from graphc.check.exact import numeric, parse_rational  # noqa: F401
from graphc.ir.graph import Graph
from graphc.view import render as _view
from graphc.view.backprop_table import backprop_rows
from graphc.view.format import SMALL, esc, fmt_short, fmt_value, html_rows, type_text  # noqa: F401
from graphc.view.labels import (FILL, GRAD_COLOR, VALUE_COLOR, edge_attrs, edge_label, forward_nodes,  # noqa: F401
                                node_attrs, node_label, title)
from graphc.view.render import (FORMATS, RANKDIRS, annotation_mimebundle, graph_mimebundle,  # noqa: F401
                                mimebundle, to_dot)


class Annotated(Annotation):
    """An annotation that draws itself: `to_dot()`, `trace()`, and its drawing in Jupyter."""

    def to_dot(self, **options):
        return to_dot(self, **options)

    def trace(self):
        return backprop_rows(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return annotation_mimebundle(self)


def annotate(graph, feeds=None, loss=None, wrt=None, exact=False, differentiate=True):
    """graphc.check.annotate.annotate, returned as an `Annotated` (see its docstring)."""
    ann = _annotate(graph, feeds, loss=loss, wrt=wrt, exact=exact, differentiate=differentiate)
    return Annotated(**{f.name: getattr(ann, f.name) for f in fields(ann)})


def render(graph_or_ann, path, fmt=None, **options):
    """Write the drawing to `path` (format from its suffix unless `fmt`); returns the engine used.
    A Graph is annotated first (no feeds: its structure, differentiated where it can be)."""
    ann = annotate(graph_or_ann) if isinstance(graph_or_ann, Graph) else graph_or_ann
    return _view.render(ann, path, fmt, **options)
