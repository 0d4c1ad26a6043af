"""Backends: the registry, `compile` and `emit_source`.

Each backend is a folder (python/, numba_cpu/, cuda/): `emit.py` turns IR nodes
into source, the backend's one table keyed by op says how (python/emit.py's
TABLE; numba_cpu/kernels.py's and cuda/kernels.py's KERNELS, beside the
elementwise spellings both share in common/scalar.py's SCALAR), and `host.py`
is what this registry imports: its `emit`, and its `build`, which wraps the
loaded module in a `graphc.runtime.Compiled`.  Backends are imported by name
on first use, so `import graphc` does not import numba; no backend imports
this registry, so the string imports below close no cycle
(tests/test_layout.py follows them).

`coverage(op, backend)` says how a backend computes an op -- the one story for
each op's backends (docs/adding-an-op.md):

- "native": the backend spells it itself (a NumPy line, a fused-loop statement,
  a kernel);
- "fallback": it calls the op table's NumPy reference (`ref.<op>`): the python
  backend inline, the numba backend on the host between compiled chunks;
- "refused": compiling a graph with the op raises a GraphcError that names the
  op and the backend (the cuda backend, for an op with no CUDA kernel).
"""
import importlib
import inspect

from graphc.errors import GraphcError

BACKENDS = {  # name: the module whose `emit` and `build` implement it
    "python": "graphc.backends.python.host",  # readable NumPy: the oracle
    "numba": "graphc.backends.numba_cpu.host",  # fused @njit kernels
    "cuda": "graphc.backends.cuda.host",  # @cuda.jit kernels (numba-cuda; the simulator without a GPU)
}
BACKEND_NAMES = tuple(BACKENDS)


def backend_module(backend):
    if backend not in BACKENDS:
        raise GraphcError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[backend])


def emit_source(graph, backend="python", outputs=None, **options):
    """The source a backend emits for `graph` (what `graphc emit` prints)."""
    return backend_module(backend).emit(graph, outputs, **options)


def compile(graph, backend="python", outputs=None, **options):
    """Emit `graph` for `backend`, load it from the cache directory, and wrap it.

    Backends: "python" (readable NumPy), "numba" (fused CPU kernels; options
    `parallel` = "auto" | True | False), "cuda" (numba-cuda kernels).
    """
    module = backend_module(backend)
    params = inspect.signature(module.build).parameters.values()
    accepted = [p.name for p in params if p.name not in ("graph", "outputs") and p.kind != p.VAR_KEYWORD]
    unknown = sorted(set(options) - set(accepted))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params):  # a **options backend checks its own
        raise GraphcError(f"backend {backend!r} has no option {unknown[0]!r}; its options: {', '.join(accepted) or 'none'}")
    graph.validate(outputs_need_inputs=False)  # rewrites may have folded an output to a constant
    return module.build(graph, outputs, **options)


def compile_validated(graph, backend="python", outputs=None, **options):
    """`compile` for a graph its caller has just validated, as `build_step` does:
    the same, without validating it a second time."""
    return backend_module(backend).build(graph, outputs, **options)


def coverage(op, backend):
    """How `backend` computes `op`, read from the backend's table (see above)."""
    from graphc.backends.common.scalar import is_scalar_step
    from graphc.backends.cuda import kernels as cuda_kernels
    from graphc.backends.numba_cpu import kernels as numba_kernels
    from graphc.backends.python import emit as python
    from graphc.ir.ops.registry import get

    opdef = get(op)
    if backend not in BACKEND_NAMES:
        raise GraphcError(f"unknown backend {backend!r}; backends: {', '.join(BACKEND_NAMES)}")
    if opdef.kind == "leaf":
        return "native"  # arguments, literals and loader-handed constants
    if backend == "python":
        return "native" if python.spelling(op) is not None else "fallback"
    kernels = numba_kernels.KERNELS if backend == "numba" else cuda_kernels.KERNELS
    if op in kernels or is_scalar_step(op):  # elementwise (SCALAR), or 0-d by nature (count)
        return "native"
    return "fallback" if backend == "numba" else "refused"


def coverage_table():
    """{op: {backend: "native" | "fallback" | "refused"}} for every op in the table."""
    from graphc.ir.ops.registry import OPS
    return {op: {b: coverage(op, b) for b in BACKEND_NAMES} for op in sorted(OPS)}
