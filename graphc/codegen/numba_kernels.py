"""Loop templates for the numba CPU backend: a table keyed by op.

Each entry takes the Emitter and a node and returns source lines (indented
one level, inside `run`).  Every loop writes each output element from exactly
one iteration, so `prange` never races: reductions either loop over output
indices, or give each thread its own block of outputs.
"""
from graphc.codegen.fusion import index_expr
from graphc.codegen.scalar import lit, scalar_expr

IND = "    "
BLOCK = 64  # outputs per thread block when a reduction runs across axis 0


def size(shape):
    parts = [str(d) for d in shape]
    return " * ".join(parts) if parts else "1"


def tuple_text(shape):
    parts = [str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def loop_vars(rank, prefix="i"):
    return [f"{prefix}{k}" for k in range(rank)]


def nest(shape, vars_, ranges, depth=1):
    """Nested for-headers over `shape`; `ranges[k]` is "range" or "prange"."""
    lines = []
    for k, (d, v) in enumerate(zip(shape, vars_)):
        lines.append(IND * (depth + k) + f"for {v} in {ranges[k]}({d}):")
    return lines, depth + len(shape)


# ----- fused elementwise loops ----------------------------------------------------------
def fused_loop(e, loop):
    g, shape = e.g, loop.shape
    flat = _can_flatten(e, loop)
    iter_shape = (size(shape),) if flat else shape
    vars_ = loop_vars(len(iter_shape))
    outer = e.range_(shape)
    lines = []
    if flat:
        for arr in sorted(_flat_arrays(e, loop)):
            lines.append(IND + f"{arr}_flat = {arr}.reshape({size(shape)})")
    head, depth = nest(iter_shape, vars_, [outer] + ["range"] * (len(iter_shape) - 1))
    lines += head
    members = set(loop.members)
    for m in loop.members:
        # A member computed earlier in this loop is read from its local, never reloaded.
        args = [e.name(o) + "_" if o in members else e.read(o, shape, vars_, flat) for o in g.operands(m)]
        expr = MEMORY_MEMBERS[g.op(m)](e, m, vars_) if g.op(m) in MEMORY_MEMBERS else scalar_expr(g.op(m), args, e.ctx(m))
        lines.append(IND * depth + f"{e.name(m)}_ = {expr}")
        if m in e.plan.stored:
            target = f"{e.array(m)}_flat[{vars_[0]}]" if flat else f"{e.array(m)}[{', '.join(vars_)}]"
            lines.append(IND * depth + f"{target} = {e.name(m)}_")
    return lines


def _small_matmul_expr(e, m, vars_):
    """(A @ B)[i, j] for a constant inner dimension K <= fusion.SMALL_K: K multiply-adds.
    A[i, k] is invariant in the inner loop and B[k, j] is row-major, so it vectorizes."""
    a, b = (e.array(o) for o in e.g.operands(m))
    i, j = vars_
    terms = [f"{a}[{i}, {k}] * {b}[{k}, {j}]" for k in range(e.g.shape(e.g.operands(m)[1])[0])]
    return "(" + " + ".join(terms) + ")"


def _one_hot_expr(e, m, vars_):
    dtype = e.g.dtype(m)
    return f"({lit(1, dtype)} if {e.array(e.g.operands(m)[0])}[{', '.join(vars_[:-1])}] == {vars_[-1]} else {lit(0, dtype)})"


# Loop members that read their operands from memory at indices of their own (fusion.py).
MEMORY_MEMBERS = {"matmul": _small_matmul_expr, "one_hot": _one_hot_expr}


def _can_flatten(e, loop):
    """One flat loop when every array read or written has the loop's shape in C order."""
    if len(loop.shape) < 2 or any(e.g.op(m) in MEMORY_MEMBERS for m in loop.members):
        return False
    members = set(loop.members)
    for m in loop.members:
        for o in e.g.operands(m):
            if o in members or e.g.shape(o) == ():
                continue
            if e.g.shape(o) != loop.shape or e.plan.layout.get(o) != "C":
                return False
    return True


def _flat_arrays(e, loop):
    members = set(loop.members)
    arrays = {e.array(o) for m in loop.members for o in e.g.operands(m)
              if o not in members and e.g.shape(o) != ()}
    return arrays | {e.array(m) for m in loop.members if m in e.plan.stored}


def copy_into_leaf(e, leaf, value):
    """An update that could not be written in place: copy its value into the param."""
    g = e.g
    dst = e.name(leaf)
    if g.shape(leaf) == ():
        return [IND + f"{dst}_1d[0] = {e.scalar(value)}  # {dst} <- {g.name_of(value)}"]
    vars_ = loop_vars(len(g.shape(leaf)))
    head, depth = nest(g.shape(leaf), vars_, [e.range_(g.shape(leaf))] + ["range"] * (len(vars_) - 1))
    read = e.read(value, g.shape(leaf), vars_)
    return [IND + f"# {dst} <- {g.name_of(value)}", *head, IND * depth + f"{dst}[{', '.join(vars_)}] = {read}"]


# ----- kernels for single nodes -----------------------------------------------------------
def kernel(e, step):
    if step.partner is not None:
        return _softmax_cross_entropy(e, step.node, step.partner)
    return KERNELS[e.g.op(step.node)](e, step.node)


def _matmul(e, n):
    a, b = (e.array(o) for o in e.g.operands(n))
    return [IND + f"np.dot({a}, {b}, {e.array(n)})  # BLAS gemm; a transposed operand is an F-order view"]


def _reduce_parts(e, n):
    g = e.g
    x = g.operands(n)[0]
    attrs = g.node(n)["attrs"]
    axes = tuple(sorted(attrs["axes"]))
    return g, x, g.shape(x), axes, attrs.get("keepdims", False)


def _out_index(xvars, axes, keepdims):
    parts = ["0" if k in axes else v for k, v in enumerate(xvars)] if keepdims else \
        [v for k, v in enumerate(xvars) if k not in axes]
    return ", ".join(parts)


def _reduce(e, n, op):
    """sum / max over axes.  Loops run over x in memory order; each output element is
    owned by one iteration of the outer (parallel) loop, so threads never share one."""
    g, x, xshape, axes, keepdims = _reduce_parts(e, n)
    dtype, xv = g.dtype(n), loop_vars(len(xshape))
    init = lit(0, dtype) if op == "sum" else lit(float("-inf"), dtype)
    read = f"{e.array(x)}[{', '.join(xv)}]"
    if g.shape(n) == ():
        return _reduce_to_scalar(e, n, op, xshape, xv, init, read)
    out = f"{e.array(n)}[{_out_index(xv, axes, keepdims)}]"
    lines = [IND + f"{e.array(n)}.fill({init})"]
    par = e.is_parallel(xshape)
    if par and 0 not in axes:
        head, depth = nest(xshape, xv, ["prange"] + ["range"] * (len(xv) - 1))
        e.uses_prange = True
    elif par:
        head, depth = _blocked(e, xshape, xv, axes)
    else:
        head, depth = nest(xshape, xv, ["range"] * len(xv))
    lines += head
    lines += _accumulate(op, out, read, depth)
    return lines


def _blocked(e, xshape, xv, axes):
    """Axis 0 is reduced: threads take disjoint blocks of the last kept axis."""
    k = max(a for a in range(len(xshape)) if a not in axes)
    e.uses_prange = True
    lines = [IND + f"for blk in prange(({xshape[k]} + {BLOCK - 1}) // {BLOCK}):"]
    depth = 2
    for a, (d, v) in enumerate(zip(xshape, xv)):
        rng = f"range(blk * {BLOCK}, min(blk * {BLOCK} + {BLOCK}, {d}))" if a == k else f"range({d})"
        lines.append(IND * (depth + a) + f"for {v} in {rng}:")
    return lines, depth + len(xshape)


def _accumulate(op, target, read, depth):
    if op == "sum":
        return [IND * depth + f"{target} += {read}"]
    return [IND * depth + f"v = {read}",
            IND * depth + f"if v > {target} or v != v:  # NaN wins, as in np.max",
            IND * (depth + 1) + f"{target} = v"]


def _reduce_to_scalar(e, n, op, xshape, xv, init, read):
    acc = e.name(n)
    # numba turns `acc += ...` under prange into a per-thread reduction; max stays serial.
    first = e.range_(xshape) if op == "sum" else "range"
    head, depth = nest(xshape, xv, [first] + ["range"] * (len(xv) - 1))
    return [IND + f"{acc} = {init}", *head, *_accumulate(op, acc, read, depth)]


def _fiber_lse(e, x, xv, inner_axes, xshape, depth, stash=None):
    """max, then sum of exp(x - max), along the inner axes: the log-sum-exp trick.
    With `stash` (an array variable), exp(x - max) is kept there for a softmax."""
    dtype = e.g.dtype(x)
    read = f"{e.array(x)}[{', '.join(xv)}]"
    inner = [(xshape[a], xv[a]) for a in inner_axes]

    def loop(body):
        lines = [IND * (depth + k) + f"for {v} in range({d}):" for k, (d, v) in enumerate(inner)]
        return lines + [IND * (depth + len(inner)) + b for b in body]
    lines = [IND * depth + f"m = {lit(float('-inf'), dtype)}"]
    lines += loop([f"v = {read}", "if v > m or v != v:", IND + "m = v"])
    lines += [IND * depth + "if not math.isfinite(m):  # all -inf, or inf/NaN: as the NumPy reference",
              IND * (depth + 1) + f"m = {lit(0, dtype)}",
              IND * depth + f"s = {lit(0, dtype)}"]
    if stash:
        lines += loop([f"ev = math.exp({read} - m)", f"{stash}[{', '.join(xv)}] = ev", "s += ev"])
    else:
        lines += loop([f"s += math.exp({read} - m)"])
    lines += [IND * depth + "lse = m + math.log(s)"]
    return lines, loop


def _fiber_kernel(e, n, axes, write, stash=None):
    """Loop over every index outside `axes` (the outer one parallel); per fiber run
    the log-sum-exp and then `write(read, loop, depth, xv)`."""
    g = e.g
    x = g.operands(n)[0]
    xshape = g.shape(x)
    xv = loop_vars(len(xshape))
    outer = [a for a in range(len(xshape)) if a not in axes]
    lines, depth = [], 1
    for k, a in enumerate(outer):
        rng = e.range_(xshape) if k == 0 else "range"
        lines.append(IND * depth + f"for {xv[a]} in {rng}({xshape[a]}):")
        depth += 1
    body, loop = _fiber_lse(e, x, xv, axes, xshape, depth, stash)
    return lines + body + write(f"{e.array(x)}[{', '.join(xv)}]", loop, depth, xv)


def _logsumexp(e, n):
    g, x, xshape, axes, keepdims = _reduce_parts(e, n)
    if g.shape(n) == ():
        lines = [IND + "if True:  # one fiber: all of x"]
        inner, _ = _fiber_lse(e, x, loop_vars(len(xshape)), axes, xshape, 2)
        return lines + inner + [IND * 2 + f"{e.name(n)} = lse"]
    return _fiber_kernel(e, n, axes, lambda read, loop, depth, xv: [
        IND * depth + f"{e.array(n)}[{_out_index(xv, axes, keepdims)}] = lse"])


def _softmax(e, n, log):
    axis = e.g.node(n)["attrs"]["axis"] % len(e.g.shape(n))
    out = e.array(n)
    if log:
        return _fiber_kernel(e, n, (axis,), lambda read, loop, depth, xv: loop([f"{out}[{', '.join(xv)}] = {read} - lse"]))
    # exp(x - max) is stashed in the output by the sum pass; one exp per element.
    return _fiber_kernel(e, n, (axis,), lambda read, loop, depth, xv: _normalize(out, loop, depth, xv, e.g.dtype(n)), stash=out)


def _normalize(out, loop, depth, xv, dtype):
    return [IND * depth + f"inv = {lit(1, dtype)} / s"] + loop([f"{out}[{', '.join(xv)}] *= inv"])


def _label_check(e, n, labels, bound):
    return [IND + f"for r in range({labels}.shape[0]):",
            IND * 2 + f"if {labels}[r] < 0 or {labels}[r] >= {bound}:",
            IND * 3 + f"raise ValueError(\"{e.where(n)}: a label is outside [0, {bound})\")"]


def _softmax_cross_entropy(e, n, partner=None):
    """Per row: lse - z[label].  With a `partner` softmax of the same logits (what the
    backward pass needs), the same pass writes the probabilities too."""
    g = e.g
    z, y = g.operands(n)
    k = g.shape(z)[1]
    lines = _label_check(e, n, e.array(y), k)
    probs = e.array(partner) if partner is not None else None

    def write(read, loop, depth, xv):
        loss = [IND * depth + f"{e.array(n)}[{xv[0]}] = lse - {e.array(z)}[{xv[0]}, {e.array(y)}[{xv[0]}]]"]
        return loss + (_normalize(probs, loop, depth, xv, g.dtype(n)) if probs else [])
    return lines + _fiber_kernel(e, n, (1,), write, stash=probs)


def _gather(e, n):
    x, idx = (e.array(o) for o in e.g.operands(n))
    rows = e.g.shape(n)[0]
    return _label_check(e, n, idx, e.g.shape(e.g.operands(n)[0])[1]) + [
        IND + f"for r in {e.range_(e.g.shape(n))}({rows}):",
        IND * 2 + f"{e.array(n)}[r] = {x}[r, {idx}[r]]"]


def _one_hot(e, n):
    g = e.g
    labels = g.operands(n)[0]
    shape = g.shape(n)
    xv = loop_vars(len(shape))
    head, depth = nest(shape, xv, [e.range_(shape)] + ["range"] * (len(shape) - 1))
    lab = f"{e.array(labels)}[{', '.join(xv[:-1])}]" if len(shape) > 1 else e.scalar(labels)
    dtype = g.dtype(n)
    return head + [IND * depth + f"{e.array(n)}[{', '.join(xv)}] = {lit(1, dtype)} if {lab} == {xv[-1]} else {lit(0, dtype)}"]


def _transpose(e, n):
    """A permutation other than a 2-D .T view: copy, reading x with permuted indices."""
    g = e.g
    x = g.operands(n)[0]
    perm = g.node(n)["attrs"]["perm"]
    shape = g.shape(n)
    ov = loop_vars(len(shape))
    xidx = [None] * len(shape)
    for j, p in enumerate(perm):
        xidx[p] = ov[j]
    head, depth = nest(shape, ov, [e.range_(shape)] + ["range"] * (len(shape) - 1))
    return head + [IND * depth + f"{e.array(n)}[{', '.join(ov)}] = {e.array(x)}[{', '.join(xidx)}]"]


def _reshape(e, n):
    """A reshape that cannot be a view: of a scalar, or of an F-order (transposed) array."""
    g = e.g
    x = g.operands(n)[0]
    out = e.array(n)
    if g.shape(x) == ():
        return [IND + f"{out}[{', '.join('0' for _ in g.shape(n))}] = {e.scalar(x)}"]
    xv = loop_vars(len(g.shape(x)))
    head, depth = nest(g.shape(x), xv, ["range"] * len(xv))
    return [IND + f"{out}_flat = {out}.reshape({size(g.shape(n))})", IND + "k = 0", *head,
            IND * depth + f"{out}_flat[k] = {e.array(x)}[{', '.join(xv)}]", IND * depth + "k += 1"]


def _broadcast_node(e, n):
    """broadcast_to outside a loop (e.g. of a size-1 array): a loop of its own."""
    g = e.g
    shape = g.shape(n)
    vars_ = loop_vars(len(shape))
    head, depth = nest(shape, vars_, [e.range_(shape)] + ["range"] * (len(shape) - 1))
    return head + [IND * depth + f"{e.array(n)}[{', '.join(vars_)}] = {e.read(g.operands(n)[0], shape, vars_)}"]


KERNELS = {
    "matmul": _matmul,
    "sum": lambda e, n: _reduce(e, n, "sum"),
    "max": lambda e, n: _reduce(e, n, "max"),
    "logsumexp": _logsumexp,
    "softmax": lambda e, n: _softmax(e, n, log=False),
    "log_softmax": lambda e, n: _softmax(e, n, log=True),
    "softmax_cross_entropy": _softmax_cross_entropy,
    "gather": _gather,
    "one_hot": _one_hot,
    "transpose": _transpose,
    "reshape": _reshape,
    "broadcast_to": _broadcast_node,
}
