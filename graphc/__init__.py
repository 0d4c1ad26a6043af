"""graphc: a symbolic computation-graph compiler for neural networks.

Declare a network with the DSL, differentiate it with `grad` (which returns a
graph), emit and run readable code with `compile`, and prove every op's
derivative with `graphc.verify`.
"""
__version__ = "0.1.0"

from graphc.errors import (ArityError, CallError, DisconnectedOutputError,  # noqa: E402
                           DTypeError, DuplicateNameError, GraphcError,
                           GraphCycleError, NonScalarLossError, NumericError,
                           ShapeError, UnknownOpError)
from graphc.ir import Graph  # noqa: E402
from graphc.dsl import (Builder, Input, Param, Value, abs, add, bce_with_logits,  # noqa: E402
                        broadcast_to, cast, count, div, elu, eq, erf, exp,
                        gather, ge, gt, le, leaky_relu, log, log_softmax,
                        logsumexp, lt, matmul, max, maximum, mean, minimum,
                        mul, ne, neg, one_hot, pow, relu, reshape, sigmoid,
                        sign, softmax, softmax_cross_entropy, softplus, sqrt,
                        sub, sum, tanh, trace, transpose, unbroadcast, where)
from graphc.functional import (batch_norm, bce_loss, cross_entropy, dropout,  # noqa: E402
                               gelu, l2_penalty, layer_norm, maxout, mse, silu,
                               swish)
from graphc.autodiff import grad  # noqa: E402
from graphc.ops.user import define_elementwise  # noqa: E402
from graphc.interpreter import evaluate  # noqa: E402
from graphc.runtime import Compiled, compile  # noqa: E402


def render_html(graph, feeds=None, **options):
    """One self-contained HTML page that steps through backprop (see graphc.stepper.render_html).
    Imported on first use: importing graphc does not import the renderer."""
    from graphc.stepper import render_html as _render_html
    return _render_html(graph, feeds, **options)
