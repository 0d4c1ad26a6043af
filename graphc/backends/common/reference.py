"""Calls of an op's NumPy reference from emitted code: the python backend's spelling
of an op with no one-line NumPy form, and the numba backend's host step for an op
with no kernel.  The emitted module imports the references as `ref` (IMPORT)."""
import keyword

from graphc.backends.common.literals import literal, shape_text

IMPORT = "from graphc.backends.python import pyref as ref"  # the module: graphc/backends/python/pyref.py


def ref_call(op, args, attrs, dim):
    """`ref.<op>(args, attr=literal, ...)`: a call of the op table's NumPy reference.
    `dim(d)` is the variable of a symbolic dim in a shape attr."""
    fn = f"ref.{op}" if op.isidentifier() and not keyword.iskeyword(op) else f"getattr(ref, {literal(op)})"
    kwargs = [f"{k}={_attr(v, dim)}" for k, v in sorted(attrs.items())]
    return f"{fn}({', '.join([*args, *kwargs])})"  # no leading ", " when an op has no operands


def _attr(v, dim):
    """An attr as a literal; a shape with a symbolic dim is written with its variable."""
    if isinstance(v, (tuple, list)) and any(isinstance(d, str) for d in v):
        return shape_text(v, dim)
    return literal(v)
