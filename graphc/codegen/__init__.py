"""Backends: each is a lookup table keyed by op that turns IR nodes into source.

`coverage(op, backend)` says how a backend computes an op -- the one story for
each op's backends (docs/adding-an-op.md):

- "native": the backend spells it itself (a NumPy line, a fused-loop statement,
  a kernel);
- "fallback": it calls the op table's NumPy reference (`ref.<op>`): the python
  backend inline, the numba backend on the host between compiled chunks;
- "refused": compiling a graph with the op raises a GraphcError that names the
  op and the backend (the cuda backend, for an op with no CUDA kernel).
"""
BACKEND_NAMES = ("python", "numba", "cuda")


def coverage(op, backend):
    from graphc.codegen import cuda_kernels, numba_kernels, python
    from graphc.codegen.fusion import SCALAR_STEP_OPS
    from graphc.codegen.scalar import is_fusible
    from graphc.errors import GraphcError
    from graphc.ops.registry import get

    opdef = get(op)
    if backend not in BACKEND_NAMES:
        raise GraphcError(f"unknown backend {backend!r}; backends: {', '.join(BACKEND_NAMES)}")
    if opdef.kind == "leaf":
        return "native"  # arguments, literals and loader-handed constants
    if backend == "python":
        return "native" if python.spelling(op) is not None else "fallback"
    kernels = numba_kernels.KERNELS if backend == "numba" else cuda_kernels.KERNELS
    if is_fusible(op) or op in kernels or op in SCALAR_STEP_OPS:  # count: always 0-d, a scalar step
        return "native"
    return "fallback" if backend == "numba" else "refused"


def coverage_table():
    """{op: {backend: "native" | "fallback" | "refused"}} for every op in the table."""
    from graphc.ops.registry import OPS
    return {op: {b: coverage(op, b) for b in BACKEND_NAMES} for op in sorted(OPS)}
