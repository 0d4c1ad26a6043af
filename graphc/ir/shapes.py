"""Shape algebra with symbolic dimensions.

A shape is a tuple whose entries are ints or strings; a string such as "N" is a
symbolic dimension (the batch size) that is bound when the graph is called, so
one graph serves every minibatch size.
"""
from math import prod

import numpy as np

from graphc.errors import ShapeError


def fmt(shape):
    """Render a shape the way error messages and the text form show it: (N, 3)."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def broadcast(*shapes):
    """NumPy broadcasting, extended to symbolic dims (equal names match, 1 stretches)."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        wide = {d for d in dims if d != 1}
        if len(wide) > 1:
            raise ShapeError("cannot broadcast shapes " + " and ".join(fmt(s) for s in shapes))
        out.append(wide.pop() if wide else 1)
    return tuple(out)


def normalize_axes(axes, rank):
    """Turn None / int / negative axes into a sorted tuple of non-negative axes."""
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"axis {a} is out of range for rank {rank}")
        out.append(a % rank)
    return tuple(sorted(set(out)))


def normalize_perm(perm, rank):
    """A permutation with negative entries counted from the end, checked against the rank."""
    out = []
    for p in perm:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
            raise ShapeError(f"perm entry {p!r} is not an integer")
        if not -rank <= p < rank:
            raise ShapeError(f"perm {tuple(perm)} has axis {p}, out of range for rank {rank}")
        out.append(int(p) % rank)
    if sorted(out) != list(range(rank)):
        raise ShapeError(f"perm {tuple(perm)} is not a permutation of {rank} axes")
    return tuple(out)


def resolve_reshape(old, new):
    """`new` with one -1 entry replaced by the size that keeps the element count.

    With symbolic dims, -1 resolves to the one symbol left over (times no
    integer factor), or to an integer when every symbol is matched.
    """
    holes = [i for i, d in enumerate(new) if d == -1 and not isinstance(d, str)]
    if not holes:
        return new
    if len(holes) > 1:
        raise ShapeError(f"reshape target {fmt(new)} has more than one -1")
    rest = new[:holes[0]] + new[holes[0] + 1:]
    return new[:holes[0]] + (_missing_factor(old, rest, new),) + new[holes[0] + 1:]


def _missing_factor(old, rest, new):
    bad = ShapeError(f"cannot reshape {fmt(old)} into {fmt(new)}")
    syms = sorted(d for d in old if isinstance(d, str))
    for d in rest:
        if isinstance(d, str):
            if d not in syms:
                raise bad
            syms.remove(d)
    have = prod(d for d in old if isinstance(d, int))
    known = prod(d for d in rest if isinstance(d, int))
    if known == 0:  # any size fits: NumPy and PyTorch refuse it as ambiguous
        raise ShapeError(f"cannot reshape {fmt(old)} into {fmt(new)}: -1 next to a 0 is ambiguous")
    if have % known:
        raise bad
    factor = have // known
    if not syms:
        return factor
    if len(syms) == 1 and factor == 1:
        return syms[0]
    raise ShapeError(f"cannot reshape {fmt(old)} into {fmt(new)}: -1 would stand for "
                     f"{'*'.join([str(factor)] * (factor != 1) + syms)}, which is not one dimension")


def reduced(shape, axes, keepdims):
    """The shape left after reducing `axes` (already normalized)."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def same_size(a, b):
    """True when two shapes hold the same number of elements, symbols included."""
    syms_a = sorted(d for d in a if isinstance(d, str))
    syms_b = sorted(d for d in b if isinstance(d, str))
    ints_a = prod(d for d in a if isinstance(d, int))
    ints_b = prod(d for d in b if isinstance(d, int))
    return syms_a == syms_b and ints_a == ints_b


def is_concrete(shape):
    return all(isinstance(d, int) for d in shape)


def bind(shape, dims):
    """Replace symbolic dims by their bound sizes, e.g. ("N", 3) with {"N": 8} -> (8, 3)."""
    return tuple(dims[d] if isinstance(d, str) else d for d in shape)


def unify(declared, actual, dims):
    """Match an actual array shape against a declared one, binding symbols into `dims`.

    Returns None when it fits, or a reason string when it does not.  The one
    place dims are discovered: the interpreter, the compiled function and the CLI
    all bind through it.
    """
    if len(declared) != len(actual):
        return f"expected rank {len(declared)} {fmt(declared)}, got {fmt(actual)}"
    for want, got in zip(declared, actual):
        if want.__class__ is str:  # not isinstance: a compiled function runs this on every call
            bound = dims.setdefault(want, got)
            if bound != got:
                return f"dimension {want} is {bound} elsewhere but {got} here ({fmt(actual)})"
        elif want != got:
            return f"expected {fmt(declared)}, got {fmt(actual)}"
    return None
