"""The one literal policy: every constant value an emitter writes is spelled here.

`repr()` is wrong for numbers (`inf`, `nan` are not Python names) and unsafe for
anything else, so emitters never format a value themselves.  Scalars get the
node's dtype (`np.float32(0.5)`, `np.float64(-np.inf)`), so a float32 loop stays
float32; ±inf and NaN are spelled through `np`, which every emitted module
imports; -0.0 keeps its sign.  Strings enter only as the `repr` of a real str;
arrays with more than one element never become text (they are module globals
handed over by the loader: runtime.load_source's `constants`).
"""
import math
import numbers

import numpy as np

from graphc.errors import GraphcError

DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64")


def dtype_name(dtype):
    """A checked dtype name, safe to write after `np.`."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise GraphcError(f"cannot emit a value of dtype {dtype!r}")
    return name


def _float_text(value):
    value = float(value)
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(value)  # repr of a finite float round-trips exactly, -0.0 included


def literal(value, dtype=None):
    """Source text for `value`: typed when `dtype` is given, else by the value's own type."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise GraphcError("an array constant is a module global, never a literal")
        return literal(value.item(), dtype or value.dtype.name)
    if isinstance(value, np.generic):
        return literal(value.item(), dtype or value.dtype.name)
    if dtype is not None:
        return _typed(value, dtype_name(dtype))
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    if isinstance(value, numbers.Real):
        return _float_text(value)
    if isinstance(value, (tuple, list)):
        return tuple_text([literal(v) for v in value])
    raise GraphcError(f"cannot write a {type(value).__name__} into emitted code")


def _typed(value, dtype):
    if dtype == "bool":
        return repr(bool(value))
    if dtype.startswith(("int", "uint")):
        return f"np.{dtype}({int(value)})"
    return f"np.{dtype}({_float_text(value)})"


def tuple_text(parts):
    """A tuple display of source `parts`: (), (a,), (a, b).  The one shape-tuple
    printer of backends/: shapes in code (`shape_text`) and in comments."""
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def shape_text(shape, dim):
    """A shape as source: int dims as literals, a symbolic dim as `dim(d)` (its variable)."""
    return tuple_text([dim(d) if isinstance(d, str) else literal(int(d)) for d in shape])


def shape_display(shape):
    """A shape as a comment shows it, (N, 100): for a comment only, through `comment`."""
    return tuple_text([str(d) for d in shape])


def comment(text):
    """`text` made safe for the rest of a `#` comment line."""
    return str(text).encode("unicode_escape").decode("ascii")
