"""The one-call training step.

`build_step` turns a model graph into a step graph: the model's forward pass,
its backward pass (autodiff), and the optimizer's update nodes, with each
parameter's new value recorded in `graph.updates`.  `Step` compiles that graph
once, keeps the parameters and optimizer state on the backend (host arrays for
numba CPU, device arrays for CUDA), and runs forward + backward + update in a
single call into compiled code.
"""
import networkx as nx
import numpy as np

from graphc.frontend import dsl as F
from graphc.transform.autodiff import grad
from graphc.errors import CallError, GraphcError
from graphc.transform.rewrite import eliminate_dead_code
from graphc.backends import compile_validated

HYPER_PREFIX = "opt."  # hyperparameter inputs are named opt.lr, opt.momentum, ...


def build_step(graph, optimizer, loss=None, params=None, grad_norms=None):
    """Return the step graph of `graph`: outputs are the model's outputs; the
    optimizer's new values of `params` (default: every trainable param, i.e.
    one without a `role` such as a batch norm's running statistics) are its
    updates.  Updates already in `graph` (running statistics) are kept.

    `grad_norms` {group: [param names]} adds an output `grad_norm/<group>`, the
    L2 norm of the group's gradients: per-layer norms that show vanishing or
    exploding gradients, computed inside the step for the cost of one pass."""
    forward_outputs = list(graph.outputs)
    names = list(params) if params is not None else trainable_params(graph)
    if not names:
        raise GraphcError(f"graph {graph.name!r} has no params to train")
    _check_reach_loss(graph, loss, names)
    g = grad(graph, loss=loss, wrt=names)
    hyper = {k: _hyper_input(g, k, g.dtype(g.find(names[0]))) for k in optimizer.input_keys()}
    norms = _grad_norm_outputs(g, grad_norms or {})
    with F.building("update"):
        for name in names:
            _add_update(g, name, optimizer, hyper)
    g.outputs = {k: g.outputs[k] for k in forward_outputs} | norms
    eliminate_dead_code(g)
    return g.validate(outputs_need_inputs=False)


def _check_reach_loss(graph, loss, names):
    """A param the loss does not depend on would get a zero gradient every step
    and never train: almost always a wiring bug (a layer left out of the
    forward pass), so it is an error, not a silent no-op.  Pass `params=`
    without it to train the others."""
    loss_node = graph.outputs.get(loss if loss is not None else "loss")
    if loss_node is None:
        return  # grad() names the problem with the loss itself
    reached = nx.ancestors(graph.nx, loss_node)
    stray = [name for name in names if graph.find(name) not in reached]
    if stray:
        raise GraphcError(f"graph {graph.name!r}: param(s) {', '.join(map(repr, stray))} do not reach the loss "
                          f"{graph.name_of(loss_node)!r}, so their gradient is always zero and they would never "
                          "train; use them in the forward pass, or leave them out of the params to train")


def trainable_params(graph):
    """Names of the params an optimizer trains: those with no `role` attribute."""
    return [graph.name_of(n) for n in sorted(graph.params) if "role" not in graph.node(n)["attrs"]]


def buffer_params(graph):
    """Names of params with a `role` (running statistics): state, not trained."""
    return [graph.name_of(n) for n in sorted(graph.params) if "role" in graph.node(n)["attrs"]]


def _grad_norm_outputs(g, groups):
    outputs = {}
    with F.building("backward"):
        for group, members in groups.items():
            squares = [F.sum(F.Value(g, g.grads[m]) * F.Value(g, g.grads[m])) for m in members]
            total = squares[0]
            for s in squares[1:]:
                total = total + s
            outputs[f"grad_norm/{group}"] = F.sqrt(total).node
    return outputs


def _hyper_input(g, key, dtype):
    node = g.add("input", [], {"shape": (), "dtype": dtype}, name=HYPER_PREFIX + key, phase="update")
    return F.Value(g, node)


def _add_update(g, name, optimizer, hyper):
    p = F.Value(g, g.find(name))
    gp = F.Value(g, g.grads[name])
    state = {slot: F.Value(g, g.add("param", [], {"shape": p.shape, "dtype": p.dtype, "role": "state"},
                                    name=f"{name}.{slot}", phase="update")) for slot in optimizer.slots}
    new_p, new_state = optimizer.update(p, gp, state, hyper)
    _set(g, p, new_p, f"{name}_new")
    for slot, value in new_state.items():
        _set(g, state[slot], value, f"{name}.{slot}_new")


def _set(g, leaf, value, name):
    if g.op(value.node) not in ("input", "param", "const") and value.name.startswith(f"{g.op(value.node)}_"):
        g.rename(value.node, name)  # a readable name for emitted code, unless the user named it
    g.set_update(leaf.node, value.node)


class Step:
    """A compiled training step.  Call it with the batch's inputs by name; it runs
    forward, backward and the update in one compiled call and returns the outputs."""

    def __init__(self, graph, params, optimizer, loss=None, backend="numba", grad_norms=None, **options):
        self.optimizer = optimizer
        buffers = set(buffer_params(graph))  # held and updated by the graph itself, not trained
        self.graph = build_step(graph, optimizer, loss, [k for k in params if k not in buffers], grad_norms)
        self.compiled = compile_validated(self.graph, backend, **options)  # build_step validated it
        self.steps = 0
        self.compiled.hold(self._initial_state(params))
        hyper = [n for n in self.graph.inputs if self.graph.name_of(n).startswith(HYPER_PREFIX)]
        self._hyper_dtype = self.graph.dtype(hyper[0]) if hyper else None

    def _initial_state(self, params):
        state = {}
        for leaf in self.graph.updates:
            name, dtype = self.graph.name_of(leaf), self.graph.dtype(leaf)
            if self.graph.node(leaf)["attrs"].get("role") == "state":
                state[name] = np.zeros(_concrete(self.graph, leaf), dtype=dtype)
            else:
                state[name] = np.array(params[name], dtype=dtype, order="C")  # a copy the step owns
        return state

    def __call__(self, feeds=None, check_finite=False, **kw_feeds):
        feeds = dict(feeds, **kw_feeds) if feeds else kw_feeds
        hyper = self._hyper_feeds(self.optimizer.values(self.steps))
        if not hyper.keys().isdisjoint(feeds):
            key = next(k for k in hyper if k in feeds)
            raise CallError(f"'{key}' is a hyperparameter; set optimizer.hyper['{key[len(HYPER_PREFIX):]}'] instead")
        feeds.update(hyper)
        out = self.compiled(feeds, check_finite=check_finite)
        self.steps += 1
        return out

    def _hyper_feeds(self, values):
        """The hyperparameters as 0-d arrays; rebuilt only when a value changes (a
        schedule), because a small model's step is short enough for this to show."""
        try:
            same = values == getattr(self, "_hyper_values", None)
        except ValueError:  # array-valued hyperparameters do not compare to one bool
            same = False
        if not same:
            self._hyper_values = dict(values)
            self._hyper_arrays = {HYPER_PREFIX + k: np.asarray(v, dtype=self._hyper_dtype) for k, v in values.items()}
        return self._hyper_arrays

    @property
    def params(self):
        """Current parameters and optimizer state by name (host arrays)."""
        return self.compiled.held

    def __repr__(self):
        return f"<graphc.Step {self.graph.name!r} {self.optimizer!r} backend={self.compiled.backend} steps={self.steps}>"


def _concrete(graph, n):
    shape = graph.shape(n)
    if not all(isinstance(d, int) for d in shape):
        raise GraphcError(f"param '{graph.name_of(n)}' has symbolic shape {shape}; params need concrete shapes")
    return shape


def compile_step(graph, params, optimizer, loss=None, backend="numba", grad_norms=None, **options):
    """Build and compile the training step of `graph`; see `Step`."""
    return Step(graph, params, optimizer, loss, backend, grad_norms, **options)
