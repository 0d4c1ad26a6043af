"""Rule helpers shared by the op declarations: dtype rules, shape rules, and the
glue that turns a scalar SymPy form into an evaluator over object arrays."""
import numpy as np

from graphc import shapes as S
from graphc.errors import DTypeError, ShapeError
from graphc.ops.registry import FLOATS


def same_float(dtypes, attrs):
    """Arithmetic: all operands share one float dtype; graphc never promotes silently."""
    if len(set(dtypes)) > 1:
        raise DTypeError(f"operand dtypes {' and '.join(dtypes)} differ; cast one explicitly")
    if dtypes[0] not in FLOATS:
        raise DTypeError(f"needs a float operand, got {dtypes[0]}")
    return dtypes[0]


def compare_dtype(dtypes, attrs):
    if len(set(dtypes)) > 1:
        raise DTypeError(f"cannot compare {dtypes[0]} with {dtypes[1]}")
    return "bool"


def first_float(dtypes, attrs):
    if dtypes[0] not in FLOATS:
        raise DTypeError(f"needs a float operand, got {dtypes[0]}")
    return dtypes[0]


def int_labels(dtype):
    if not dtype.startswith("int"):
        raise DTypeError(f"labels must be integers, got {dtype}")


def broadcast_rule(shapes, attrs):
    return S.broadcast(*shapes)


def same_shape(shapes, attrs):
    return shapes[0]


def check_rank(shape, rank, what):
    if len(shape) != rank:
        raise ShapeError(f"{what} must have rank {rank}, got shape {S.fmt(shape)}")


def vectorize_sympy(scalar_form):
    """Lift a scalar SymPy form to broadcasting object arrays (the proof's evaluator)."""
    def impl(*arrays, **attrs):
        fn = np.vectorize(lambda *xs: scalar_form(*xs, **attrs), otypes=[object])
        return fn(*arrays)
    return impl
