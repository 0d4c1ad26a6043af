"""Layers: small objects that add a block of graph when a model is traced.

A layer owns no arrays.  Called with a symbolic value and a `Scope`, it asks
the scope for its parameters (named `<layer>.<param>`, e.g. `dense_1.W`, with
an initializer each) and returns the block's output value.  The same layers
are traced twice: once for training (dropout active, batch statistics) and
once for evaluation (dropout off, running statistics), so the two graphs
share parameter names and one set of arrays serves both.
"""
import numpy as np

from graphc.frontend import dsl as F
from graphc.frontend import functional as functional
from graphc.errors import GraphcError
from graphc.train import init as initializers


class Layer:
    """Base class.  `kind` is the naming prefix (`dense` -> dense_1, dense_2)."""
    kind = "layer"

    def __init__(self, name=None):
        self.name = name

    def children(self):
        return ()

    def forward(self, x, scope):
        raise NotImplementedError

    def __call__(self, x, scope):
        return self.forward(x, scope)

    def describe(self):
        """One line for `Model.summary`: the layer's settings."""
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.describe()})"


class Dense(Layer):
    """x @ W + b, W (in, units) and b (1, units); optionally followed by an activation."""
    kind = "dense"

    def __init__(self, units, activation=None, init="xavier_uniform", bias_init="zeros", name=None):
        super().__init__(name)
        self.units, self.activation = _positive_int("Dense", "units", units), activation and Activation(activation)
        self.init, self.bias_init = initializers.get(init), initializers.get(bias_init)

    def forward(self, x, scope):
        _expect_matrix(self, x)
        W = scope.param(self, "W", (x.shape[-1], self.units), self.init, weight=True)
        b = scope.param(self, "b", (1, self.units), self.bias_init)
        z = x @ W + b
        return self.activation.forward(z, scope) if self.activation else z

    def describe(self):
        act = f", activation={self.activation.fn_name!r}" if self.activation else ""
        return f"units={self.units}{act}, init={self.init!r}"


def _positive_int(owner, what, value, least=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise GraphcError(f"{owner}: {what} must be an integer >= {least}, got {value!r}")
    return int(value)


def _probability(owner, what, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise GraphcError(f"{owner}: {what} must be a number in [0, 1), got {value!r}")
    return float(value)


def _expect_matrix(layer, x):
    if x.ndim != 2:
        raise GraphcError(f"{layer.name or layer.kind}: expects (batch, features) input, got shape {x.shape}")


class Activation(Layer):
    """An elementwise nonlinearity, by name: see ACTIVATIONS."""
    kind = "activation"

    def __init__(self, fn, name=None, **kwargs):
        super().__init__(name)
        if isinstance(fn, Activation):
            fn, kwargs = fn.fn_name, fn.kwargs
        if fn not in ACTIVATIONS:
            raise GraphcError(f"unknown activation {fn!r}; known: {', '.join(sorted(ACTIVATIONS))}")
        self.fn_name, self.kwargs = fn, kwargs
        self.kind = fn

    def forward(self, x, scope):
        return ACTIVATIONS[self.fn_name](x, **self.kwargs)

    def describe(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


ACTIVATIONS = {
    "sigmoid": F.sigmoid, "tanh": F.tanh, "relu": F.relu, "leaky_relu": F.leaky_relu,
    "elu": F.elu, "gelu": functional.gelu, "swish": functional.swish, "silu": functional.swish,
    "softplus": F.softplus,
}


def Sigmoid(name=None): return Activation("sigmoid", name)  # noqa: E704
def Tanh(name=None): return Activation("tanh", name)  # noqa: E704
def ReLU(name=None): return Activation("relu", name)  # noqa: E704
def LeakyReLU(alpha=0.01, name=None): return Activation("leaky_relu", name, alpha=alpha)  # noqa: E704
def ELU(alpha=1.0, name=None): return Activation("elu", name, alpha=alpha)  # noqa: E704
def GELU(name=None): return Activation("gelu", name)  # noqa: E704
def Swish(name=None): return Activation("swish", name)  # noqa: E704
def Softplus(name=None): return Activation("softplus", name)  # noqa: E704


class Maxout(Layer):
    """max over `pieces` affine maps: max_k (x @ W_k + b_k) (Goodfellow et al., 2013)."""
    kind = "maxout"

    def __init__(self, units, pieces=2, init="xavier_uniform", name=None):
        super().__init__(name)
        self.units, self.pieces = _positive_int("Maxout", "units", units), _positive_int("Maxout", "pieces", pieces, 2)
        self.init = initializers.get(init)

    def forward(self, x, scope):
        _expect_matrix(self, x)
        outs = [x @ scope.param(self, f"W{k}", (x.shape[-1], self.units), self.init, weight=True)
                + scope.param(self, f"b{k}", (1, self.units), initializers.get("zeros"))
                for k in range(self.pieces)]
        return functional.maxout(*outs)

    def describe(self):
        return f"units={self.units}, pieces={self.pieces}"


class Dropout(Layer):
    """Inverted dropout: in training, keep each unit with probability 1-p and scale
    by 1/(1-p); in evaluation, the identity.  The keep-mask is an input of the
    training graph that the training loop draws from its seeded generator."""
    kind = "dropout"

    def __init__(self, p=0.5, name=None):
        super().__init__(name)
        self.p = _probability("Dropout", "p", p)

    def forward(self, x, scope):
        if not scope.training or self.p == 0.0:
            return x
        mask = scope.noise(self, "mask", x.shape, x.dtype, keep=1.0 - self.p)
        return functional.dropout(x, mask, self.p)

    def describe(self):
        return f"p={self.p}"


class LayerNorm(Layer):
    """Normalize each sample over its features, then scale by gamma and shift by beta."""
    kind = "layer_norm"

    def __init__(self, eps=1e-5, name=None):
        super().__init__(name)
        self.eps = eps

    def forward(self, x, scope):
        features = (1, x.shape[-1])
        gamma = scope.param(self, "gamma", features, initializers.get("ones"))
        beta = scope.param(self, "beta", features, initializers.get("zeros"))
        return functional.layer_norm(x, gamma, beta, self.eps)


class BatchNorm(Layer):
    """Batch normalization over the batch axis.

    Training: normalize with the batch's mean and (biased) variance, and update
    the running statistics r <- momentum * r + (1 - momentum) * batch inside the
    compiled step.  Evaluation: normalize with the running statistics."""
    kind = "batch_norm"

    def __init__(self, momentum=0.9, eps=1e-5, name=None):
        super().__init__(name)
        self.momentum, self.eps = _probability("BatchNorm", "momentum", momentum), eps

    def forward(self, x, scope):
        _expect_matrix(self, x)
        features = (1, x.shape[-1])
        gamma = scope.param(self, "gamma", features, initializers.get("ones"))
        beta = scope.param(self, "beta", features, initializers.get("zeros"))
        running_mean = scope.buffer(self, "running_mean", features, initializers.get("zeros"))
        running_var = scope.buffer(self, "running_var", features, initializers.get("ones"))
        if scope.training:
            mean = F.mean(x, axis=0, keepdims=True)
            centered = x - mean
            var = F.mean(centered * centered, axis=0, keepdims=True)
            scope.update(running_mean, self.momentum * running_mean + (1.0 - self.momentum) * mean)
            scope.update(running_var, self.momentum * running_var + (1.0 - self.momentum) * var)
        else:
            mean, var = running_mean, running_var
        return (x - mean) / F.sqrt(var + self.eps) * gamma + beta

    def describe(self):
        return f"momentum={self.momentum}, eps={self.eps}"


class Sequential(Layer):
    """Layers applied in order."""
    kind = "sequential"

    def __init__(self, layers, name=None):
        super().__init__(name)
        self.layers = [as_layer(layer) for layer in layers]

    def children(self):
        return self.layers

    def forward(self, x, scope):
        for layer in self.layers:
            x = layer(x, scope)
        return x


class Residual(Layer):
    """x + block(x): a skip connection around `block` (a layer or a list of layers)."""
    kind = "residual"

    def __init__(self, block, name=None):
        super().__init__(name)
        self.block = as_layer(block)

    def children(self):
        return [self.block]

    def forward(self, x, scope):
        out = self.block(x, scope)
        if out.shape != x.shape:
            raise GraphcError(f"{self.name or 'Residual'}: the block maps {x.shape} to {out.shape}; a residual needs the same shape")
        return x + out


def as_layer(obj):
    """A layer from a layer, a list of layers (Sequential) or an activation name."""
    if isinstance(obj, Layer):
        return obj
    if isinstance(obj, (list, tuple)):
        return Sequential(obj)
    if isinstance(obj, str):
        return Activation(obj)
    raise GraphcError(f"not a layer: {obj!r}")


def assign_names(root):
    """Give every unnamed layer a unique name from its kind: dense_1, relu_1, ...

    Names given by the user are kept (auto names skip them, wherever they sit);
    a layer object used twice (weight sharing) is one layer with one name."""
    layers, taken = list(walk(root)), set()
    for layer in layers:
        if layer.name is not None:
            if layer.name in taken:
                raise GraphcError(f"two layers are named {layer.name!r}; layer names must be unique")
            taken.add(layer.name)
    counts = {}
    for layer in layers:
        if layer.name is None:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
            while f"{layer.kind}_{counts[layer.kind]}" in taken:
                counts[layer.kind] += 1
            layer.name = f"{layer.kind}_{counts[layer.kind]}"
            taken.add(layer.name)


def walk(layer, _seen=None):
    """Every layer under `layer` (itself included), depth first, each object once."""
    _seen = set() if _seen is None else _seen
    if id(layer) in _seen:
        return
    _seen.add(id(layer))
    yield layer
    for child in layer.children():
        yield from walk(child, _seen)
