"""Text for drawings: numbers as a hand calculation writes them, values, types, escaping.

Everything here formats what it is handed (NumPy arrays, object arrays of SymPy
numbers, text); nothing evaluates a graph.
"""
import html

import numpy as np

from graphc.ir import shapes as S

SMALL = 6  # tensors with at most this many entries show their values


def num(v):
    """A scalar as a hand calculation writes it: 9, -1, 0.25, 1/3, 2.718."""
    if isinstance(v, np.ndarray):
        v = v.item() if v.dtype != object else v.reshape(())[()]
    if isinstance(v, str):
        return v
    if _is_sympy(v):
        import sympy
        text = str(v)
        if v.is_Rational and len(text) <= 40:
            return text
        return text if len(text) <= 24 else f"≈{sympy.N(v, 6)}"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


def _is_sympy(v):
    """A SymPy number, without importing SymPy for drawings that hold none."""
    return type(v).__module__.startswith("sympy.")


def fmt_value(v):
    """Lines describing a value: a scalar's number, a small tensor's entries, else statistics."""
    if v is None:
        return []
    arr = np.asarray(v)
    if arr.ndim == 0:
        return [num(arr)]
    if arr.size <= SMALL:
        return [nested(arr)]
    stats = arr.astype(float)
    return [f"mean {num(stats.mean())}  std {num(stats.std())}",
            f"min {num(stats.min())}  max {num(stats.max())}"]


def nested(arr):
    if np.ndim(arr) == 0:  # an entry of an exact (object) array is a bare SymPy number
        return num(arr)
    return "[" + ", ".join(nested(a) for a in arr) + "]"


def fmt_short(v):
    """One short line for an edge label: the number, or shape and largest magnitude."""
    if v is None:
        return "—"
    arr = np.asarray(v)
    if arr.size <= 3:
        return nested(arr)
    return f"{S.fmt(arr.shape)} max|·| {num(np.abs(arr.astype(float)).max())}"


def type_text(graph, n, dims=None):
    """'float64 (N, 3)', with symbolic dims replaced by their bound sizes where known."""
    shape = S.bind(graph.shape(n), dims) if dims and not S.is_concrete(graph.shape(n)) else graph.shape(n)
    return f"{graph.dtype(n)} {S.fmt(shape)}"


def feeds_text(feeds):
    """'x1=5, x2=1/3' when every feed is a scalar, else '' (a title has no room for tensors)."""
    scalars = [f"{k}={num(v)}" for k, v in feeds.items() if np.ndim(v) == 0]
    return ", ".join(scalars) if len(scalars) == len(feeds) else ""


def esc(text):
    """Text made safe inside a Graphviz HTML-like label.  Graphviz still reads backslash
    escapes there (`\\\\` becomes one backslash, `\\N` the node's name), so each backslash
    is followed by a zero-width space that no escape starts with; control characters
    are shown escaped (a loaded graph has none: names are identifiers)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return html.escape(text, quote=True).replace("\\", "&#92;&#8203;")


def html_rows(rows):
    """A Graphviz HTML-like label: one table row per (already escaped) row."""
    body = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{body}</TABLE>>'
