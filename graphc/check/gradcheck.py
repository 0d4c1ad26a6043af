"""Finite-difference gradient check for any graph: float64, central differences,
random projections (so the cost is a few evaluations, not one per element)."""
from dataclasses import dataclass, field

import numpy as np

from graphc.transform.autodiff import grad
from graphc.errors import GraphcError
from graphc.check.interpreter import evaluate
from graphc.ir.ops.registry import FLOATS

SEED_NAME = "gradcheck_seed"


@dataclass
class GradcheckResult:
    ok: bool
    max_error: float
    checks: list = field(default_factory=list)  # (direction, analytic, numeric, error)

    def __bool__(self):
        return self.ok


def gradcheck(graph, feeds, wrt=None, loss=None, eps=1e-6, projections=4, rtol=1e-6, atol=1e-9, rng=0):
    """Compare reverse-mode gradients with central differences along random directions.

    For a non-scalar output the check uses a random cotangent w, i.e. the
    scalar sum(w * output).  Returns a GradcheckResult (truthy when it passes).
    """
    rng = np.random.default_rng(rng)
    loss = loss or _only_output(graph)
    wrt = wrt or [graph.name_of(n) for n in graph.nodes_with_op("input", "param") if graph.dtype(n) in FLOATS]
    _require_float64(graph, wrt)
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    graph, feeds, seed = _with_seed(graph, feeds, loss, rng)
    gg = grad(graph, loss=loss, wrt=wrt, seed=seed)
    ev = evaluate(gg, feeds)
    analytic_grads = {w: ev.grad(w) for w in wrt}
    checks = []
    for _ in range(projections):
        direction = {w: rng.standard_normal(np.shape(feeds[w])) for w in wrt}
        analytic = sum(float(np.sum(analytic_grads[w] * direction[w])) for w in wrt)
        numeric = (_scalar(graph, feeds, loss, seed, direction, eps) - _scalar(graph, feeds, loss, seed, direction, -eps)) / (2 * eps)
        err = abs(analytic - numeric) / (atol + rtol * max(1.0, abs(analytic), abs(numeric)))
        checks.append((direction, analytic, numeric, err))
    worst = max(c[3] for c in checks)
    return GradcheckResult(ok=worst <= 1.0, max_error=worst, checks=checks)


def _only_output(graph):
    if len(graph.outputs) != 1:
        raise GraphcError(f"gradcheck: graph {graph.name!r} has outputs {list(graph.outputs)}; pass loss=")
    return next(iter(graph.outputs))


def _require_float64(graph, wrt):
    for n in graph.nx.nodes:
        if graph.dtype(n) == "float32":
            raise GraphcError(f"gradcheck: node '{graph.name_of(n)}' is float32; finite differences need a float64 graph")


def _with_seed(graph, feeds, loss, rng):
    """For a non-scalar output, add an input holding a random cotangent."""
    out = graph.outputs.get(loss, None)
    out = graph.find(loss) if out is None else out
    if graph.shape(out) == ():
        return graph, feeds, None
    g = graph.copy()
    g.add("input", [], {"shape": g.shape(out), "dtype": g.dtype(out)}, name=SEED_NAME)
    values = evaluate(graph, feeds).values[out]
    return g, {**feeds, SEED_NAME: rng.standard_normal(values.shape)}, SEED_NAME


def _scalar(graph, feeds, loss, seed, direction, step):
    moved = {k: (v + step * direction[k] if k in direction else v) for k, v in feeds.items()}
    ev = evaluate(graph, moved)
    out = ev.outputs[loss] if loss in graph.outputs else ev[loss]
    return float(np.sum(out * feeds[seed])) if seed else float(out)
