"""Elementwise primitives.  Each gives its partial derivatives as graph
(`derivs(ctx, i)` = d out / d operand i); the generic VJP multiplies by the
upstream gradient, so the lecture's local gradient L is a node of its own."""
import numpy as np

from graphc.ir.ops.common import (broadcast_rule, compare_dtype, same_float,
                               same_shape, special, sympy, vectorize_sympy)
from graphc.ir.ops.registry import OpDef, register
from graphc.ir.shapes import broadcast as _bcast

POS, NEG = "positive", "negative"  # proof regions for ops with a kink at 0


def elementwise(name, arity, numpy_impl, sympy_scalar, derivs, doc,
                differentiable=None, proof=None, dtype_rule=same_float):
    return register(OpDef(
        name=name, arity=arity, kind="elementwise",
        shape_rule=broadcast_rule if arity > 1 else same_shape,
        dtype_rule=dtype_rule, numpy_impl=numpy_impl,
        sympy_impl=vectorize_sympy(sympy_scalar), sympy_scalar=sympy_scalar,
        derivs=derivs, differentiable=tuple(range(arity)) if differentiable is None else differentiable,
        proof=proof or {}, doc=doc))


def _heaviside(cond):
    return sympy.Piecewise((1, cond), (0, True))


# ----- arithmetic ---------------------------------------------------------------
elementwise("add", 2, np.add, lambda a, b: a + b,
            lambda c, i: c.const(1.0), "a + b")
elementwise("sub", 2, np.subtract, lambda a, b: a - b,
            lambda c, i: c.const(1.0) if i == 0 else c.const(-1.0), "a - b")
elementwise("mul", 2, np.multiply, lambda a, b: a * b,
            lambda c, i: c.x[1 - i], "a * b")
elementwise("div", 2, np.divide, lambda a, b: a / b,
            lambda c, i: 1.0 / c.x[1] if i == 0 else -c.out / c.x[1], "a / b",
            proof={"regions": [{1: POS}]})


def _const_scalar(v):
    """The value of a 0-d constant operand, or None: known exponents need no `where`."""
    if v.op != "const" or v.shape != ():
        return None
    return float(v.graph.node(v.node)["attrs"]["value"])


def _pow_deriv(c, i):
    """PyTorch's conventions, with no NaN and no log(0) on the way (see docs/semantics.md):
    d/da = 0 where b == 0 (x**0 is constant), else b * a**(b-1);
    d/db = 0 where a == 0 and b >= 0, -a**b (= -inf) where a == 0 and b < 0, else a**b log a."""
    F, (a, b) = c.F, c.x
    if i == 0:
        known = _const_scalar(b)
        if known is not None:
            return c.const(0.0) if known == 0.0 else b * a ** (known - 1.0)
        zero_b = F.eq(b, 0.0)
        return F.where(zero_b, 0.0, b * a ** (F.where(zero_b, 1.0, b) - 1.0))
    known = _const_scalar(a)
    if known is not None and known > 0:
        return c.out * c.const(float(np.log(known)))
    zero_a = F.eq(a, 0.0)
    log_a = F.log(F.where(zero_a, 1.0, a))  # log never sees 0; a < 0 gives NaN as in PyTorch
    return F.where(zero_a, F.where(b >= 0.0, 0.0, -c.out), c.out * log_a)


# d/db a**b = a**b log a is only real for a > 0, the region the proof covers.
elementwise("pow", 2, np.power, lambda a, b: a ** b, _pow_deriv,
            "a ** b; gradients at a = 0 follow PyTorch", proof={"regions": [{0: POS}]})
elementwise("maximum", 2, np.maximum, lambda a, b: sympy.Max(a, b),
            lambda c, i: c.F.cast(c.x[i] > c.x[1 - i], c.dtype) + 0.5 * c.F.cast(c.F.eq(c.x[0], c.x[1]), c.dtype),
            "elementwise max; ties split the gradient evenly",
            proof={"regions": [{"gap": POS}, {"gap": NEG}]})
elementwise("minimum", 2, np.minimum, lambda a, b: sympy.Min(a, b),
            lambda c, i: c.F.cast(c.x[i] < c.x[1 - i], c.dtype) + 0.5 * c.F.cast(c.F.eq(c.x[0], c.x[1]), c.dtype),
            "elementwise min; ties split the gradient evenly",
            proof={"regions": [{"gap": POS}, {"gap": NEG}]})
elementwise("neg", 1, np.negative, lambda a: -a, lambda c, i: c.const(-1.0), "-a")
elementwise("exp", 1, np.exp, lambda a: sympy.exp(a), lambda c, i: c.out, "e ** a")
elementwise("log", 1, np.log, lambda a: sympy.log(a), lambda c, i: 1.0 / c.x[0], "natural log",
            proof={"regions": [{0: POS}]})
elementwise("sqrt", 1, np.sqrt, lambda a: sympy.sqrt(a), lambda c, i: 0.5 / c.out, "square root",
            proof={"regions": [{0: POS}]})
elementwise("abs", 1, np.abs, lambda a: sympy.Abs(a), lambda c, i: c.F.sign(c.x[0]), "|a|",
            proof={"regions": [{0: POS}, {0: NEG}]})
elementwise("sign", 1, np.sign, lambda a: sympy.sign(a), None, "sign(a); its gradient is zero",
            differentiable=(), proof={"regions": [{0: POS}, {0: NEG}]})
elementwise("erf", 1, special("erf"), lambda a: sympy.erf(a),
            lambda c, i: c.const(2.0 / np.sqrt(np.pi), exact="2/sqrt(pi)") * c.F.exp(-(c.x[0] * c.x[0])), "the error function")

# ----- activations ---------------------------------------------------------------
elementwise("tanh", 1, np.tanh, lambda a: sympy.tanh(a), lambda c, i: 1.0 - c.out * c.out, "hyperbolic tangent")
# expit never overflows: it is the stable sigmoid the issue asks for.
elementwise("sigmoid", 1, special("expit"), lambda a: 1 / (1 + sympy.exp(-a)),
            lambda c, i: c.out * (1.0 - c.out), "logistic sigmoid, stable for any input")
# The gradient reads the output (relu(a) > 0 exactly when a > 0), so a compiled step need not keep a.
elementwise("relu", 1, lambda a: np.maximum(a, 0), lambda a: sympy.Max(a, 0),
            lambda c, i: c.F.cast(c.out > 0.0, c.dtype), "max(a, 0); gradient 0 at 0",
            proof={"regions": [{0: POS}, {0: NEG}]})
# Proof attrs are plain floats: graphc.check.verify proves with their exact rationals (0.1 -> 1/10).
elementwise("leaky_relu", 1, lambda a, alpha=0.01: np.where(a > 0, a, alpha * a),
            lambda a, alpha=0.01: sympy.Piecewise((a, a > 0), (alpha * a, True)),
            lambda c, i: c.F.where(c.x[0] > 0.0, c.const(1.0), c.const(c.attrs["alpha"])),
            "a if a > 0 else alpha * a", proof={"regions": [{0: POS}, {0: NEG}], "attrs": {"alpha": 0.1}})
# The derivative for a <= 0 is elu(a) + alpha, which never evaluates exp of a large a.
elementwise("elu", 1, lambda a, alpha=1.0: np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0))),
            lambda a, alpha=1.0: sympy.Piecewise((a, a > 0), (alpha * (sympy.exp(a) - 1), True)),
            lambda c, i: c.F.where(c.x[0] > 0.0, c.const(1.0), c.out + c.attrs["alpha"]),
            "a if a > 0 else alpha * (e ** a - 1)",
            proof={"regions": [{0: POS}, {0: NEG}], "attrs": {"alpha": 1.5}})
# logaddexp(0, a) = log(1 + e ** a) without overflow.
elementwise("softplus", 1, lambda a: np.logaddexp(0, a), lambda a: sympy.log(1 + sympy.exp(a)),
            lambda c, i: c.F.sigmoid(c.x[0]), "log(1 + e ** a), stable for any input")

# ----- comparisons and selection: masks carry no gradient --------------------------
for _name, _np, _sym in [("gt", np.greater, "Gt"), ("ge", np.greater_equal, "Ge"),
                         ("lt", np.less, "Lt"), ("le", np.less_equal, "Le"),
                         ("eq", np.equal, "Eq"), ("ne", np.not_equal, "Ne")]:
    register(OpDef(name=_name, arity=2, kind="compare", shape_rule=broadcast_rule,
                   dtype_rule=compare_dtype, numpy_impl=_np,
                   sympy_impl=vectorize_sympy(lambda a, b, _s=_sym: _heaviside(getattr(sympy, _s)(a, b))),
                   sympy_scalar=lambda a, b, _s=_sym: _heaviside(getattr(sympy, _s)(a, b)),
                   differentiable=(), doc=f"elementwise comparison ({_name}); gives a bool mask"))


def _where_dtype(dtypes, attrs):
    from graphc.errors import DTypeError
    if dtypes[0] != "bool":
        raise DTypeError(f"condition must be a bool mask, got {dtypes[0]}")
    return same_float(dtypes[1:], attrs)


register(OpDef(
    name="where", arity=3, kind="elementwise",
    shape_rule=lambda shapes, attrs: _bcast(*shapes), dtype_rule=_where_dtype,
    numpy_impl=np.where,
    sympy_impl=vectorize_sympy(lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True))),
    sympy_scalar=lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)),
    derivs=lambda c, i: c.F.cast(c.x[0], c.dtype) if i == 1 else 1.0 - c.F.cast(c.x[0], c.dtype),
    differentiable=(1, 2), proof={"values": {0: "mask"}},
    doc="where(cond, a, b): a where cond holds, else b"))


def _cast_dtype(dtypes, attrs):
    return attrs["dtype"]


register(OpDef(
    name="cast", arity=1, kind="elementwise", shape_rule=same_shape, dtype_rule=_cast_dtype,
    numpy_impl=lambda a, dtype: np.asarray(a).astype(dtype),
    sympy_impl=lambda a, dtype: a, sympy_scalar=lambda a, dtype: a,
    derivs=lambda c, i: c.const(1.0),  # autodiff casts the cotangent back to the operand dtype
    differentiable=(0,), proof={"attrs": {"dtype": "float64"}},
    doc="convert to another dtype; a bool mask becomes 0/1"))
