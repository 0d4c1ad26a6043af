"""Emit a numba-cuda module for a graph: fused elementwise kernels, a tiled
shared-memory matmul, tree reductions, and a host `run` that launches them.

The plan (what fuses, what is stored) is `fusion.plan`, the same as the numba
CPU backend's, so both backends fuse identically; each step becomes one
`@cuda.jit` kernel (a run of 0-d steps shares one single-thread kernel).  The
kernel templates live in kernels.py (the backend's table), the elementwise
spellings it shares with the numba CPU backend in common/scalar.py; host.py
keeps the memory on the device and is the registry's entry.

Memory stays on the device.  Intermediates, 0-d values (1-element arrays) and
constants live in a workspace that `workspace(dims...)` allocates once per set
of bound dims; held arrays (a step's params and optimizer state) are device
arrays that the updates overwrite in place, so a training step moves only its
minibatch in and its outputs out.  Views (reshape, 2-D .T) are never
materialized: a kernel reads the viewed array through index arithmetic.

Launch shapes are module constants: THREADS per block, TILE for the matmul,
MAX_BLOCKS for grid-stride loops.  Under numba-cuda's simulator
(NUMBA_ENABLE_CUDASIM=1), where every thread is a Python thread, they default
to tiny values so tests run quickly; the code is the same.
"""
import importlib.util
import re

import numpy as np

from graphc._version import __version__
from graphc.backends.common.fusion import Copy, Loop, Scalar, View, plan
from graphc.backends.common.indexing import symbolic_dims
from graphc.backends.common.literals import comment, dtype_name, literal, shape_display, shape_text
from graphc.backends.common.names import Scope
from graphc.backends.common.scalar import Ctx, lit
from graphc.backends.cuda import kernels as K
from graphc.errors import GraphcError, label_at

GPU_OPTIONS = {"threads": 128, "tile": 16, "max_blocks": 4096, "tree_min": 32}
SIM_OPTIONS = {"threads": 4, "tile": 4, "max_blocks": 2, "tree_min": 32}
_MARKER = re.compile("\0([A-Za-z0-9_]+)\0")  # a template temporary (kernels.py)


def simulating():
    """True when numba-cuda runs kernels on its simulator (NUMBA_ENABLE_CUDASIM=1 when
    numba was imported).  Asks the loaded cuda module, since numba may re-read its
    config from the environment later."""
    if importlib.util.find_spec("numba_cuda") is None:
        return False
    from numba import cuda
    return "simulator" in cuda.jit.__module__


def options(threads=None, tile=None, max_blocks=None, tree_min=None, **unknown):
    """The launch options, defaults filled in for a GPU or the simulator, and checked."""
    if unknown:
        raise GraphcError(f"the cuda backend has no option {', '.join(map(repr, unknown))}; "
                          "it takes threads, tile, max_blocks, tree_min")
    base = SIM_OPTIONS if simulating() else GPU_OPTIONS
    given = {"threads": threads, "tile": tile, "max_blocks": max_blocks, "tree_min": tree_min}
    opts = {k: base[k] if v is None else v for k, v in given.items()}
    t = opts["threads"]
    if not (isinstance(t, int) and 1 <= t <= 1024 and t & (t - 1) == 0):
        raise GraphcError(f"threads must be a power of 2 from 1 to 1024, got {t!r}")
    if not (isinstance(opts["tile"], int) and 1 <= opts["tile"] <= 32):
        raise GraphcError(f"tile must be an int from 1 to 32 (tile*tile threads per block), got {opts['tile']!r}")
    if not (isinstance(opts["max_blocks"], int) and opts["max_blocks"] >= 1):
        raise GraphcError(f"max_blocks must be a positive int, got {opts['max_blocks']!r}")
    if not (isinstance(opts["tree_min"], int) and opts["tree_min"] >= 0):
        raise GraphcError(f"tree_min must be a non-negative int, got {opts['tree_min']!r}")
    return opts


class Emitter:
    """State for emitting one module: names, storage, and what each kernel reads."""

    def __init__(self, graph, outputs, opts):
        self.g, self.outputs, self.opts = graph, outputs, opts
        self.plan = plan(graph, outputs)
        self.leaves = sorted(graph.nodes_with_op("input", "param"))
        self.symbolic_dims = symbolic_dims(graph, self.leaves)  # [(dim, leaf, axis)]
        self.dim_names = [d for d, _, _ in self.symbolic_dims]
        # Names: the module scope, `run`'s (nodes, dims, buffers), and per kernel a child
        # that hands out the kernel's temporaries and records what it reads (its parameters).
        self.module_scope = Scope()
        self.scope = self.module_scope.child()
        for n in self.leaves:
            self._node_name(n)
        self.dim_vars = [self.scope.bind(("dim", d), d) for d in self.dim_names]
        for n in graph.toposort():
            self._node_name(n)
        self.by_ref = {n for n in graph.updates if graph.shape(n) == ()}  # 0-d leaves the step overwrites
        self.kernels, self.checks, self.check_code, self.constants = [], [], {}, {}
        self.kscope, self.local, self.temps = self.scope.child(), {}, {}

    # ----- names, and what a kernel reads (each use records a parameter) -------------------
    def _node_name(self, n):
        return self.scope.bind(n, self.g.name_of(n))

    def name(self, n):
        return self._node_name(n)

    def use(self, var):
        return self.kscope.use(var)

    def temp(self, key, hint=None):
        """The kernel's temporary for a template marker: one name per key per kernel."""
        if key not in self.temps:
            self.temps[key] = self.kscope.fresh(hint or "_" + key)
        return self.temps[key]

    def finish(self, lines):
        """Template lines with their temporary markers replaced by the kernel's names."""
        return [_MARKER.sub(lambda m: self.temp(m.group(1)), line) for line in lines]

    def reg(self, n):
        """The kernel's register (local) for node n's value."""
        return self.temp(("reg", n), self.name(n) + "_")

    def err(self):
        """The 1-element array a kernel writes a label error code into."""
        return self.use(self.scope.bind(("err",), "_err"))

    def dim(self, d):
        return self.use(self.scope.lookup(("dim", d))) if isinstance(d, str) else literal(int(d))

    def dims(self, shape):
        return [self.dim(d) for d in shape]

    def size(self, shape):
        return " * ".join(self.dims(shape)) or "1"

    def array(self, n):
        """The device array holding node n."""
        storage = self.plan.storage[n]
        if isinstance(storage, tuple):
            return self.name(storage[1])  # an update written into its param's own array
        if storage == "global":
            key = self.module_scope.bind(("global", n), "K_" + self.name(n))
            self.constants[key] = np.asarray(self.g.node(n)["attrs"]["value"])
            return key
        return self.name(n)

    def at(self, n, idx):
        """Element idx of array node n; a view reads the array it views."""
        g = self.g
        if g.shape(n) == ():
            return self.val(n)
        if self.plan.storage[n] == "view":
            src = g.operands(n)[0]
            return self.at(src, [idx[1], idx[0]] if g.op(n) == "transpose" else K.reshape_index(self, n, src, idx))
        return f"{self.use(self.array(n))}[{', '.join(idx)}]"

    def ref(self, n):
        """The slot of a 0-d value kept in a 1-element device array."""
        return f"{self.use(self.array(n))}[0]"

    def val(self, n):
        """A 0-d node's value: a literal, a by-value argument, or its 1-element array."""
        if n in self.local:
            return self.local[n]
        storage = self.plan.storage[n]
        if storage == "literal":
            return lit(np.asarray(self.g.node(n)["attrs"]["value"]).item(), self.g.dtype(n))
        if storage == "arg" and n not in self.by_ref:
            return self.use(self.name(n))
        return self.ref(n)

    value = val  # what common/scalar.py's scalar steps call these
    element = at

    def ctx(self, n):
        return Ctx.of(self.g, n)

    def label_check(self, n):
        """The error code a kernel writes when node n meets a label outside its range."""
        if n not in self.check_code:
            g = self.g
            x, labels = g.operands(n)
            bound = g.shape(x)[1]
            source = g.name_of(labels) if g.op(labels) in ("input", "param") else None
            self.checks.append((source, bound, label_at(g.op(n), g.name_of(n), bound)))
            self.check_code[n] = len(self.checks)
        return self.check_code[n]

    # ----- the module -------------------------------------------------------------------------
    def module(self):
        for step in _grouped(self.plan.steps):
            self._kernel(step)
        tail = self._workspace() + self._run()
        lines = self._header()
        for name, params, body, launch, doc in self.kernels:
            lines += ["", "", "@cuda.jit(cache=True)", f"def {name}({', '.join(params)}):", f"    # {comment(doc)}",
                      *K.indent(body)]
        return "\n".join(lines + tail + [""])

    def _kernel(self, step):
        if isinstance(step, View):
            return  # read through index arithmetic by the kernels that use it
        self.kscope, self.local, self.temps = self.scope.child(), {}, {}
        g = self.g
        if isinstance(step, list):
            body, launch = K.scalars(self, [s.node for s in step])
            hint, doc = "scalars", "0-d values: " + ", ".join(g.name_of(s.node) for s in step)
        elif isinstance(step, Loop):
            body, launch = K.fused_loop(self, step)
            hint = self.name(step.members[-1])
            doc = f"loop over {shape_display(step.shape)}: " + ", ".join(g.name_of(m) for m in step.members)
        elif isinstance(step, Copy):
            body, launch = K.copy_into_leaf(self, step.leaf, step.value)
            hint, doc = self.name(step.leaf), f"{g.name_of(step.leaf)} <- {g.name_of(step.value)}"
        elif getattr(step, "partner", None) is not None:
            body, launch = K.softmax_cross_entropy(self, step.node, step.partner)
            hint, doc = self.name(step.node), f"{g.node_text(step.node)}; {g.node_text(step.partner)}"
        else:
            op = g.op(step.node)
            if op not in K.KERNELS:
                raise GraphcError(f"{op} '{g.name_of(step.node)}': the cuda backend has no kernel for op {op!r} "
                                  "(see docs/adding-an-op.md); use the python or numba backend for this graph")
            body, launch = K.KERNELS[op](self, step.node)
            hint, doc = self.name(step.node), g.node_text(step.node)
        body = self.finish(body)
        launch = tuple(self.finish([x])[0] if isinstance(x, str) else x for x in launch)
        name = self.module_scope.fresh(f"_k{len(self.kernels)}_{hint}")
        self.kernels.append((name, list(self.kscope.reads), body, launch, doc))

    def _header(self):
        g, o = self.g, self.opts
        by_ref = tuple(g.name_of(n) for n in self.leaves if n in self.by_ref)
        return [
            f'"""CUDA code (numba-cuda) for one graph, emitted by graphc {__version__}.',
            "",
            "`run` launches one kernel per fused loop, matmul, reduction or other op, in",
            "order: for a training step, forward, backward and the parameter update.  It",
            "takes device arrays (0-d inputs by value) and the workspace from",
            "`workspace(dims...)`, and returns the outputs as host arrays.  Regenerate",
            "rather than edit.",
            '"""',
            "import math",
            "",
            "import numba",
            "import numpy as np",
            "from numba import cuda",
            "",
            f"GRAPH = {literal(g.name)}",
            f"INPUTS = {literal(tuple(g.name_of(n) for n in self.leaves))}",
            f"OUTPUTS = {literal(tuple(self.outputs))}",
            f"DIMS = {literal(tuple(self.dim_names))}",
            f"BY_REF = {literal(by_ref)}  # 0-d inputs passed as 1-element device arrays (the step updates them)",
            f"LABEL_CHECKS = {literal(tuple(self.checks))}  # (label input or None, bound, message)",
            "",
            f"THREADS = {literal(int(o['threads']))}  # threads per block: 1-D kernels and reduction trees (a power of 2)",
            f"TILE = {literal(int(o['tile']))}  # matmul tiles are TILE x TILE (one thread per element of C)",
            f"MAX_BLOCKS = {literal(int(o['max_blocks']))}  # grid-stride loops use at most this many blocks",
            "",
            *(["# CONSTANTS (a dict) is handed over by the loader: runtime.load_source"] if self.constants else []),
            *[f"{k} = CONSTANTS[{literal(k)}]" for k in self.constants],
            "",
            "def _blocks(n):",
            "    return min(max((n + THREADS - 1) // THREADS, 1), MAX_BLOCKS)",
            "",
            "",
            "def _tree_blocks(n):",
            "    return min(max(n, 1), MAX_BLOCKS)",
            "",
            "",
            "def _tiles(m, n):",
            "    return (min(max((m + TILE - 1) // TILE, 1), MAX_BLOCKS), min(max((n + TILE - 1) // TILE, 1), MAX_BLOCKS, 65535))",
        ]

    def _buffers(self):
        """(name, allocation) for every device array of the workspace, in step order."""
        g, out = self.g, []
        for n in self.plan.order:
            storage = self.plan.storage.get(n)
            if storage == "buffer":
                out.append((self.name(n), f"cuda.device_array({self.shape_text(g.shape(n))}, np.{dtype_name(g.dtype(n))})"))
            elif storage == "scalar":
                out.append((self.name(n), f"cuda.device_array(1, np.{dtype_name(g.dtype(n))})"))
        for n, storage in self.plan.storage.items():
            if storage == "global":
                out.append((self.array(n), f"cuda.to_device({self.array(n)})"))
        if self.checks:
            out.append((self.err(), "cuda.to_device(np.zeros(1, np.int32))"))
        return out

    def shape_text(self, shape):
        """A shape in `run` (not in a kernel: no parameter is recorded)."""
        return shape_text(shape, lambda d: self.scope.lookup(("dim", d)))

    def _workspace(self):
        buffers = self._buffers()
        lines = ["", "", f"WORKSPACE = {literal(tuple(name for name, _ in buffers))}", "", "",
                 f"def workspace({', '.join(self.dim_vars)}):",
                 '    """Device memory for the bound dims: allocated once, reused by every call."""', "    return ("]
        return lines + [f"        {alloc},  # {name}" for name, alloc in buffers] + ["    )"]

    def _run(self):
        leaves = [self.name(n) for n in self.leaves]
        ws, check = self.scope.fresh("ws"), self.scope.fresh("check")
        lines = ["", "", f"def run({', '.join(leaves + [ws, check])}):",
                 '    """Launch every kernel in order; return the outputs as host arrays."""']
        for (_, n, axis), var in zip(self.symbolic_dims, self.dim_vars):
            lines.append(f"    {var} = {self.name(n)}.shape[{axis}]")
        names = [name for name, _ in self._buffers()]
        if names:
            lines.append(f"    {''.join(n + ', ' for n in names)}= {ws}")
        for name, params, _, launch, _ in self.kernels:
            lines.append(f"    {name}{K.launch_text(launch)}({', '.join(params)})")
        if self.checks:
            code, err = self.scope.fresh("code"), self.err()
            lines += [f"    if {check}:  # a kernel met a label out of range",
                      f"        {code} = int({err}.copy_to_host()[0])",
                      f"        if {code}:",
                      f"            {err}.copy_to_device(np.zeros(1, np.int32))",
                      f"            raise ValueError(LABEL_CHECKS[{code} - 1][2])"]
        return lines + [f"    return ({''.join(self._host(n) + ', ' for n in self.outputs.values())})"]

    def _host(self, n):
        """Source for a host copy of output n."""
        g, storage = self.g, self.plan.storage[n]
        if g.shape(n) == ():
            if storage in ("literal", "arg") and n not in self.by_ref:
                return f"np.asarray({self.val(n)})"
            return f"{self.array(n)}.copy_to_host().reshape(())"
        if storage == "view":
            src = self._host(g.operands(n)[0])
            return f"{src}.T" if g.op(n) == "transpose" else f"{src}.reshape({self.shape_text(g.shape(n))})"
        return f"{self.array(n)}.copy_to_host()"


def _grouped(steps):
    """Steps, with each run of consecutive Scalar steps merged into one list."""
    out = []
    for step in steps:
        if isinstance(step, Scalar) and out and isinstance(out[-1], list):
            out[-1].append(step)
        else:
            out.append([step] if isinstance(step, Scalar) else step)
    return out


def emit(graph, outputs=None, **opts):
    """Return the numba-cuda module source for `graph`.  Options: threads, tile,
    max_blocks, tree_min (see `options`); the defaults suit a GPU, or the simulator."""
    return emit_module(graph, outputs, **opts)[0]


def emit_module(graph, outputs=None, **opts):
    """(source, constants): `emit`, with the array constants the loader hands over."""
    outputs = graph.select_outputs(outputs)
    e = Emitter(graph, outputs, options(**opts))
    return e.module(), e.constants
