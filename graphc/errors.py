"""One exception family, so users can catch every graphc error with one clause.

Each error message names the node, its op and the shapes or dtypes involved,
because the person reading it has to find the offending line in their model.
"""


class GraphcError(Exception):
    """Base class of every error graphc raises on bad input."""


class UnknownOpError(GraphcError):
    pass


class ArityError(GraphcError):
    pass


class ShapeError(GraphcError):
    pass


class DTypeError(GraphcError):
    pass


class GraphCycleError(GraphcError):
    pass


class DuplicateNameError(GraphcError):
    pass


class DisconnectedOutputError(GraphcError):
    pass


class NonScalarLossError(GraphcError):
    pass


class CallError(GraphcError):
    """A compiled or interpreted graph was called with missing or ill-shaped arrays."""


class NumericError(GraphcError):
    """NaN or Inf appeared where the user asked graphc to check for it."""


class LabelRangeError(CallError):
    """A class label (or gather index) outside [0, bound).  The NumPy references
    raise it without knowing their node; the interpreter and the compiled
    function re-raise it as a CallError that names graph, op and node, in the
    words of `label_range_message`, which the numba and CUDA kernels use too."""

    def __init__(self, bound):
        super().__init__(label_outside(bound))
        self.bound = bound


def label_outside(bound):
    """What is wrong with a bad label, in the words every message about one uses."""
    return f"a label is outside [0, {bound})"


def label_range_message(graph_name, op, node_name, bound):
    """The one message every backend and the interpreter give for a bad label."""
    return f"graph {graph_name!r}: {label_at(op, node_name, bound)}"


def label_at(op, node_name, bound):
    """The message's node part: compiled kernels carry it, the host adds the graph."""
    return f"{op} '{node_name}': {label_outside(bound)}"


def where(node_name, op, detail):
    """Format the one-line message every graphc error uses: node, op, then what is wrong."""
    return f"node '{node_name}' ({op}): {detail}"
