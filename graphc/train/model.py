"""A model: layers, an input shape and a loss, traced into graphs.

`Model.graph(training=True)` is the graph the compiled training step is built
from; `Model.graph(training=False)` is the evaluation graph (dropout off,
batch norm on running statistics).  Both have inputs `X` (batch, *features)
and `y` (the targets), outputs `loss` and `output`, and the same parameter
names, so one dictionary of arrays serves both.
"""
import numbers
from dataclasses import dataclass

import numpy as np

from graphc.frontend import dsl as F
from graphc.errors import GraphcError
from graphc.ir.graph import Graph
from graphc.train import init as initializers
from graphc.train import losses
from graphc.train.layers import as_layer, assign_names, walk

BATCH = "N"  # the symbolic batch dimension: one compiled step serves every batch size


@dataclass(frozen=True)
class ParamSpec:
    name: str
    layer: str
    shape: tuple
    init: object
    kind: str  # "weight" (decayed by weight_decay), "param" (trained, not decayed) or "buffer" (not trained)

    @property
    def trainable(self):
        return self.kind != "buffer"


@dataclass(frozen=True)
class NoiseSpec:
    """A random input the training loop draws each step: a 0/1 keep-mask."""
    name: str
    shape: tuple
    dtype: str
    keep: float

    def draw(self, rng, batch):
        shape = tuple(batch if d == BATCH else d for d in self.shape)
        return (rng.random(shape) < self.keep).astype(self.dtype)


class Scope:
    """What layers see while a model is traced: where their parameters come from."""

    def __init__(self, graph, training, dtype):
        self.graph, self.training, self.dtype = graph, training, dtype
        self.specs, self.noise_specs, self._leaves = {}, {}, {}

    def param(self, layer, name, shape, init, weight=False):
        return self._leaf(layer, name, shape, init, "weight" if weight else "param")

    def buffer(self, layer, name, shape, init):
        return self._leaf(layer, name, shape, init, "buffer")

    def _leaf(self, layer, name, shape, init, kind):
        full = f"{layer.name}.{name}"
        if full not in self._leaves:  # a layer applied twice shares its parameters
            attrs = {"shape": tuple(shape), "dtype": self.dtype} | ({"role": "buffer"} if kind == "buffer" else {})
            self._leaves[full] = F.Value(self.graph, self.graph.add("param", [], attrs, name=full))
            self.specs[full] = ParamSpec(full, layer.name, tuple(shape), init, kind)
        return self._leaves[full]

    def noise(self, layer, name, shape, dtype, keep):
        full = f"{layer.name}.{name}"
        node = self.graph.add("input", [], {"shape": tuple(shape), "dtype": dtype}, name=full)
        self.noise_specs[full] = NoiseSpec(full, tuple(shape), dtype, keep)
        return F.Value(self.graph, node)

    def update(self, leaf, value):
        """After each training step, buffer `leaf` takes `value` (running statistics)."""
        self.graph.set_update(leaf.node, value.node)


class Model:
    """`Model([Dense(100, "relu"), Dense(3)], input_shape=(2,), loss="cross_entropy")`.

    `weight_decay` adds weight_decay/2 * sum(W**2) over every weight matrix
    (not biases or normalization parameters) to the loss: L2 regularization."""

    def __init__(self, layers, input_shape, loss="cross_entropy", weight_decay=0.0, dtype="float64", name="model"):
        if dtype not in ("float32", "float64"):
            raise GraphcError(f"Model: dtype must be float32 or float64, got {dtype!r}")
        # numbers.Real takes numpy scalars (np.float32(1e-4)) as an optimizer's lr does
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) or \
                not np.isfinite(weight_decay) or weight_decay < 0:
            raise GraphcError(f"Model: weight_decay must be a finite number >= 0, got {weight_decay!r}")
        weight_decay = float(weight_decay)
        self.net = as_layer(layers)
        assign_names(self.net)
        self.input_shape = tuple(input_shape)
        self.loss, self.weight_decay, self.dtype, self.name = losses.get(loss), weight_decay, dtype, name
        self._traced = {}

    # ----- graphs -------------------------------------------------------------------
    def graph(self, training=True):
        return self._trace(training)[0]

    def _trace(self, training):
        if training not in self._traced:
            graph = Graph(f"{self.name}_{'train' if training else 'eval'}")
            scope = Scope(graph, training, self.dtype)
            X = F.Value(graph, graph.add("input", [], {"shape": (BATCH, *self.input_shape), "dtype": self.dtype}, name="X"))
            output = self.net(X, scope)
            target = self.loss.target(output.shape, self.dtype)
            y = F.Value(graph, graph.add("input", [], {"shape": target.shape, "dtype": target.dtype}, name="y"))
            loss = self.loss(output, y)
            weights = [scope._leaves[s.name] for s in scope.specs.values() if s.kind == "weight"]
            if self.weight_decay and weights:
                loss = loss + losses.l2_penalty(weights, self.weight_decay)
            _name(graph, output, "output")
            _name(graph, loss, "loss")
            graph.set_output(loss.node, "loss")
            graph.set_output(output.node, "output")
            self._traced[training] = (graph.validate(), scope)
        return self._traced[training]

    @property
    def params(self):
        """Every parameter's spec by name, in creation order (trainable and buffers)."""
        return dict(self._trace(True)[1].specs)

    @property
    def noise(self):
        return dict(self._trace(True)[1].noise_specs)

    def trainable(self):
        return [name for name, spec in self.params.items() if spec.trainable]

    def layer_groups(self):
        """{layer name: its trainable params}, for per-layer gradient norms."""
        groups = {}
        for spec in self.params.values():
            if spec.trainable:
                groups.setdefault(spec.layer, []).append(spec.name)
        return groups

    # ----- parameters ---------------------------------------------------------------
    def init(self, seed=0):
        """Fresh parameter arrays; each depends only on `seed` and its own name."""
        return {name: np.asarray(spec.init(spec.shape, initializers.param_rng(seed, name),
                                           *initializers.fans(spec.shape)), dtype=self.dtype)
                for name, spec in self.params.items()}

    def count_params(self, trainable=True):
        return sum(int(np.prod(s.shape)) for s in self.params.values() if s.trainable == trainable)

    def summary(self):
        """A table of layers, parameter names, shapes and counts."""
        rows = [("layer", "param", "shape", "count")]
        for layer in walk(self.net):
            for spec in (s for s in self.params.values() if s.layer == layer.name):
                kind = "" if spec.trainable else " (running)"
                rows.append((f"{layer.name}: {type(layer).__name__}", spec.name + kind, str(spec.shape),
                             f"{int(np.prod(spec.shape)):,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"trainable params: {self.count_params():,}   non-trainable: {self.count_params(False):,}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<graphc.train.Model {self.name!r} params={self.count_params():,} loss={self.loss!r}>"


def _name(graph, value, name):
    if value.op not in ("input", "param") and not graph.has_name(name):
        graph.rename(value.node, name)
