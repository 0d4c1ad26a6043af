"""graphc: a symbolic computation-graph compiler for neural networks.

Declare a network with the DSL, differentiate it with `grad` (which returns a
graph), emit and run readable code with `compile`, and prove every op's
derivative with `graphc.check.verify`.
"""
from graphc.errors import (ArityError, CallError, DisconnectedOutputError,
                           DTypeError, DuplicateNameError, GraphcError,
                           GraphCycleError, NonScalarLossError, NumericError,
                           ShapeError, UnknownOpError)
from graphc.ir.graph import Graph
from graphc.frontend.dsl import (Builder, Input, Param, Value, abs, add, bce_with_logits,
                                 broadcast_to, cast, count, div, elu, eq, erf, exp,
                                 gather, ge, gt, le, leaky_relu, log, log_softmax,
                                 logsumexp, lt, matmul, max, maximum, mean, minimum,
                                 mul, ne, neg, one_hot, pow, relu, reshape, sigmoid,
                                 sign, softmax, softmax_cross_entropy, softplus, sqrt,
                                 sub, sum, tanh, transpose, unbroadcast, where)
from graphc.frontend.tracing import trace
from graphc.frontend.functional import (batch_norm, bce_loss, cross_entropy, dropout,
                                        gelu, l2_penalty, layer_norm, maxout, mse, silu,
                                        swish)
from graphc.transform.autodiff import grad
from graphc.frontend.user_ops import define_elementwise
from graphc.check.interpreter import evaluate
from graphc.runtime import Compiled
from graphc.backends import compile
from graphc import dsl  # noqa: F401  (the old-path shim: gc.dsl.constant(...) works as in 0.1)
from graphc._version import __version__  # noqa: F401  (a leaf module: any layer may read it)
from graphc import _old_paths
from graphc import dsl  # noqa: F401  (gc.dsl.Param, as before the layout)

_old_paths.install()  # graphc.verify, graphc.graphfile, ... (the 0.1 layout's paths) still import


def _graph_mimebundle(graph):
    from graphc.view.render import graph_mimebundle  # drawing imports graphviz: only on first display
    return graph_mimebundle(graph)


Graph.mimebundle_hook = _graph_mimebundle  # the IR cannot import view/, the public API can


def render_html(graph, feeds=None, *, loss=None, wrt=None, exact=False, **options):
    """One self-contained HTML page that steps through backprop: the graph annotated at `feeds`
    (graphc.check.annotate; exact=True: SymPy rationals) or an annotation, handed to
    graphc.view.stepper.page.render_html (collapse=, rankdir=, quiz=).
    Imported on first use: importing graphc does not import the renderer."""
    from graphc.check.annotate import annotate
    from graphc.view.stepper.page import render_html as _render_html
    ann = annotate(graph, feeds, loss=loss, wrt=wrt, exact=exact) if isinstance(graph, Graph) else graph
    return _render_html(ann, **options)
