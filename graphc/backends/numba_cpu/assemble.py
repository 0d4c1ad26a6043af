"""The numba module around the steps: `run`, which calls chunks of consecutive steps
compiled as @njit functions, the module header, and the workspace functions.

Each function takes the Emitter (emit.py), whose steps are already planned; the
kernel templates per op are kernels.py.
"""
from graphc._version import __version__
from graphc.backends.common.fusion import Copy, Kernel, Loop, Scalar, View
from graphc.backends.common.literals import dtype_name, literal
from graphc.backends.common.reference import IMPORT as REF_IMPORT

DECORATOR = '@njit(cache=True, error_model="numpy", nogil=True, parallel={parallel})'
CHUNK_LINES = 160  # lines of loop code per @njit function (compile time is superlinear in size)
ALIGN = 16  # workspace views start on 64-byte boundaries (16 float32s)
HOST = "host"  # a chunk that is a host call of an op's NumPy reference, not an @njit function


def module_source(e):
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
    e.new_step()
    views = e.scope.fresh("views")
    body = _prologue(e) + _unpack_views(e, views)
    chunks, current = [], []
    for step in e.plan.steps:
        e.uses_prange = False
        reads = e.new_step().reads
        if e.is_host(step):  # an op with no kernel: a host call between chunks
            chunks += [current] if current else []
            chunks.append([(step, e.host_call(step.node), HOST, reads)])
            e.uses_host = True
            current = []
            continue
        lines = e.step(step)
        full = current and sum(len(l) for _, l, _, _ in current) + len(lines) > CHUNK_LINES
        if full or (current and current[-1][2] != e.uses_prange):
            chunks.append(current)
            current = []
        current.append((step, lines, e.uses_prange, reads))
    chunks += [current] if current else []
    ret_reads = e.new_step().reads
    ret = _return(e)
    later = [_names_used(c) for c in chunks] + [set(ret_reads)]
    kernels = []
    for k, chunk in enumerate(chunks):
        if chunk[0][2] is HOST:
            body += chunk[0][1]
            e.earlier_defined += _defined(e, chunk[0][0])
            continue
        needed_after = set().union(*later[k + 1:])
        call, fn = _as_function(e, k, chunk, needed_after)
        body += call
        kernels += fn
    body += ret
    signature = f"def run({', '.join(_params(e, views))}):"
    doc = '    """Compute the graph: one call of each compiled chunk, in order."""'
    if e.flush_subnormals:  # FTZ|DAZ for this call only (numba_cpu/fpenv.py)
        fp_state = e.scope.fresh("fp_state")
        body = [f"    {fp_state} = flush_subnormals()", "    try:", *["    " + l for l in body],
                "    finally:", f"        restore({fp_state})"]
    return "\n".join(_header(e) + kernels + [signature, doc] + body + [""])


def _names_used(chunk):
    """What a chunk reads, as its steps' scopes recorded it."""
    return {name for _, _, _, reads in chunk for name in reads}


def _defined(e, step):
    """Names a step binds that later steps may read: scalars and views."""
    if isinstance(step, (Scalar, View)) or (isinstance(step, Kernel) and e.g.shape(step.node) == ()):
        return [e.node_name(step.node)]
    return []


def _scope(e):
    """Names `run` binds itself: leaves, dims, workspace views, globals."""
    names = {e.node_name(n) for n in e.leaves}
    names |= {e.scope.lookup(("dim", d)) for d in e.dim_names}
    names |= {e.scope.lookup(("1d", n)) for n in e.leaves if e.g.shape(n) == ()}
    names |= {e.node_name(n) for n, st in e.plan.storage.items() if st == "buffer"}
    return names | set(e.constants)


def _as_function(e, k, chunk, needed_after):
    defined = [name for step, _, _, _ in chunk for name in _defined(e, step)]
    known = _scope(e) | set(e.earlier_defined)
    args = sorted((_names_used(chunk) & known) - set(defined))
    returns = [name for name in defined if name in needed_after]
    e.earlier_defined += returns
    first = chunk[0][0]
    node = first.leaf if isinstance(first, Copy) else (first.members[-1] if isinstance(first, Loop) else first.node)
    fname = e.module_scope.fresh(f"k{k}_{e.node_name(node)}")
    fn = [DECORATOR.format(parallel=chunk[0][2]), f"def {fname}({', '.join(args)}):"]
    fn += [line for _, lines, _, _ in chunk for line in lines]
    ret = "".join(r + ", " for r in returns)
    fn += [f"    return ({ret})"] if returns else []
    call = [f"    {'(' + ret + ') = ' if returns else ''}{fname}({', '.join(args)})"]
    call += _cast_returned_scalars(e, chunk, returns)
    return call, fn + ["", ""]


def _cast_returned_scalars(e, chunk, returns):
    """numba returns a float32 or int32 scalar as a Python float or int; cast it back
    so the next chunk computes in the graph's dtype, as the Python backend does."""
    lines = []
    for step, _, _, _ in chunk:
        name = _defined(e, step)[0] if _defined(e, step) else None
        if name in returns and e.g.shape(step.node) == () and e.g.dtype(step.node) not in ("float64", "int64"):
            lines.append(f"    {name} = np.{dtype_name(e.g.dtype(step.node))}({name})")
    return lines


def _params(e, views):
    leaves = [e.one_d(n) if e.g.shape(n) == () else e.node_name(n) for n in e.leaves]
    return leaves + [views]


def _view_names(e):
    return [e.node_name(n) for n in e.plan.buffers()]


def _ws_dtypes(e):
    return sorted({e.g.dtype(n) for n in e.plan.buffers()})


def _header(e):
    g = e.g
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
        *(["", f"{REF_IMPORT}  # ops with no kernel: NumPy references"] if e.uses_host else []),
        *(["", "from graphc.backends.numba_cpu.fpenv import flush_subnormals, restore"] if e.flush_subnormals else []),
        "",
        f"GRAPH = {literal(g.name)}",
        f"INPUTS = {literal(tuple(g.name_of(n) for n in e.leaves))}",
        f"SCALAR_INPUTS = {literal(tuple(g.name_of(n) for n in e.leaves if g.shape(n) == ()))}",
        f"OUTPUTS = {literal(tuple(e.outputs))}",
        f"WORKSPACE_DTYPES = {literal(tuple(_ws_dtypes(e)))}",
        f"DIMS = {literal(tuple(e.dim_names))}",
        "",
    ]
    lines += _globals(e)
    lines += _workspace_sizes(e) + _workspace_views(e) + ["", ""]
    return lines


def _globals(e):
    """Array constants: module globals the loader hands over (runtime.load_source)."""
    if not e.constants:
        return []
    lines = ["# CONSTANTS (a dict) is handed over by the loader: runtime.load_source"]
    return lines + [f"{k} = CONSTANTS[{literal(k)}]" for k in e.constants] + [""]


def _dim_vars(e):
    return [e.scope.lookup(("dim", d)) for d in e.dim_names]


def _aligned_sizes(e, dtype):
    return [f"_aligned({e.size(e.g.shape(n))})" for n in e.plan.buffers() if e.g.dtype(n) == dtype]


def _workspace_sizes(e):
    dims = ", ".join(_dim_vars(e))
    sizes = [" + ".join(_aligned_sizes(e, dt)) for dt in _ws_dtypes(e)]
    return ["", "def _aligned(n):", f"    return (n + {ALIGN - 1}) // {ALIGN} * {ALIGN}", "", "",
            f"def workspace_sizes({dims}):", '    """Elements of each workspace array, for the bound dims."""',
            f"    return ({''.join(s + ', ' for s in sizes)})"]


def _prologue(e):
    lines = []
    for d, n, axis in e.symbolic_dims:
        lines.append(f"    {e.dim(d)} = {e.name(n)}.shape[{axis}]")
    for n in e.leaves:
        if e.g.shape(n) == ():
            lines.append(f"    {e.name(n)} = {e.one_d(n)}[0]")
    return lines


def _workspace_views(e):
    """`workspace_views` carves every buffer out of the workspace arrays.  The host
    calls it once per allocation and passes the views to each `run`."""
    e.new_step()
    ws = {dt: e.fresh(f"ws_{dt}") for dt in _ws_dtypes(e)}
    o = e.fresh("o")
    params = ", ".join([*ws.values(), *_dim_vars(e)])  # either list may be empty
    lines = ["", "", f"def workspace_views({params}):",
             '    """Views into the workspace arrays, one per buffer, in `run`\'s order."""']
    for dt in _ws_dtypes(e):
        lines.append(f"    {o} = 0  # {dt} workspace")
        for n in e.plan.buffers():
            if e.g.dtype(n) == dt:
                shape, size = e.g.shape(n), e.size(e.g.shape(n))
                lines.append(f"    {e.name(n)} = {ws[dt]}[{o}:{o} + {size}].reshape({e.shape_text(shape)})")
                lines.append(f"    {o} += ({size} + {ALIGN - 1}) // {ALIGN} * {ALIGN}")
    return lines + [f"    return ({''.join(v + ', ' for v in _view_names(e))})"]


def _unpack_views(e, views):
    names = _view_names(e)
    return [f"    ({''.join(v + ', ' for v in names)}) = {views}"] if names else []


def _return(e):
    parts = []
    for n in e.outputs.values():
        parts.append(e.scalar(n) if e.g.shape(n) == () else e.array(n))
    return [f"    return ({''.join(p + ', ' for p in parts)})"]
