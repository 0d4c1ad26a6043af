"""Emit one @njit module for a graph: fused loops, BLAS matmul, race-free reductions.

The module's `run(leaves..., views)` computes the whole graph -- for a step
graph, forward, backward and the update -- by calling its compiled chunks
once each (usually one or two).  Intermediate arrays are views into workspace
arrays (one per dtype) that the host allocates once per set of bound dims and
reuses, so a call allocates nothing.  The kernel templates per op live in
kernels.py (the backend's table), the elementwise spellings it shares with the
CUDA backend in common/scalar.py, the plan (what fuses, what is stored) in
common/fusion.py, and the module around the steps (`run`, the chunks, the
workspace) in assemble.py.  host.py wraps the module and is the registry's entry.

Parallelism: a loop runs under `prange` only when it is big enough to repay
waking the threads (PARALLEL_MIN_ELEMENTS, measured: docs/performance.md);
with parallel="auto" (the default) that is decided from the dims of the first
call.  graphc selects numba's workqueue threading layer, because OpenMP's
spinning threads starve OpenBLAS's (an MLP step ran 7-10x slower).
"""
import numpy as np

from graphc.backends.common.fusion import Copy, Kernel, Loop, Scalar, View, concrete_size, plan
from graphc.backends.common.indexing import broadcast_index, symbolic_dims
from graphc.backends.common.literals import comment, dtype_name, literal, shape_display, shape_text
from graphc.backends.common.names import Scope
from graphc.backends.common.reference import ref_call
from graphc.backends.common.scalar import Ctx, lit, scalar_step
from graphc.backends.numba_cpu import kernels as K
from graphc.backends.numba_cpu.assemble import module_source
from graphc.errors import GraphcError

PARALLEL_MIN_ELEMENTS = 1 << 21  # below this a prange region costs more than it saves (benchmarks/bench_prange.py)
# On 2 cores prange lost at every size measured (up to 4M elements): OpenBLAS already
# uses both cores for the matmuls, and waking numba's pool costs more than it saves.
PARALLEL_MIN_THREADS = 4


class Emitter:
    """State for emitting one module: names, storage, and the parallel choice."""

    def __init__(self, graph, outputs, parallel, dims, flush_subnormals=True):
        self.g, self.outputs, self.flush_subnormals = graph, outputs, flush_subnormals
        self.plan = plan(graph, outputs, in_loop=K.IN_LOOP)
        self.parallel, self.bound_dims = parallel, dims or {}
        self.leaves = sorted(graph.nodes_with_op("input", "param"))
        # Names: the module scope, `run`'s scope (nodes, dims, run locals) and, per
        # step, a child for the step's temporaries that records what the step reads.
        self.module_scope = Scope()
        self.scope = self.module_scope.child()
        for n in self.leaves:
            self.node_name(n)
        self.symbolic_dims = symbolic_dims(graph, self.leaves)  # [(dim, leaf, axis)]
        self.dim_names = [d for d, _, _ in self.symbolic_dims]
        for d in self.dim_names:
            self.scope.bind(("dim", d), d)
        for n in graph.toposort():
            self.node_name(n)
        self.step_scope = self.scope.child()
        self.constants, self.regs, self.flat = {}, {}, {}
        self.uses_prange, self.uses_host, self.earlier_defined = False, False, []

    # ----- names (every identifier comes from a Scope) ----------------------------------
    def node_name(self, n):
        """The variable of node n in `run`'s scope, recording no read (see `name`)."""
        return self.scope.bind(n, self.g.name_of(n))

    def name(self, n):
        """The variable of node n, recorded as read by the current step."""
        return self.step_scope.use(self.node_name(n))

    def fresh(self, hint):
        """A temporary of the current step."""
        return self.step_scope.fresh(hint)

    def dim(self, d):
        """A dim as source: an int literal, or the variable of a symbolic dim."""
        if isinstance(d, str):
            return self.step_scope.use(self.scope.bind(("dim", d), d))
        return literal(int(d))

    def dims(self, shape):
        return [self.dim(d) for d in shape]

    def size(self, shape):
        """The element count of `shape` as source (symbolic dims as their variables)."""
        return " * ".join(self.dims(shape)) or "1"

    def shape_text(self, shape):
        return shape_text(shape, self.dim)

    def one_d(self, n):
        """The 1-element array a 0-d leaf arrives in."""
        return self.step_scope.use(self.scope.bind(("1d", n), self.node_name(n) + "_1d"))

    def global_(self, n):
        key = self.module_scope.bind(("global", n), "K_" + self.node_name(n))
        self.constants[key] = np.asarray(self.g.node(n)["attrs"]["value"])
        return self.step_scope.use(key)

    # ----- reading values ------------------------------------------------------------
    def array(self, n):
        """The array variable holding node n (for nodes kept in memory)."""
        storage = self.plan.storage[n]
        if isinstance(storage, tuple):
            return self.name(storage[1])  # an update written into its param's own array
        if storage == "global":
            return self.global_(n)
        return self.name(n)

    def scalar(self, n):
        """The scalar expression for a 0-d node."""
        storage = self.plan.storage[n]
        if storage == "literal":
            return lit(np.asarray(self.g.node(n)["attrs"]["value"]).item(), self.g.dtype(n))
        return self.name(n)  # scalar locals, and 0-d leaves unpacked at the top of run

    value = scalar  # what common/scalar.py's scalar steps call it

    def element(self, n, idx):
        """Element `idx` (index source parts) of array node n."""
        return f"{self.array(n)}[{', '.join(idx)}]"

    def read(self, n, loop_shape, loop_vars, flat=False):
        """n's value at the current loop index."""
        shape = self.g.shape(n)
        if shape == ():
            return self.scalar(n)
        if n in self.regs:
            return self.regs[n]
        if flat:
            return f"{self.flat[self.array(n)]}[{loop_vars[0]}]"
        return self.element(n, broadcast_index(shape, loop_shape, loop_vars))

    def ctx(self, n):
        return Ctx.of(self.g, n)

    def is_parallel(self, shape):
        if self.parallel is True:
            return True
        if self.parallel == "auto" and self.bound_dims and _threads() >= PARALLEL_MIN_THREADS:
            return concrete_size(shape, self.bound_dims) >= PARALLEL_MIN_ELEMENTS
        return False

    def range_(self, shape):
        par = self.is_parallel(shape)
        self.uses_prange |= par
        return "prange" if par else "range"

    def where(self, n):
        return f"{self.g.op(n)} '{self.g.name_of(n)}'"

    def new_step(self):
        """A fresh child scope for the next step's temporaries and reads."""
        self.step_scope = self.scope.child()
        self.regs, self.flat = {}, {}
        return self.step_scope

    # ----- steps ------------------------------------------------------------------------
    def is_host(self, step):
        """A Kernel step for an op with no numba kernel runs the op's NumPy reference on
        the host, between compiled chunks (as PyTensor's numba backend falls back to
        object mode): correct, if slower."""
        return isinstance(step, Kernel) and step.partner is None and self.g.op(step.node) not in K.KERNELS

    def host_call(self, n):
        g = self.g
        args = [self.scalar(o) if g.shape(o) == () else self.array(o) for o in g.operands(n)]
        call = ref_call(g.op(n), args, g.node(n)["attrs"], self.dim)
        note = f"  # {comment(g.node_text(n))}: no numba kernel, the NumPy reference on the host"
        if g.shape(n) == ():
            return [f"    {self.name(n)} = np.asarray({call}, dtype=np.{dtype_name(g.dtype(n))})[()]{note}"]
        return [f"    np.copyto({self.array(n)}, {call}){note}"]

    def step(self, step):
        text = lambda n: comment(self.g.node_text(n))  # noqa: E731
        if isinstance(step, Loop):
            return [f"    # loop over {comment(shape_display(step.shape))}: {comment(', '.join(self.g.name_of(m) for m in step.members))}",
                    *K.fused_loop(self, step)]
        if isinstance(step, Scalar):
            return [f"    {self.name(step.node)} = {scalar_step(self, step.node)}  # {text(step.node)}"]
        if isinstance(step, View):
            src = self.array(self.g.operands(step.node)[0])
            view = f"{src}.T" if step.how == "T" else f"{src}.reshape({self.shape_text(self.g.shape(step.node))})"
            return [f"    {self.name(step.node)} = {view}  # {text(step.node)}"]
        if isinstance(step, Copy):
            return K.copy_into_leaf(self, step.leaf, step.value)
        also = [f"    # {text(step.partner)}"] if step.partner is not None else []
        return [f"    # {text(step.node)}", *also, *K.kernel(self, step)]


def emit(graph, outputs=None, parallel=False, dims=None, flush_subnormals=True):
    """Return the numba module source for `graph`.  `parallel`: False, True (every
    loop under prange: what tests use to exercise the parallel code), or "auto"
    (prange for loops of at least PARALLEL_MIN_ELEMENTS at `dims`).
    `flush_subnormals`: run with the CPU's flush-to-zero on (fpenv.py)."""
    return emit_module(graph, outputs, parallel, dims, flush_subnormals)[0]


def emit_module(graph, outputs=None, parallel=False, dims=None, flush_subnormals=True):
    """(source, constants): `emit`, with the array constants the loader hands over."""
    outputs = graph.select_outputs(outputs)
    if parallel not in (True, False, "auto"):
        raise GraphcError(f"parallel must be True, False or 'auto', got {parallel!r}")
    e = Emitter(graph, outputs, parallel, dims, flush_subnormals)
    return module_source(e), e.constants


def _threads():
    import numba
    return numba.config.NUMBA_NUM_THREADS
