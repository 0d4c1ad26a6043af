"""Rule helpers shared by the op declarations: dtype rules, shape rules, the
glue that turns a scalar SymPy form into an evaluator over object arrays, and
the lazy handles on SymPy and scipy.special that the op table uses.

SymPy (~0.5 s) and scipy.special (~0.3 s) are imported only when they are used:
a SymPy form is built (verify, an exact render, a user op) or a special
function is evaluated.  A training step needs neither, so `import graphc` and a
warm start do not pay for them.  Write SymPy forms as functions that reach
SymPy through `sympy` below when called (`lambda a: sympy.exp(a)`, not
`sympy.exp`); tests/test_imports.py checks that importing graphc stays free of both.
"""
import importlib

import numpy as np

from graphc.ir import shapes as S
from graphc.errors import DTypeError, LabelRangeError, ShapeError
from graphc.ir.ops.registry import FLOATS


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


def int_labels(dtype, what="labels"):
    """Dtype rule half of every op that reads class labels or row indices."""
    if not dtype.startswith("int"):
        raise DTypeError(f"{what} must be integers, got {dtype}")


def row_labels_shape(table, labels):
    """Shape rule of an op that reads one label per row of a (rows, classes) table:
    a 2-D table and a 1-D label vector of the same length give one value per row.
    `table` and `labels` are what the error calls the operands."""
    def rule(shapes, attrs):
        rows, picks = shapes
        check_rank(rows, 2, table)
        check_rank(picks, 1, labels)
        if rows[0] != picks[0]:
            raise ShapeError(f"{table} {S.fmt(rows)} and {labels} {S.fmt(picks)} differ in batch size")
        return (rows[0],)
    return rule


def row_labels_dtype(labels):
    """Dtype rule to go with `row_labels_shape`: integer labels, a float table."""
    def rule(dtypes, attrs):
        int_labels(dtypes[1], labels)
        return first_float(dtypes[:1], attrs)
    return rule


def check_label_range(labels, bound):
    """Value half: refuse a label outside [0, bound) before NumPy indexing reads
    -1 as the last class or raises a bare IndexError.  The numba and CUDA
    kernels make the same check at the same node (LabelRangeError)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= bound):
        raise LabelRangeError(bound)


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


class LazyModule:
    """Stands for a module that is imported on first attribute access."""

    def __init__(self, name):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr):
        if attr.startswith("__"):  # tools probing dunders (copy, inspect) must not import it
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._lazy_name), attr)
        self.__dict__[attr] = value  # later accesses skip __getattr__
        return value

    def __repr__(self):
        return f"<lazy module {self._lazy_name!r}>"


sympy = LazyModule("sympy")


def special(name):
    """scipy.special.<name> as a function that imports scipy.special on first call."""
    fn = None

    def impl(*args, **kwargs):
        nonlocal fn
        if fn is None:
            fn = getattr(importlib.import_module("scipy.special"), name)
        return fn(*args, **kwargs)
    impl.__name__ = impl.__qualname__ = name
    impl.__doc__ = f"scipy.special.{name}, imported on first call"
    return impl
