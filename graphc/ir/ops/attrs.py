"""The types of op attrs, checked when a node is built and when a graph file is loaded.

Attrs reach emitted code and SymPy, so an attr is data of a known type or it is
refused: `"keepdims": "open('PWNED','w') or True"` is a string where a bool
belongs, and is refused with one line naming the node, op, attr, the type
expected and the value given.  `ATTRS` lists, per op, each attr and its check;
an op that is not listed (a user op, or one added later) may only carry plain
literals: bools, bounded ints, finite floats, identifier strings, and tuples of
these.  The limits below are graphc's promises about sizes (docs/security.md).
"""
import ast
import math
import re
from fractions import Fraction
from numbers import Integral, Real

import numpy as np

from graphc.errors import GraphcError, where

DTYPES = ("float32", "float64", "int32", "int64", "bool")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")  # used with fullmatch: no trailing newline
MAX_DIM = 2**31 - 1  # one dimension of a declared shape
MAX_ELEMENTS = 2**28  # entries of one declared shape or constant
MAX_RANK = 32
MAX_INT = 2**63 - 1  # any integer attr
MAX_EXACT_CHARS = 200  # an exact constant's text ("2/sqrt(pi)")
MAX_EXACT_DIGITS = 2000  # digits an exact constant may expand to (9**9**9**9 would never finish)
MAX_EXACT_DEPTH = 20  # nesting of an exact constant's expression
ROLES = ("buffer", "state")


class AttrError(GraphcError):
    """An op attr of the wrong type, or over a size limit."""


class _Bad(Exception):
    """Raised by a check: the text says what was expected."""


# ----- checks: each returns nothing or raises _Bad(expected) ----------------------------
def _int(v, lo=-MAX_INT, hi=MAX_INT):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
        raise _Bad("an integer")
    if not lo <= v <= hi:
        raise _Bad(f"an integer in [{lo}, {hi}]")


def bool_(v):
    if not isinstance(v, (bool, np.bool_)):
        raise _Bad("true or false")


def real(v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real) or not math.isfinite(v):
        raise _Bad("a finite number")


def dtype(v):
    if not isinstance(v, str) or v not in DTYPES:
        raise _Bad(f"a dtype name, one of {', '.join(DTYPES)}")


def role(v):
    if not isinstance(v, str) or v not in ROLES:
        raise _Bad(f"one of {', '.join(ROLES)}")


def axis(v):
    try:
        _int(v, -MAX_RANK, MAX_RANK)
    except _Bad:
        raise _Bad(f"an axis (an integer in [{-MAX_RANK}, {MAX_RANK}])") from None


def ints(v):
    if not isinstance(v, (tuple, list)) or len(v) > MAX_RANK:
        raise _Bad(f"a tuple of at most {MAX_RANK} axes")
    for a in v:
        axis(a)


def shape(v):
    """A declared shape: at most MAX_RANK dims, each an int in [0, MAX_DIM] or a dim name."""
    if not isinstance(v, (tuple, list)) or len(v) > MAX_RANK:
        raise _Bad(f"a shape (a tuple of at most {MAX_RANK} dims)")
    size = 1
    for d in v:
        if isinstance(d, str):
            if not IDENT.fullmatch(d):
                raise _Bad("a shape whose named dims are identifiers")
            continue
        try:
            _int(d, 0, MAX_DIM)
        except _Bad:
            raise _Bad(f"a shape of dims in [0, {MAX_DIM}] or dim names") from None
        size *= int(d)
    if size > MAX_ELEMENTS:
        raise _Bad(f"a shape of at most {MAX_ELEMENTS:,} entries (the limit on one tensor)")


def depth(v):
    _int(v, 0, MAX_DIM)


def value(v):
    """A constant: a number or a numeric array of at most MAX_ELEMENTS entries."""
    if isinstance(v, (bool, Integral, Real, np.generic)) and not isinstance(v, np.ndarray):
        v = np.asarray(v)
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "biuf" or v.dtype.name not in DTYPES:
        raise _Bad(f"a number or an array of dtype {', '.join(DTYPES)}")
    if v.ndim > MAX_RANK or v.size > MAX_ELEMENTS:
        raise _Bad(f"an array of at most {MAX_ELEMENTS:,} entries and rank {MAX_RANK}")


def exact(v):
    if not isinstance(v, str):
        raise _Bad("an arithmetic expression as text")
    reason = exact_problem(v)
    if reason:
        raise _Bad(reason)


def literal(v, depth_left=4):
    """What an op outside the table may carry: plain, bounded literals only."""
    if isinstance(v, (bool, np.bool_)):
        return
    if isinstance(v, Integral):
        return _int(v)
    if isinstance(v, Real):
        return real(v)
    if isinstance(v, str):
        if not IDENT.fullmatch(v):
            raise _Bad("a literal (bool, int, finite float, identifier, or a tuple of them)")
        return
    if isinstance(v, (tuple, list)) and depth_left and len(v) <= MAX_RANK:
        for x in v:
            literal(x, depth_left - 1)
        return
    raise _Bad("a literal (bool, int, finite float, identifier, or a tuple of them)")


_REDUCE = {"axes": ints, "keepdims": bool_}
ATTRS = {
    "input": {"shape": shape, "dtype": dtype},
    "param": {"shape": shape, "dtype": dtype, "role": role},
    "const": {"value": value, "exact": exact},
    "leaky_relu": {"alpha": real}, "elu": {"alpha": real},
    "cast": {"dtype": dtype},
    "sum": _REDUCE, "max": _REDUCE, "logsumexp": _REDUCE,
    "count": {"axes": ints, "dtype": dtype},
    "softmax": {"axis": axis}, "log_softmax": {"axis": axis},
    "transpose": {"perm": ints},
    "reshape": {"shape": shape}, "broadcast_to": {"shape": shape},
    "one_hot": {"depth": depth, "dtype": dtype},
}
REQUIRED = {"input": ("shape", "dtype"), "param": ("shape", "dtype"), "const": ("value",),
            "cast": ("dtype",), "sum": ("axes", "keepdims"), "max": ("axes", "keepdims"),
            "logsumexp": ("axes", "keepdims"), "count": ("axes", "dtype"), "softmax": ("axis",),
            "log_softmax": ("axis",), "transpose": ("perm",), "reshape": ("shape",),
            "broadcast_to": ("shape",), "one_hot": ("depth", "dtype")}


def problem(op, attrs):
    """None when `attrs` suit `op`, else a one-line reason naming the attr."""
    if not isinstance(attrs, dict):
        return f"attrs must be a dict, got {type(attrs).__name__}"
    table = ATTRS.get(op)
    for key, v in attrs.items():
        if not isinstance(key, str) or not IDENT.fullmatch(key):
            return f"attr name {key!r:.60} is not an identifier"
        check = literal if table is None else table.get(key)
        if check is None:
            known = ", ".join(table) or "none"
            return f"unknown attr {key!r} (this op takes: {known})"
        try:
            check(v)
        except _Bad as e:
            return f"attr {key!r} must be {e}, got {_show(v)}"
    missing = [k for k in REQUIRED.get(op, ()) if k not in attrs]
    if missing:
        return f"missing attr {missing[0]!r}"
    return None


def check(op, attrs, label):
    """Raise AttrError naming node `label` and `op` when the attrs do not type-check."""
    reason = problem(op, attrs)
    if reason:
        raise AttrError(where(label, op, reason))


def shape_problem(v):
    """None for a declared shape within the limits, else the reason."""
    try:
        shape(v)
    except _Bad as e:
        return f"declared shape must be {e}, got {_show(v)}"
    return None


def _show(v):
    if isinstance(v, np.ndarray):
        return f"array of dtype {v.dtype} and shape {v.shape}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# ----- exact constants --------------------------------------------------------------------
FUNCTIONS = ("sqrt", "exp", "log")
NAMES = ("pi", "E", "nan", "oo")  # nan: the mean over an empty axis; oo: SymPy's infinity


def exact_problem(text):
    """None if `text` is plain arithmetic within the limits (it is later given to SymPy,
    which evaluates Python, so nothing else may pass), else a reason naming the limit."""
    if len(text) > MAX_EXACT_CHARS:
        return f"an exact expression of at most {MAX_EXACT_CHARS} characters (the limit)"
    if "\x00" in text:
        return "an exact expression without NUL characters"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "plain arithmetic (numbers, + - * / **, sqrt, exp, log, pi, E, nan, oo)"
    try:
        digits = _digits(tree.body, 0)
    except _Bad as e:
        return str(e)
    if digits > MAX_EXACT_DIGITS:
        return f"an exact value of at most {MAX_EXACT_DIGITS} digits (the limit); this one has about {digits:.3g}"
    return None


_PLAIN = "plain arithmetic (numbers, + - * / **, sqrt, exp, log, pi, E, nan, oo)"


def _digits(node, level):
    """An upper bound on the decimal digits the exact value may need; raises _Bad on
    anything that is not plain arithmetic."""
    if level > MAX_EXACT_DEPTH:
        raise _Bad(f"an exact expression nested at most {MAX_EXACT_DEPTH} deep (the limit)")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return len(repr(node.value))
    if isinstance(node, ast.Name) and node.id in NAMES:
        return 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _digits(node.operand, level + 1)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
            and len(node.args) == 1 and not node.keywords:
        return _digits(node.args[0], level + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        return _digits(node.left, level + 1) + _digits(node.right, level + 1) + 1
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base = _digits(node.left, level + 1)
        power = _exponent(node.right)
        return base * max(1, abs(power.numerator)) + 1
    raise _Bad(_PLAIN)


def _exponent(node):
    """An exponent must be a plain number (or a ratio of two): 2, -1, 1/2, 0.5."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return -_exponent(node.operand) if isinstance(node.op, ast.USub) else _exponent(node.operand)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        if abs(node.value) > MAX_EXACT_DIGITS:
            raise _Bad(f"an exponent of at most {MAX_EXACT_DIGITS} (the limit)")
        return Fraction(node.value).limit_denominator(10**6)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        num, den = _exponent(node.left), _exponent(node.right)
        if den == 0:
            raise _Bad("an exponent that is not a division by zero")
        return num / den
    raise _Bad(f"an expression whose exponents are plain numbers (a tower such as 9**9**9 would pass "
               f"the limit of {MAX_EXACT_DIGITS} digits)")
