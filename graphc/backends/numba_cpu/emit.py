"""Emit one @njit module for a graph: fused loops, BLAS matmul, race-free reductions.

The module's `run(leaves..., views)` computes the whole graph -- for a step
graph, forward, backward and the update -- by calling its compiled chunks
once each (usually one or two).  Intermediate arrays are views into workspace
arrays (one per dtype) that the host allocates once per set of bound dims and
reuses, so a call allocates nothing.  The kernel templates per op live in
`numba_kernels.py`; the plan (what fuses, what is stored) in `fusion.py`.

Parallelism: a loop runs under `prange` only when it is big enough to repay
waking the threads (PARALLEL_MIN_ELEMENTS, measured: docs/performance.md);
with parallel="auto" (the default) that is decided from the dims of the first
call.  graphc selects numba's workqueue threading layer, because OpenMP's
spinning threads starve OpenBLAS's (an MLP step ran 7-10x slower).
"""
import os

import numpy as np

from graphc._version import __version__
from graphc.backends.numba_cpu import kernels as K
from graphc.backends.common.fusion import Copy, Kernel, Loop, Scalar, View, concrete_size, index_expr, plan
from graphc.backends.common.literals import comment, dtype_name, literal
from graphc.backends.common.names import Scope
from graphc.backends.python.emit import ref_call
from graphc.backends.common.scalar import Ctx, lit, scalar_expr
from graphc.errors import GraphcError

DECORATOR = '@njit(cache=True, error_model="numpy", nogil=True, parallel={parallel})'
CHUNK_LINES = 160  # lines of loop code per @njit function (compile time is superlinear in size)
PARALLEL_MIN_ELEMENTS = 1 << 21  # below this a prange region costs more than it saves (benchmarks/bench_prange.py)
# On 2 cores prange lost at every size measured (up to 4M elements): OpenBLAS already
# uses both cores for the matmuls, and waking numba's pool costs more than it saves.
PARALLEL_MIN_THREADS = 4
ALIGN = 16  # workspace views start on 64-byte boundaries (16 float32s)
HOST = "host"  # a chunk that is a host call of an op's NumPy reference, not an @njit function


def select_threading_layer():
    """Use workqueue unless the user chose a layer: OpenMP's spin-waiting threads
    fight OpenBLAS's threads on small machines."""
    if not os.environ.get("NUMBA_THREADING_LAYER"):
        import numba
        numba.config.THREADING_LAYER = "workqueue"


class Emitter:
    """State for emitting one module: names, storage, and the parallel choice."""

    def __init__(self, graph, outputs, parallel, dims, flush_subnormals=True):
        self.g, self.outputs, self.flush_subnormals = graph, outputs, flush_subnormals
        self.plan = plan(graph, outputs, small_matmul=True)
        self.parallel, self.bound_dims = parallel, dims or {}
        self.leaves = sorted(graph.nodes_with_op("input", "param"))
        # Names: the module scope, `run`'s scope (nodes, dims, run locals) and, per
        # step, a child for the step's temporaries that records what the step reads.
        self.module_scope = Scope()
        self.scope = self.module_scope.child()
        for n in self.leaves:
            self._node_name(n)
        for d in self._dim_names():
            self.scope.bind(("dim", d), d)
        for n in graph.toposort():
            self._node_name(n)
        self.step_scope = self.scope.child()
        self.constants, self.regs, self.flat = {}, {}, {}
        self.uses_prange, self.uses_host, self._earlier_defined = False, False, []

    # ----- names (every identifier comes from a Scope) ----------------------------------
    def _node_name(self, n):
        return self.scope.bind(n, self.g.name_of(n))

    def name(self, n):
        """The variable of node n, recorded as read by the current step."""
        return self.step_scope.use(self._node_name(n))

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

    def one_d(self, n):
        """The 1-element array a 0-d leaf arrives in."""
        return self.step_scope.use(self.scope.bind(("1d", n), self._node_name(n) + "_1d"))

    def global_(self, n):
        key = self.module_scope.bind(("global", n), "K_" + self._node_name(n))
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

    def read(self, n, loop_shape, loop_vars, flat=False):
        """n's value at the current loop index."""
        shape = self.g.shape(n)
        if shape == ():
            return self.scalar(n)
        if n in self.regs:
            return self.regs[n]
        if flat:
            return f"{self.flat[self.array(n)]}[{loop_vars[0]}]"
        return f"{self.array(n)}[{index_expr(shape, loop_shape, loop_vars)}]"

    def ctx(self, n):
        return Ctx(self.g.dtype(n), self.g.node(n)["attrs"], [self.g.dtype(o) for o in self.g.operands(n)])

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

    # ----- the module --------------------------------------------------------------------
    def module(self):
        """`run` binds the dims and workspace views, then calls the kernels: chunks of
        consecutive steps, each its own @njit function.  numba's compile time grows
        faster than linearly with a function's size (SSA and liveness passes, LLVM),
        so a big graph compiles much faster in chunks of about CHUNK_LINES; a small
        graph is one chunk.  Loops under prange go to chunks of their own, compiled
        with parallel=True (the parfor pass is the most superlinear of all).

        `run` itself is plain Python: numba links every callee into its caller
        and optimizes the whole again, so an @njit `run` compiled each chunk
        twice (about 40% of a small graph's cold compile).  Calling the chunks
        from Python costs about 0.1 us per argument instead."""
        self.new_step()
        views = self.scope.fresh("views")
        body = self._prologue() + self._unpack_views(views)
        chunks, current = [], []
        for step in self.plan.steps:
            self.uses_prange = False
            reads = self.new_step().reads
            if self.is_host(step):  # an op with no kernel: a host call between chunks
                chunks += [current] if current else []
                chunks.append([(step, self._host_call(step.node), HOST, reads)])
                self.uses_host = True
                current = []
                continue
            lines = self._step(step)
            full = current and sum(len(l) for _, l, _, _ in current) + len(lines) > CHUNK_LINES
            if full or (current and current[-1][2] != self.uses_prange):
                chunks.append(current)
                current = []
            current.append((step, lines, self.uses_prange, reads))
        chunks += [current] if current else []
        ret_reads = self.new_step().reads
        ret = self._return()
        later = [self._names_used(c) for c in chunks] + [set(ret_reads)]
        kernels = []
        for k, chunk in enumerate(chunks):
            if chunk[0][2] is HOST:
                body += chunk[0][1]
                self._earlier_defined += self._defined(chunk[0][0])
                continue
            needed_after = set().union(*later[k + 1:])
            call, fn = self._as_function(k, chunk, needed_after)
            body += call
            kernels += fn
        body += ret
        signature = f"def run({', '.join(self._params(views))}):"
        doc = '    """Compute the graph: one call of each compiled chunk, in order."""'
        if self.flush_subnormals:  # FTZ|DAZ for this call only (graphc/codegen/fpenv.py)
            fp_state = self.scope.fresh("fp_state")
            body = [f"    {fp_state} = flush_subnormals()", "    try:", *["    " + l for l in body],
                    "    finally:", f"        restore({fp_state})"]
        return "\n".join(self._header() + kernels + [signature, doc] + body + [""])

    @staticmethod
    def _names_used(chunk):
        """What a chunk reads, as its steps' scopes recorded it."""
        return {name for _, _, _, reads in chunk for name in reads}

    def _defined(self, step):
        """Names a step binds that later steps may read: scalars and views."""
        if isinstance(step, (Scalar, View)) or (isinstance(step, Kernel) and self.g.shape(step.node) == ()):
            return [self._node_name(step.node)]
        return []

    def _scope(self):
        """Names `run` binds itself: leaves, dims, workspace views, globals."""
        names = {self._node_name(n) for n in self.leaves}
        names |= {self.scope.lookup(("dim", d)) for d in self._dim_names()}
        names |= {self.scope.lookup(("1d", n)) for n in self.leaves if self.g.shape(n) == ()}
        names |= {self._node_name(n) for n, st in self.plan.storage.items() if st == "buffer"}
        return names | set(self.constants)

    def _as_function(self, k, chunk, needed_after):
        defined = [name for step, _, _, _ in chunk for name in self._defined(step)]
        known = self._scope() | set(self._earlier_defined)
        args = sorted((self._names_used(chunk) & known) - set(defined))
        returns = [name for name in defined if name in needed_after]
        self._earlier_defined += returns
        first = chunk[0][0]
        node = first.leaf if isinstance(first, Copy) else (first.members[-1] if isinstance(first, Loop) else first.node)
        fname = self.module_scope.fresh(f"k{k}_{self._node_name(node)}")
        fn = [DECORATOR.format(parallel=chunk[0][2]), f"def {fname}({', '.join(args)}):"]
        fn += [line for _, lines, _, _ in chunk for line in lines]
        ret = "".join(r + ", " for r in returns)
        fn += [f"    return ({ret})"] if returns else []
        call = [f"    {'(' + ret + ') = ' if returns else ''}{fname}({', '.join(args)})"]
        call += self._cast_returned_scalars(chunk, returns)
        return call, fn + ["", ""]

    def is_host(self, step):
        """A Kernel step for an op with no numba kernel runs the op's NumPy reference on
        the host, between compiled chunks (as PyTensor's numba backend falls back to
        object mode): correct, if slower."""
        return isinstance(step, Kernel) and step.partner is None and self.g.op(step.node) not in K.KERNELS

    def _host_call(self, n):
        g = self.g
        args = [self.scalar(o) if g.shape(o) == () else self.array(o) for o in g.operands(n)]
        call = ref_call(g.op(n), args, g.node(n)["attrs"], self.dim)
        note = f"  # {comment(g.node_text(n))}: no numba kernel, the NumPy reference on the host"
        if g.shape(n) == ():
            return [f"    {self.name(n)} = np.asarray({call}, dtype=np.{dtype_name(g.dtype(n))})[()]{note}"]
        return [f"    np.copyto({self.array(n)}, {call}){note}"]

    def _cast_returned_scalars(self, chunk, returns):
        """numba returns a float32 or int32 scalar as a Python float or int; cast it back
        so the next chunk computes in the graph's dtype, as the Python backend does."""
        lines = []
        for step, _, _, _ in chunk:
            name = self._defined(step)[0] if self._defined(step) else None
            if name in returns and self.g.shape(step.node) == () and self.g.dtype(step.node) not in ("float64", "int64"):
                lines.append(f"    {name} = np.{dtype_name(self.g.dtype(step.node))}({name})")
        return lines

    def _params(self, views):
        leaves = [self.one_d(n) if self.g.shape(n) == () else self._node_name(n) for n in self.leaves]
        return leaves + [views]

    def _view_names(self):
        return [self._node_name(n) for n in self.plan.buffers()]

    def _ws_dtypes(self):
        return sorted({self.g.dtype(n) for n in self.plan.buffers()})

    def _header(self):
        g = self.g
        lines = [
            f'"""Numba CPU code for one graph, emitted by graphc {__version__}.',
            "",
            "`run` computes the whole graph: forward, backward and (for a training",
            "step) the parameter update, calling each compiled chunk once.",
            "Intermediates are views into the workspace arrays (`workspace_views`);",
            "loops are fused chains of elementwise ops.  Regenerate rather than edit.",
            '"""',
            "import math",
            "",
            "import numpy as np",
            "from numba import njit, prange",
            *(["", "from graphc.backends.python import pyref as ref  # ops with no kernel: NumPy references"] if self.uses_host else []),
            *(["", "from graphc.backends.numba_cpu.fpenv import flush_subnormals, restore"] if self.flush_subnormals else []),
            "",
            f"GRAPH = {literal(g.name)}",
            f"INPUTS = {literal(tuple(g.name_of(n) for n in self.leaves))}",
            f"SCALAR_INPUTS = {literal(tuple(g.name_of(n) for n in self.leaves if g.shape(n) == ()))}",
            f"OUTPUTS = {literal(tuple(self.outputs))}",
            f"WORKSPACE_DTYPES = {literal(tuple(self._ws_dtypes()))}",
            f"DIMS = {literal(tuple(self._dim_names()))}",
            "",
        ]
        lines += self._globals()
        lines += self._workspace_sizes() + self._workspace_views() + ["", ""]
        return lines

    def _dim_names(self):
        seen = []
        for n in self.leaves:
            seen += [d for d in self.g.shape(n) if isinstance(d, str) and d not in seen]
        return seen

    def _globals(self):
        """Array constants: module globals the loader hands over (runtime.load_source)."""
        if not self.constants:
            return []
        lines = ["# CONSTANTS (a dict) is handed over by the loader: runtime.load_source"]
        return lines + [f"{k} = CONSTANTS[{literal(k)}]" for k in self.constants] + [""]

    def _dim_vars(self):
        return [self.scope.lookup(("dim", d)) for d in self._dim_names()]

    def _aligned_sizes(self, dtype):
        return [f"_aligned({K.size(self, self.g.shape(n))})" for n in self.plan.buffers() if self.g.dtype(n) == dtype]

    def _workspace_sizes(self):
        dims = ", ".join(self._dim_vars())
        sizes = [" + ".join(self._aligned_sizes(dt)) for dt in self._ws_dtypes()]
        return ["", "def _aligned(n):", f"    return (n + {ALIGN - 1}) // {ALIGN} * {ALIGN}", "", "",
                f"def workspace_sizes({dims}):", '    """Elements of each workspace array, for the bound dims."""',
                f"    return ({''.join(s + ', ' for s in sizes)})"]

    def _prologue(self):
        lines = []
        for d in self._dim_names():
            n = next(n for n in self.leaves if d in self.g.shape(n))
            lines.append(f"    {self.dim(d)} = {self.name(n)}.shape[{self.g.shape(n).index(d)}]")
        for n in self.leaves:
            if self.g.shape(n) == ():
                lines.append(f"    {self.name(n)} = {self.one_d(n)}[0]")
        return lines

    def _workspace_views(self):
        """`workspace_views` carves every buffer out of the workspace arrays.  The host
        calls it once per allocation and passes the views to each `run`."""
        self.new_step()
        ws = {dt: self.fresh(f"ws_{dt}") for dt in self._ws_dtypes()}
        o = self.fresh("o")
        params = ", ".join([*ws.values(), *self._dim_vars()])  # either list may be empty
        lines = ["", "", f"def workspace_views({params}):",
                 '    """Views into the workspace arrays, one per buffer, in `run`\'s order."""']
        for dt in self._ws_dtypes():
            lines.append(f"    {o} = 0  # {dt} workspace")
            for n in self.plan.buffers():
                if self.g.dtype(n) == dt:
                    shape, size = self.g.shape(n), K.size(self, self.g.shape(n))
                    lines.append(f"    {self.name(n)} = {ws[dt]}[{o}:{o} + {size}].reshape({K.tuple_text(self, shape)})")
                    lines.append(f"    {o} += ({size} + {ALIGN - 1}) // {ALIGN} * {ALIGN}")
        return lines + [f"    return ({''.join(v + ', ' for v in self._view_names())})"]

    def _unpack_views(self, views):
        names = self._view_names()
        return [f"    ({''.join(v + ', ' for v in names)}) = {views}"] if names else []

    def _return(self):
        parts = []
        for n in self.outputs.values():
            parts.append(self.scalar(n) if self.g.shape(n) == () else self.array(n))
        return [f"    return ({''.join(p + ', ' for p in parts)})"]

    # ----- steps ------------------------------------------------------------------------
    def _step(self, step):
        text = lambda n: comment(self.g.node_text(n))  # noqa: E731
        if isinstance(step, Loop):
            return [f"    # loop over {comment(K.shape_comment(step.shape))}: {comment(', '.join(self.g.name_of(m) for m in step.members))}",
                    *K.fused_loop(self, step)]
        if isinstance(step, Scalar):
            return [f"    {self.name(step.node)} = {self._scalar_step(step.node)}  # {text(step.node)}"]
        if isinstance(step, View):
            src = self.array(self.g.operands(step.node)[0])
            view = f"{src}.T" if step.how == "T" else f"{src}.reshape({K.tuple_text(self, self.g.shape(step.node))})"
            return [f"    {self.name(step.node)} = {view}  # {text(step.node)}"]
        if isinstance(step, Copy):
            return K.copy_into_leaf(self, step.leaf, step.value)
        also = [f"    # {text(step.partner)}"] if step.partner is not None else []
        return [f"    # {text(step.node)}", *also, *K.kernel(self, step)]

    def _scalar_step(self, n):
        g, op = self.g, self.g.op(n)
        operands = g.operands(n)
        if op == "count":
            axes = g.node(n)["attrs"]["axes"]
            shape = g.shape(operands[0])
            return f"np.{dtype_name(g.dtype(n))}({K.size(self, [shape[a] for a in axes])})"
        if op in ("reshape", "transpose"):  # of a 0-d or 1-element array: its one value
            src = operands[0]
            return self.scalar(src) if g.shape(src) == () else f"{self.array(src)}[{', '.join('0' for _ in g.shape(src))}]"
        return scalar_expr(op, [self.scalar(o) for o in operands], self.ctx(n))


def emit(graph, outputs=None, parallel=False, dims=None, flush_subnormals=True):
    """Return the numba module source for `graph`.  `parallel`: False, True (every
    loop under prange: what tests use to exercise the parallel code), or "auto"
    (prange for loops of at least PARALLEL_MIN_ELEMENTS at `dims`).
    `flush_subnormals`: run with the CPU's flush-to-zero on (fpenv.py)."""
    outputs = graph.select_outputs(outputs)
    if parallel not in (True, False, "auto"):
        raise GraphcError(f"parallel must be True, False or 'auto', got {parallel!r}")
    return emit_module(graph, outputs, parallel, dims, flush_subnormals)[0]


def emit_module(graph, outputs=None, parallel=False, dims=None, flush_subnormals=True):
    """(source, constants): `emit`, with the array constants the loader hands over."""
    outputs = graph.select_outputs(outputs)
    if parallel not in (True, False, "auto"):
        raise GraphcError(f"parallel must be True, False or 'auto', got {parallel!r}")
    e = Emitter(graph, outputs, parallel, dims, flush_subnormals)
    return e.module(), e.constants


def _threads():
    import numba
    return numba.config.NUMBA_NUM_THREADS


def build(graph, outputs=None, parallel="auto", copy_outputs=True, flush_subnormals=True):
    """The numba backend's compile.  Outputs are copied out of the workspace unless
    copy_outputs=False (then they are overwritten by the next call).  With
    flush_subnormals (the default) each call runs with flush-to-zero on, as XLA
    does: subnormal floats become 0 instead of costing ~100 cycles each."""
    select_threading_layer()
    if flush_subnormals not in (True, False):
        raise GraphcError(f"flush_subnormals must be True or False, got {flush_subnormals!r}")
    from graphc.backends.numba_cpu.host import NumbaCompiled
    outputs = graph.select_outputs(outputs)
    return NumbaCompiled(graph, outputs, parallel, copy_outputs, flush_subnormals)
