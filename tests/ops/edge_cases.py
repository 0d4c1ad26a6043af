"""The edge-case table: for every op, the inputs where implementations disagree.

Each op gets cases with 0-d operands, zero-size dims, rank-6 broadcasting and
special values (+-inf, nan, +-0 and the kinks where a derivative is a
convention).  `TORCH` spells each op in PyTorch, the independent oracle that
tests/ops/test_edge_cases.py compares with, forward and backward.
"""
from dataclasses import dataclass, field
from math import prod

import zlib

import numpy as np

INF, NAN = np.inf, np.nan
# Every special value against every other (7 x 7 pairs for a binary op):
# infinities, nan, signed zeros, and ordinary numbers on both sides of the kinks.
SPECIAL = np.array([INF, -INF, NAN, 0.0, -0.0, 1.5, -0.5])
KINKS = np.array([0.0, -0.0, 1.0, -1.0, 2.0, 0.5])


@dataclass
class Case:
    name: str
    arrays: list
    attrs: dict = field(default_factory=dict)

    @property
    def smooth(self):
        """Finite, non-empty, and clear of kinks: where finite differences are an oracle."""
        return self.name not in ("special", "kinks", "0d_zero", "base0") and all(
            a.size and np.all(np.isfinite(a)) for a in self.arrays if a.dtype.kind == "f")


def unspecified(op, case, shape):
    """Output entries where graphc's documented convention differs from PyTorch's
    (docs/semantics.md): they are checked against the convention, not against torch.

    - Where an input is NaN the value is NumPy's (sign(nan) is NaN, torch's is 0)
      and the gradient is unspecified (torch's relu, abs, maximum give numbers there).
    - bce_with_logits at an infinite logit is unspecified (NaN or inf).
    - A row of softmax / log_softmax / cross-entropy logits holding +inf or NaN:
      graphc computes a - logsumexp(a) as NumPy does; torch gives NaN for the row.
    """
    floats = [a for a in case.arrays if a.dtype.kind == "f"]
    if op.kind in ("elementwise", "compare"):
        bad = np.zeros(shape, dtype=bool)
        for a in floats:
            bad = bad | np.broadcast_to(np.isnan(a), shape)
        if op.name == "bce_with_logits":  # infinite logits: neither library takes the limit everywhere
            bad = bad | np.broadcast_to(np.isinf(floats[0]), shape)
        return bad
    if op.name in ("softmax", "log_softmax", "softmax_cross_entropy"):
        axis = case.attrs.get("axis", 1)
        rows = np.any(np.isnan(floats[0]) | (floats[0] == INF), axis=axis, keepdims=True)
        return np.broadcast_to(rows, floats[0].shape) if op.name != "softmax_cross_entropy" else rows[:, 0]
    return np.zeros(shape, dtype=bool)


def _rng(op_name, case):
    return np.random.default_rng(zlib.crc32(f"{op_name}/{case}".encode()))


def _pairs(values):
    """Every value of `values` against every other: two flat operands."""
    return [np.repeat(values, len(values)), np.tile(values, len(values))]


def elementwise_cases(op):
    rng = _rng(op.name, "ew")
    if op.name == "where":
        mask = lambda shape: rng.random(shape) < 0.5  # noqa: E731
        return [Case("0d", [np.array(True), np.array(0.7), np.array(-1.3)]),
                Case("empty", [mask((0, 3)), rng.standard_normal((3,)), np.array(2.0)]),
                Case("rank6", [mask((2, 1, 3, 1, 2, 2)), rng.standard_normal((3, 1, 1, 2)), rng.standard_normal((2,))]),
                Case("special", [np.arange(7) % 2 == 0, SPECIAL, SPECIAL[::-1].copy()])]
    attrs = dict(op.proof.get("attrs", {}))
    if op.name == "bce_with_logits":  # targets are probabilities; logits take every special value
        z, y = np.repeat(SPECIAL, 3), np.tile([0.0, 0.5, 1.0], len(SPECIAL))
        special = [Case("special", [z, y])]
    else:
        special = [Case("special", _pairs(SPECIAL), attrs), Case("kinks", _pairs(KINKS), attrs)]
    if op.name == "pow":  # issue 12: x**0 at x = 0, and the exponent's gradient at base 0
        special.append(Case("base0", [np.array([0.0, 0.0, 0.0, 0.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0, 0.0, 2.5])]))
    # ops defined only for positive operand 0 (log, sqrt, pow's exponent gradient) get positive smooth cases
    positive = {r.get(0) for r in op.proof.get("regions", [])} == {"positive"}
    x = (lambda shape: rng.uniform(0.5, 2, shape)) if positive else rng.standard_normal  # noqa: E731
    if op.arity == 1:
        return [Case("0d", [np.asarray(x(()))], attrs), Case("0d_zero", [np.array(0.0)], attrs),
                Case("empty", [np.zeros((0, 3))], attrs),
                Case("rank6", [x((2, 1, 3, 1, 2, 2))], attrs),
                Case("special", [np.concatenate([SPECIAL, KINKS])], attrs)]
    return [Case("0d", [np.array(1.7), np.array(-1.3)], attrs),
            Case("0d_and_vector", [np.array(1.7), rng.uniform(0.5, 2, (3,))], attrs),
            Case("empty", [rng.uniform(0.5, 2, (0, 3)), rng.uniform(0.5, 2, (3,))], attrs),
            Case("rank6", [rng.uniform(0.5, 2, (2, 1, 3, 1, 2, 2)), rng.uniform(0.5, 2, (3, 1, 1, 2))], attrs),
            *special]


def _red(axes, keepdims=False):
    return {"axes": axes, "keepdims": keepdims}


def structural_cases(op):
    """Hand-picked cases for reductions, array and nn ops (attrs already normalized)."""
    rng = _rng(op.name, "st")
    n = rng.standard_normal
    labels = lambda shape, k: rng.integers(0, k, shape).astype("int64")  # noqa: E731
    rows_special = np.array([[INF, 1.0, 2.0], [-INF, -INF, 0.0], [NAN, 1.0, 0.0], [1.0, 1.0, 1.0]])
    table = {
        "sum": [Case("0d", [np.array(1.5)], _red(())), Case("empty_reduced", [n((0, 3))], _red((0,))),
                Case("empty_kept", [n((3, 0))], _red((0,), True)), Case("empty_all", [n((2, 0, 3))], _red((0, 1, 2))),
                Case("rank6", [n((2, 1, 3, 1, 2, 2))], _red((1, 3, 5))), Case("special", [rows_special], _red((1,)))],
        "max": [Case("0d", [np.array(1.5)], _red(())), Case("empty_batch", [n((0, 3))], _red((1,))),
                Case("rank6", [n((2, 1, 3, 1, 2, 2))], _red((0, 2, 5), True)),
                Case("special_and_ties", [rows_special], _red((1,)))],
        "count": [Case("0d", [np.array(1.5)], {"axes": (), "dtype": "float64"}),
                  Case("empty", [n((0, 3))], {"axes": (0,), "dtype": "float64"}),
                  Case("rank6", [n((2, 1, 3, 1, 2, 2))], {"axes": (0, 2, 4), "dtype": "int64"})],
        "matmul": [Case("K0", [n((2, 0)), n((0, 3))]), Case("N0", [n((0, 3)), n((3, 2))]),
                   Case("M0", [n((2, 3)), n((3, 0))]),
                   Case("special", [np.array([[INF, 0.0], [NAN, 1.0]]), np.array([[1.0, 0.0], [2.0, -INF]])])],
        "transpose": [Case("0d", [np.array(1.5)], {"perm": ()}), Case("empty", [n((0, 3, 2))], {"perm": (2, 0, 1)}),
                      Case("rank6", [n((2, 1, 3, 1, 2, 2))], {"perm": (5, 3, 1, 0, 2, 4)}),
                      Case("special", [rows_special], {"perm": (1, 0)})],
        "reshape": [Case("0d", [np.array(1.5)], {"shape": (1, 1)}), Case("to_0d", [n((1, 1))], {"shape": ()}),
                    Case("empty", [n((0, 3))], {"shape": (3, 0, 1)}),
                    Case("rank6", [n((2, 1, 3, 1, 2, 2))], {"shape": (6, 4)}),
                    Case("special", [rows_special], {"shape": (12,)})],
        "broadcast_to": [Case("0d", [np.array(1.5)], {"shape": (2, 3)}),
                         Case("into_zero", [n((4, 3, 1, 6))], {"shape": (4, 3, 0, 6)}),
                         Case("into_zero_rank6", [n((4, 3, 1, 6))], {"shape": (0, 1, 4, 3, 2, 6)}),
                         Case("rank6", [n((3, 1, 2))], {"shape": (2, 1, 2, 3, 4, 2)}),
                         Case("special", [SPECIAL.reshape(7, 1)], {"shape": (7, 2)})],
        "one_hot": [Case("0d", [np.array(2)], {"depth": 3, "dtype": "float64"}),
                    Case("empty", [labels((0,), 3)], {"depth": 3, "dtype": "float64"}),
                    Case("rank6", [labels((2, 1, 3, 1, 2, 2), 4)], {"depth": 4, "dtype": "float32"})],
        "gather": [Case("empty", [n((0, 3)), labels((0,), 3)]),
                   Case("special", [rows_special, np.array([0, 1, 0, 2])])],
        "logsumexp": [Case("0d", [np.array(1.5)], _red(())), Case("empty_batch", [n((0, 3))], _red((1,))),
                      Case("empty_reduced", [n((3, 0))], _red((1,), True)),
                      Case("rank6", [n((2, 1, 3, 1, 2, 2))], _red((1, 2, 5))),
                      Case("special", [rows_special], _red((1,)))],
        "softmax_cross_entropy": [Case("empty", [n((0, 3)), labels((0,), 3)]),
                                  Case("special", [np.array([[-INF, 1.0, 2.0], [0.0, 0.0, 0.0], [INF, 1.0, 0.0]]),
                                                   np.array([1, 2, 1])])],
    }
    for soft in ("softmax", "log_softmax"):
        table[soft] = [Case("empty_batch", [n((0, 3))], {"axis": 1}), Case("empty_axis", [n((3, 0))], {"axis": 1}),
                       Case("rank6", [n((2, 1, 3, 1, 2, 2))], {"axis": 2}),
                       Case("special", [rows_special], {"axis": 1})]
    return table.get(op.name)


def cases(op):
    if op.kind in ("elementwise", "compare") and op.name in TORCH:
        return elementwise_cases(op)
    return structural_cases(op) or []


# ----- PyTorch spellings --------------------------------------------------------------
def _torch():
    import torch
    import torch.nn.functional as tf
    return torch, tf


def _reduce(fn):
    def apply(a, axes, keepdims):
        # torch reduces every axis for dim=(); graphc's axes=() reduces none.
        return a if axes == () else fn(a, dim=axes, keepdim=keepdims)
    return apply


def _binary(name):
    return lambda a, b: getattr(_torch()[0], name)(a, b)


def _unary(name):
    return lambda a: getattr(_torch()[0], name)(a)


def _count(a, axes, dtype):
    torch = _torch()[0]
    return torch.tensor(prod(a.shape[i] for i in axes), dtype=getattr(torch, dtype))


def _one_hot(labels, depth, dtype):
    torch, tf = _torch()
    return tf.one_hot(labels, depth).to(getattr(torch, dtype))


def _bce(z, y):
    torch, tf = _torch()
    z, y = torch.broadcast_tensors(z, y)
    return tf.binary_cross_entropy_with_logits(z, y, reduction="none")


TORCH = {
    **{k: _binary(k) for k in ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
                               "gt", "ge", "lt", "le", "eq", "ne")},
    **{k: _unary(k) for k in ("neg", "exp", "log", "sqrt", "abs", "sign", "erf", "tanh", "sigmoid", "relu")},
    "softplus": lambda a: _torch()[0].logaddexp(_torch()[0].zeros_like(a), a),  # torch's softplus cuts off at 20
    "leaky_relu": lambda a, alpha=0.01: _torch()[1].leaky_relu(a, alpha),
    "elu": lambda a, alpha=1.0: _torch()[1].elu(a, alpha),
    "where": lambda c, a, b: _torch()[0].where(c, a, b),
    "cast": lambda a, dtype: a.to(getattr(_torch()[0], dtype)),
    "bce_with_logits": _bce,
    "sum": _reduce(lambda a, dim, keepdim: a.sum(dim=dim, keepdim=keepdim)),
    "max": _reduce(lambda a, dim, keepdim: a.amax(dim=dim, keepdim=keepdim)),
    "logsumexp": _reduce(lambda a, dim, keepdim: a.logsumexp(dim=dim, keepdim=keepdim)),
    "count": _count,
    "matmul": lambda a, b: a @ b,
    "transpose": lambda a, perm: a.permute(perm),
    "reshape": lambda a, shape: a.reshape(shape),
    "broadcast_to": lambda a, shape: a.broadcast_to(shape),
    "one_hot": _one_hot,
    "gather": lambda x, idx: x[_torch()[0].arange(x.shape[0]), idx],
    "softmax": lambda a, axis: a.softmax(axis),
    "log_softmax": lambda a, axis: a.log_softmax(axis),
    "softmax_cross_entropy": lambda z, y: _torch()[1].cross_entropy(z, y, reduction="none"),
}
