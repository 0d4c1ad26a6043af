"""Seeded weight initializers (seed 003, "Initialization").

An initializer is called as ``init(shape, rng, fan_in=None, fan_out=None)``
and returns a float64 array; ``rng`` is a ``np.random.Generator``.  Use
``param_rng(seed, name)`` for that generator, so a parameter's starting value
depends only on the run's seed and the parameter's name -- adding a layer or
building the model in another order does not change the other layers' draws.

Zero or constant weights keep every unit of a layer identical (the lecture's
symmetry problem); use them for biases.  The variance-scaling initializers
keep activation variance roughly constant from layer to layer.
"""
import hashlib
import math
from collections import namedtuple

import numpy as np

from graphc.errors import GraphcError

# What a draw should look like; tests check samples against it, and it makes the
# formula in each docstring executable.  low/high are +-inf when unbounded.
Moments = namedtuple("Moments", "mean std low high")


def fans(shape):
    """(fan_in, fan_out) of a weight of `shape`.

    Our Dense computes ``x @ W`` with W of shape (in, out), so fan_in = shape[0]
    and fan_out = shape[1].  A 1-D shape (a bias of n units) gets n for both
    (the Keras convention; biases are usually zero anyway), a scalar gets 1, 1.
    For more dimensions the last two are (in, out) and the leading ones a
    receptive field that multiplies both, as for a convolution kernel.
    """
    shape = _check_shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    field = math.prod(shape[:-2])
    return shape[-2] * field, shape[-1] * field


def param_rng(seed, name):
    """A Generator that depends only on (`seed`, `name`).

    The name is hashed (blake2b, stable across processes, unlike hash()) into
    the SeedSequence spawn key; 128 bits make two names sharing a stream
    practically impossible, where a 32-bit crc32 would collide by ~65k names.
    """
    if not _is_int(seed) or seed < 0:
        raise GraphcError(f"param_rng: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(name, str):
        raise GraphcError(f"param_rng: parameter name must be a string, got {name!r}")
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=key))


class Initializer:
    """Base class: validates the call, computes missing fans, returns float64."""
    min_ndim = 0  # Orthogonal needs a matrix

    def __init__(self, **params):
        self.params = params  # for repr

    def __call__(self, shape, rng, fan_in=None, fan_out=None):
        shape = _check_shape(shape)
        name = type(self).__name__
        if len(shape) < self.min_ndim:
            raise GraphcError(f"{name} needs a shape with at least {self.min_ndim} dimensions, got {shape}")
        if not isinstance(rng, np.random.Generator):
            raise GraphcError(f"{name}: rng must be a numpy Generator (see param_rng), got {type(rng).__name__}")
        if math.prod(shape) == 0:
            return np.zeros(shape)  # nothing to draw, and the fans may be 0
        default_in, default_out = fans(shape)
        fan_in = _check_fan(name, "fan_in", default_in if fan_in is None else fan_in)
        fan_out = _check_fan(name, "fan_out", default_out if fan_out is None else fan_out)
        return np.asarray(self.draw(shape, rng, fan_in, fan_out), dtype=np.float64)

    def draw(self, shape, rng, fan_in, fan_out):  # the subclass's formula
        raise NotImplementedError

    def moments(self, shape, fan_in, fan_out):  # Moments of one drawn entry
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    """Every entry equals `value`: w = c.  Fine for biases (the lecture suggests a
    small positive bias such as 0.1 before a ReLU), bad for weights (symmetry)."""

    def __init__(self, value=0.0):
        self.value = _finite("Constant", "value", value)
        super().__init__(value=self.value)

    def draw(self, shape, rng, fan_in, fan_out):
        return np.full(shape, self.value, dtype=np.float64)

    def moments(self, shape, fan_in, fan_out):
        return Moments(self.value, 0.0, self.value, self.value)


class Zeros(Constant):
    """w = 0."""
    def __init__(self):
        super().__init__(0.0)
        self.params = {}  # repr "Zeros()"


class _Scaled(Initializer):
    """N(mean, scale^2), or U(mean - scale, mean + scale) when `uniform`; the
    subclass derives `scale` from the fans."""
    uniform = False
    mean = 0.0

    def draw(self, shape, rng, fan_in, fan_out):
        m = self.moments(shape, fan_in, fan_out)
        if self.uniform:
            return rng.uniform(m.low, m.high, size=shape)
        return rng.normal(m.mean, m.std, size=shape)

    def moments(self, shape, fan_in, fan_out):
        s = self.scale(fan_in, fan_out)
        if self.uniform:  # U(-a, a) has std a / sqrt(3)
            return Moments(self.mean, s / math.sqrt(3), self.mean - s, self.mean + s)
        return Moments(self.mean, s, -math.inf, math.inf)


class Normal(_Scaled):
    """w ~ N(mean, std^2), by default std = 0.01.

    The lecture writes N(0, 0.01).  Its other formulas put the variance second,
    which would mean std 0.1; the common practice (``randn(...) * 0.01``) is
    std 0.01, which is our default -- pass std=0.1 for the literal reading.
    """

    def __init__(self, std=0.01, mean=0.0):
        self.std, self.mean = _positive("Normal", "std", std), _finite("Normal", "mean", mean)
        super().__init__(std=self.std, mean=self.mean)

    def scale(self, fan_in, fan_out):
        return self.std


class Uniform(_Scaled):
    """w ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) by default (the lecture's first
    uniform rule; it writes N^[k], we use the input width as is standard).
    `limit=a` gives U(-a, a); `limit=(low, high)` gives U(low, high)."""
    uniform = True

    def __init__(self, limit=None):
        super().__init__(limit=limit)
        self.limit = limit
        if isinstance(limit, (tuple, list)) and len(limit) == 2:
            low, high = (_finite("Uniform", n, v) for n, v in zip(("low", "high"), limit))
            if not low < high:
                raise GraphcError(f"Uniform: need low < high, got limit=({low}, {high})")
            self.limit, self.mean = (high - low) / 2, (low + high) / 2
        elif limit is not None:  # a bad pair lands here too, and is named in the message
            self.limit = _positive("Uniform", "limit", limit)

    def scale(self, fan_in, fan_out):
        return 1 / math.sqrt(fan_in) if self.limit is None else self.limit


class XavierNormal(_Scaled):
    """Glorot & Bengio (2010): w ~ N(0, 2 / (fan_in + fan_out))."""
    def scale(self, fan_in, fan_out):
        return math.sqrt(2 / (fan_in + fan_out))


class XavierUniform(_Scaled):
    """Glorot & Bengio (2010): w ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    (the lecture's second uniform rule); same variance as XavierNormal."""
    uniform = True

    def scale(self, fan_in, fan_out):
        return math.sqrt(6 / (fan_in + fan_out))


class LecunNormal(_Scaled):
    """LeCun et al. (1998): w ~ N(0, 1 / fan_in).  This is what the lecture calls
    "Xavier" (for tanh layers); Glorot's own rule averages the fans (XavierNormal)."""
    def scale(self, fan_in, fan_out):
        return math.sqrt(1 / fan_in)


class HeNormal(_Scaled):
    """He et al. (2015), for ReLU layers: w ~ N(0, 2 / fan_in)."""
    def scale(self, fan_in, fan_out):
        return math.sqrt(2 / fan_in)


class HeUniform(_Scaled):
    """He et al. (2015): w ~ U(-a, a), a = sqrt(6 / fan_in); same variance as HeNormal."""
    uniform = True

    def scale(self, fan_in, fan_out):
        return math.sqrt(6 / fan_in)


class Orthogonal(Initializer):
    """Saxe et al. (2014): w = gain * Q, Q from the QR factorization of a Gaussian
    matrix, with Q's columns multiplied by sign(diag(R)) so Q is uniformly
    (Haar) distributed -- LAPACK's raw Q is not.  Shapes with more than two
    dimensions are flattened to (prod(shape[:-1]), shape[-1]).  A tall result
    has orthonormal columns (W.T @ W = gain^2 I), a wide one orthonormal rows
    (W @ W.T = gain^2 I), as torch.nn.init.orthogonal_."""
    min_ndim = 2

    def __init__(self, gain=1.0):
        super().__init__(gain=_positive("Orthogonal", "gain", gain))

    def draw(self, shape, rng, fan_in, fan_out):
        rows, cols = math.prod(shape[:-1]), shape[-1]
        g = rng.standard_normal((max(rows, cols), min(rows, cols)))  # tall, so QR gives full Q
        q, r = np.linalg.qr(g)
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        if rows < cols:
            q = q.T
        return self.params["gain"] * q.reshape(shape)

    def moments(self, shape, fan_in, fan_out):
        # the min(r, c) unit vectors hold r*c entries whose squares sum to min(r, c)
        gain = self.params["gain"]
        return Moments(0.0, gain / math.sqrt(max(math.prod(shape[:-1]), shape[-1])), -gain, gain)


REGISTRY = {
    "zeros": Zeros,
    "ones": lambda: Constant(1.0),
    "normal": Normal,
    "uniform": Uniform,
    "xavier_normal": XavierNormal, "glorot_normal": XavierNormal,
    "xavier_uniform": XavierUniform, "glorot_uniform": XavierUniform,
    "lecun_normal": LecunNormal,
    "he_normal": HeNormal, "kaiming_normal": HeNormal, "he": HeNormal, "kaiming": HeNormal,
    "he_uniform": HeUniform, "kaiming_uniform": HeUniform,
    "orthogonal": Orthogonal,
}


def get(init):
    """Resolve a name ("he", "xavier_uniform", ...), an Initializer subclass or
    instance, or any callable with the initializer signature."""
    if isinstance(init, str):
        key = init.strip().lower().replace("-", "_")
        if key not in REGISTRY:
            raise GraphcError(f"unknown initializer {init!r}; known: {', '.join(sorted(REGISTRY))}")
        return REGISTRY[key]()
    if isinstance(init, type) and issubclass(init, Initializer):
        return init()
    if callable(init) and not isinstance(init, type):
        return init
    raise GraphcError(f"expected an initializer name or Initializer, got {init!r}")


def _check_shape(shape):
    dims = (shape,) if _is_int(shape) else shape
    if not isinstance(dims, (tuple, list)) or not all(_is_int(d) and d >= 0 for d in dims):
        raise GraphcError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    return tuple(int(d) for d in dims)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_fan(owner, what, value):
    if not _is_int(value) or value < 1:
        raise GraphcError(f"{owner}: {what} must be a positive integer, got {value!r}")
    return int(value)


def _finite(owner, what, value):
    if not (_is_int(value) or isinstance(value, (float, np.floating))) or not math.isfinite(value):
        raise GraphcError(f"{owner}: {what}={value!r} must be a finite number")
    return float(value)


def _positive(owner, what, value):
    value = _finite(owner, what, value)
    if value <= 0:
        raise GraphcError(f"{owner}: {what}={value!r} must be positive")
    return value
