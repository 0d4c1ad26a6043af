"""Exact evaluation for `graphc render --exact`: every value a SymPy number, within limits.
The walk is check/interpreter.py's, with SymPy values (`sympy_value`).

Float feeds become rationals (a string such as "0.1" becomes exactly 1/10), so the
numbers match a hand calculation.  SymPy's exact integers have no size limit, so a
power such as (9**99)**(9**99) would never finish: each power is checked before it
is computed, and every value after, against MAX_EXACT_DIGITS (docs/security.md).
"""
import re

import numpy as np

from graphc.errors import GraphcError, where
from graphc.check.interpreter import bind_feeds, sympy_value, walk
from graphc.ir.ops.attrs import MAX_EXACT_DIGITS
from graphc.ir.ops.registry import FLOATS

MAX_EXACT_ENTRIES = 100_000  # --exact on bigger tensors would take hours in SymPy
MAX_EXACT_BITS = int(MAX_EXACT_DIGITS * 3.33)


def parse_rational(text):
    """A number as text ("5", "-0.25", "1e-3", "1/3") as an exact SymPy Rational, within limits."""
    import sympy
    text = str(text).strip()
    match = NUMBER.fullmatch(text) if len(text) <= MAX_NUMBER_CHARS else None
    if match is None:
        raise GraphcError(f"{text!r:.60} is not a number (write e.g. 5, -0.25, 1e-3 or 1/3; "
                          f"at most {MAX_NUMBER_CHARS} characters)")
    if match.group("exp") and abs(int(match.group("exp"))) > MAX_EXPONENT:
        raise GraphcError(f"{text!r:.60}: exponent over the limit of {MAX_EXPONENT}")
    try:
        return sympy.Rational(text)
    except (TypeError, ValueError, ZeroDivisionError):
        raise GraphcError(f"{text!r:.60} is not a number (write e.g. 5, -0.25, 1e-3 or 1/3)") from None


NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE](?P<exp>[-+]?\d+))?(?:/\d+)?")
MAX_NUMBER_CHARS, MAX_EXPONENT = 100, 400  # `1e999999999` as exact text would never finish


def _exact_guard(g, n, op, args):
    """Refuse, before SymPy starts, exact arithmetic that would not finish: a power whose
    result has more than MAX_EXACT_DIGITS digits, or a node with too many entries."""
    if max((np.size(a) for a in args), default=0) > MAX_EXACT_ENTRIES:
        raise GraphcError(where(g.name_of(n), op, f"--exact evaluates at most {MAX_EXACT_ENTRIES:,} entries "
                                "per node (the limit); draw it without --exact"))
    if op != "pow":
        return
    for base, power in zip(*(a.ravel() for a in np.broadcast_arrays(*args))):
        if _bits(base) * abs(getattr(power, "p", 1)) > MAX_EXACT_BITS:
            raise GraphcError(where(g.name_of(n), op, f"exact value would have more than {MAX_EXACT_DIGITS} digits "
                                    "(the limit of --exact)"))


def _check_exact_size(g, n, value):
    for v in np.ravel(value):
        if _bits(v) > MAX_EXACT_BITS:
            raise GraphcError(where(g.name_of(n), g.op(n), f"exact value has more than {MAX_EXACT_DIGITS} digits "
                                    "(the limit of --exact)"))


def _bits(v):
    """Bits of a rational's numerator or denominator (0, 1 and -1 count as none)."""
    p, q = getattr(v, "p", None), getattr(v, "q", None)
    if not isinstance(p, int) or not isinstance(q, int) or (abs(p) <= 1 and q == 1):
        return 0
    return max(abs(p).bit_length(), q.bit_length())


def exact_values(g, feeds):
    """({node: value as SymPy numbers (object arrays)}, dims), at rational inputs."""
    _, dims = bind_feeds(g, {k: numeric(v) for k, v in feeds.items()})  # checks names, shapes and dtypes first
    leaves = {}
    for n in g.nodes_with_op("input", "param"):
        fed = feeds[g.name_of(n)]
        _exact_guard(g, n, g.op(n), [fed])
        leaves[n] = _rational(fed, g.dtype(n))
    return walk(g, leaves, _exact_value, dims), dims


def _exact_value(g, n, args, attrs):
    """sympy_value within the limits: refused before SymPy starts, and checked after."""
    _exact_guard(g, n, g.op(n), args)
    value = sympy_value(g, n, args, attrs)
    _check_exact_size(g, n, value)
    return value


def _is_text(v):
    return isinstance(v, str) or (isinstance(v, np.ndarray) and v.dtype.kind in "US")


def numeric(v):
    """Text feeds ("0.1", "1/3", as the command line passes them) become floats."""
    if not _is_text(v):
        return v
    arr = np.asarray(v)
    # A loop, not np.vectorize: its ufunc reports FPU flags that SymPy's own arithmetic
    # leaves behind as a spurious "invalid value" RuntimeWarning on stderr.
    return np.array([float(parse_rational(s)) for s in arr.ravel()], dtype=float).reshape(arr.shape)


def _rational(value, dtype):
    import sympy
    if dtype not in FLOATS:
        return np.asarray(value, dtype=dtype)
    conv = lambda v: v if isinstance(v, sympy.Basic) else (  # noqa: E731
        parse_rational(v) if isinstance(v, str) else sympy.nsimplify(float(v), rational=True))
    return np.vectorize(conv, otypes=[object])(np.asarray(value, dtype=object))
