"""Leaves: inputs and parameters are fed at call time; constants carry their value."""
import numpy as np

from graphc.errors import DTypeError
from graphc.ir.ops.registry import OpDef, register

DTYPES = ("float32", "float64", "int32", "int64", "bool")


def _declared_dtype(dtypes, attrs):
    if attrs["dtype"] not in DTYPES:
        raise DTypeError(f"unsupported dtype {attrs['dtype']!r}; use one of {', '.join(DTYPES)}")
    return attrs["dtype"]


def _fed(*_, **__):
    raise RuntimeError("inputs and parameters are fed by the caller, not computed")


for _name, _doc in [("input", "data fed at every call"), ("param", "trainable parameter")]:
    register(OpDef(name=_name, arity=0, kind="leaf",
                   shape_rule=lambda s, attrs: tuple(attrs["shape"]),
                   dtype_rule=_declared_dtype, numpy_impl=_fed, doc=_doc))

def _exact_const(value, exact=None):
    """The exact value a proof needs: `exact` (e.g. "2/sqrt(pi)") or the float made rational."""
    import sympy
    if exact is not None:
        return np.full(np.shape(value), sympy.sympify(exact), dtype=object)
    return np.vectorize(lambda v: sympy.nsimplify(v, rational=True), otypes=[object])(np.asarray(value))


register(OpDef(
    name="const", arity=0, kind="leaf",
    shape_rule=lambda s, attrs: np.shape(attrs["value"]),
    dtype_rule=lambda d, attrs: _declared_dtype(d, {"dtype": np.asarray(attrs["value"]).dtype.name}),
    numpy_impl=lambda value, exact=None: np.asarray(value), sympy_impl=_exact_const,
    doc="a constant baked into the graph"))
