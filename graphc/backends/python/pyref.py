"""What emitted Python code calls for ops with no one-line NumPy spelling: the
op table's own NumPy references, so the emitter and the interpreter agree."""
from graphc.ir.ops.registry import get


def __getattr__(name):
    return get(name).numpy_impl
