"""Exact evaluation for `graphc render --exact`: every value a SymPy number, within limits.

Float feeds become rationals (a string such as "0.1" becomes exactly 1/10), so the
numbers match a hand calculation.  SymPy's exact integers have no size limit, so a
power such as (9**99)**(9**99) would never finish: each power is checked before it
is computed, and every value after, against MAX_EXACT_DIGITS (docs/security.md).
"""
import re

import numpy as np

from graphc.errors import GraphcError, where
from graphc.check.interpreter import bind_feeds, bound_attrs
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
    """Every node's value as SymPy numbers (object arrays), at rational inputs."""
    from graphc.ir.ops.registry import get
    from graphc.view.render import numeric  # lazy: render imports this module
    from graphc.check.verify import sym_apply
    leaves = {g.name_of(n): n for n in g.nodes_with_op("input", "param")}
    _, dims = bind_feeds(g, {k: numeric(v) for k, v in feeds.items()})  # checks names, shapes and dtypes first
    values = {}
    for n in g.toposort():
        data = g.node(n)
        if n in leaves.values():
            _exact_guard(g, n, data["op"], [feeds[data["name"]]])
            values[n] = _rational(feeds[data["name"]], data["dtype"])
        else:
            args = [values[o] for o in g.operands(n)]
            _exact_guard(g, n, data["op"], args)
            values[n] = sym_apply(get(data["op"]), args, bound_attrs(data["attrs"], dims))
            _check_exact_size(g, n, values[n])
    return values, dims


def _rational(value, dtype):
    import sympy
    if dtype not in FLOATS:
        return np.asarray(value, dtype=dtype)
    conv = lambda v: v if isinstance(v, sympy.Basic) else (  # noqa: E731
        parse_rational(v) if isinstance(v, str) else sympy.nsimplify(float(v), rational=True))
    return np.vectorize(conv, otypes=[object])(np.asarray(value, dtype=object))
