"""The op table: the one place where an op is defined.

Following JAX, a primitive's rules live together in one `OpDef`: its shape and
dtype rules, its NumPy reference, its VJP rule (which builds graph, as in
tinygrad, so the backward pass is itself a graph), and its SymPy form, which
`graphc.check.verify` uses to prove the VJP.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

from graphc.errors import UnknownOpError

FLOATS = ("float32", "float64")


@dataclass
class OpDef:
    name: str
    arity: int
    kind: str  # leaf | elementwise | compare | reduce | array | nn
    shape_rule: Callable  # (operand shapes, attrs) -> shape; raises ShapeError
    dtype_rule: Callable  # (operand dtypes, attrs) -> dtype; raises DTypeError
    numpy_impl: Callable  # (*arrays, **attrs) -> array: the reference semantics
    sympy_impl: Callable | None = None  # same, over object arrays of SymPy expressions
    # Elementwise ops give partial derivatives (graph) and the VJP multiplies by
    # the upstream gradient; that keeps the lecture's "local gradient" explicit.
    derivs: Callable | None = None  # (ctx) -> [Value | None per operand]
    vjp: Callable | None = None  # (ctx, g) -> [Value | None per operand]
    differentiable: tuple = ()  # operand positions that carry gradients
    sympy_scalar: Callable | None = None  # elementwise: (*symbols, **attrs) -> expr
    proof: dict = field(default_factory=dict)  # shapes/attrs/regions for verify
    doc: str = ""
    expr: Any = None  # user-defined ops: the SymPy expression they came from

    @property
    def is_elementwise(self):
        return self.kind in ("elementwise", "compare")


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is already in the op table")
    OPS[op.name] = op
    return op


def get(name) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        known = ", ".join(sorted(OPS))
        raise UnknownOpError(f"unknown op {name!r}; known ops: {known}") from None


def table():
    """All ops, sorted by name: what tests parametrize over."""
    return [OPS[k] for k in sorted(OPS)]
