"""Loop templates for the numba CPU backend: KERNELS, its one table keyed by op.

Each entry is an OpKernel: `alone` takes the Emitter and a node and returns
source lines (indented one level, inside `run`); `in_loop`, for the few ops
the fusion planner puts into a fused loop although they read their operands
at other indices (a small matmul, one_hot), returns the member's expression.  Elementwise ops are not here: they are fused loop
statements, spelled in common/scalar.py's SCALAR (shared with the CUDA
backend); an op in neither runs its NumPy reference on the host (emit.py).  Every loop writes each output element from exactly
one iteration, so `prange` never races: reductions either loop over output
indices, or give each thread its own block of outputs.
"""
from typing import Callable, NamedTuple

from graphc.backends.common.indexing import out_index, reduce_attrs
from graphc.backends.common.literals import comment, literal
from graphc.backends.common.scalar import lit, scalar_expr
from graphc.errors import GraphcError, label_at

IND = "    "
BLOCK = 64  # outputs per thread block when a reduction runs across axis 0


class OpKernel(NamedTuple):
    """How the numba backend computes one op that is not a SCALAR statement."""
    alone: Callable  # (e, n) -> lines: the node as a step of its own
    in_loop: Callable | None = None  # (e, n, loop vars) -> expression: the node inside a fused loop


def _in_loop(e, m):
    """The in-loop spelling of loop member m, or None for a SCALAR statement."""
    entry = KERNELS.get(e.g.op(m))
    return entry.in_loop if entry is not None else None


def loop_vars(e, rank, prefix="i"):
    """Fresh loop indices i0, i1, ... of the current step."""
    return [e.fresh(f"{prefix}{k}") for k in range(rank)]


def nest(e, shape, vars_, ranges, depth=1):
    """Nested for-headers over `shape`; `ranges[k]` is "range" or "prange"."""
    lines = []
    for k, (d, v) in enumerate(zip(e.dims(shape), vars_)):
        lines.append(IND * (depth + k) + f"for {v} in {ranges[k]}({d}):")
    return lines, depth + len(shape)


# ----- fused elementwise loops ----------------------------------------------------------
def fused_loop(e, loop):
    g, shape = e.g, loop.shape
    flat = _can_flatten(e, loop)
    iter_shape = (None,) if flat else shape
    vars_ = loop_vars(e, len(iter_shape))
    outer = e.range_(shape)
    lines = []
    if flat:
        for arr in sorted(_flat_arrays(e, loop)):
            e.flat[arr] = e.fresh(arr + "_flat")
            lines.append(IND + f"{e.flat[arr]} = {arr}.reshape({e.size(shape)})")
        head, depth = [IND + f"for {vars_[0]} in {outer}({e.size(shape)}):"], 2
    else:
        head, depth = nest(e, iter_shape, vars_, [outer] + ["range"] * (len(iter_shape) - 1))
    lines += head
    for m in loop.members:
        # A member computed earlier in this loop is read from its register, never reloaded.
        args = [e.read(o, shape, vars_, flat) for o in g.operands(m)]
        in_loop = _in_loop(e, m)
        expr = in_loop(e, m, vars_) if in_loop else scalar_expr(g.op(m), args, e.ctx(m))
        reg = e.regs[m] = e.fresh(e.name(m) + "_")
        lines.append(IND * depth + f"{reg} = {expr}")
        if m in e.plan.stored:
            target = f"{e.flat[e.array(m)]}[{vars_[0]}]" if flat else f"{e.array(m)}[{', '.join(vars_)}]"
            lines.append(IND * depth + f"{target} = {reg}")
    return lines


def _small_matmul_expr(e, m, vars_):
    """(A @ B)[i, j] for a constant inner dimension K <= fusion.SMALL_K: K multiply-adds.
    A[i, k] is invariant in the inner loop and B[k, j] is row-major, so it vectorizes."""
    a, b = (e.array(o) for o in e.g.operands(m))
    i, j = vars_
    terms = [f"{a}[{i}, {k}] * {b}[{k}, {j}]" for k in range(e.g.shape(e.g.operands(m)[1])[0])]
    return "(" + " + ".join(terms) + ")" if terms else lit(0, e.g.dtype(m))  # K = 0: an empty sum


def _one_hot_expr(e, m, vars_):
    dtype = e.g.dtype(m)
    return f"({lit(1, dtype)} if {e.array(e.g.operands(m)[0])}[{', '.join(vars_[:-1])}] == {vars_[-1]} else {lit(0, dtype)})"


def _can_flatten(e, loop):
    """One flat loop when every array read or written has the loop's shape in C order."""
    if len(loop.shape) < 2 or any(_in_loop(e, m) for m in loop.members):
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
        return [IND + f"{e.one_d(leaf)}[0] = {e.scalar(value)}  # {dst} <- {comment(g.name_of(value))}"]
    vars_ = loop_vars(e, len(g.shape(leaf)))
    head, depth = nest(e, g.shape(leaf), vars_, [e.range_(g.shape(leaf))] + ["range"] * (len(vars_) - 1))
    read = e.read(value, g.shape(leaf), vars_)
    return [IND + f"# {dst} <- {comment(g.name_of(value))}", *head, IND * depth + f"{dst}[{', '.join(vars_)}] = {read}"]


# ----- kernels for single nodes -----------------------------------------------------------
def kernel(e, step):
    if step.partner is not None:
        return _softmax_cross_entropy(e, step.node, step.partner)
    op = e.g.op(step.node)
    if op not in KERNELS:
        raise GraphcError(f"{e.where(step.node)}: the numba backend has no kernel for op {op!r} "
                          f"(see docs/adding-an-op.md); use the python backend for this graph")
    return KERNELS[op].alone(e, step.node)


def _matmul(e, n):
    a, b = (e.array(o) for o in e.g.operands(n))
    if e.g.shape(e.g.operands(n)[0])[1] == 0:  # an inner dimension of 0: an empty sum
        return [IND + f"{e.array(n)}.fill({lit(0, e.g.dtype(n))})"]
    return [IND + f"np.dot({a}, {b}, {e.array(n)})  # BLAS gemm; a transposed operand is an F-order view"]


def _reduce(e, n, op):
    """sum / max over axes.  Loops run over x in memory order; each output element is
    owned by one iteration of the outer (parallel) loop, so threads never share one."""
    g, (x, axes, keepdims) = e.g, reduce_attrs(e.g, n)
    xshape = g.shape(x)
    dtype, xv = g.dtype(n), loop_vars(e, len(xshape))
    init = lit(0, dtype) if op == "sum" else lit(float("-inf"), dtype)
    read = f"{e.array(x)}[{', '.join(xv)}]" if xshape else e.scalar(x)  # a 0-d x is its own total
    if g.shape(n) == ():
        return _reduce_to_scalar(e, e.name(n), op, xshape, xv, init, read)
    if len(axes) == len(xshape):
        # Every axis reduced and kept (shape (1, ..., 1)): a total, stored in the one
        # element.  `_blocked` needs a kept axis to split among threads; there is none.
        acc, zeros = e.fresh("acc"), ", ".join("0" for _ in xshape)
        return [*_reduce_to_scalar(e, acc, op, xshape, xv, init, read), IND + f"{e.array(n)}[{zeros}] = {acc}"]
    out = e.element(n, out_index(xv, axes, keepdims))
    lines = [IND + f"{e.array(n)}.fill({init})"]
    par = e.is_parallel(xshape)
    if par and 0 not in axes:
        head, depth = nest(e, xshape, xv, ["prange"] + ["range"] * (len(xv) - 1))
        e.uses_prange = True
    elif par:
        head, depth = _blocked(e, xshape, xv, axes)
    else:
        head, depth = nest(e, xshape, xv, ["range"] * len(xv))
    lines += head
    lines += _accumulate(e, op, out, read, depth)
    return lines


def _blocked(e, xshape, xv, axes):
    """Axis 0 is reduced: threads take disjoint blocks of the last kept axis."""
    k = max(a for a in range(len(xshape)) if a not in axes)
    e.uses_prange = True
    blk, dims = e.fresh("blk"), e.dims(xshape)
    lines = [IND + f"for {blk} in prange(({dims[k]} + {BLOCK - 1}) // {BLOCK}):"]
    depth = 2
    for a, (d, v) in enumerate(zip(dims, xv)):
        rng = f"range({blk} * {BLOCK}, min({blk} * {BLOCK} + {BLOCK}, {d}))" if a == k else f"range({d})"
        lines.append(IND * (depth + a) + f"for {v} in {rng}:")
    return lines, depth + len(xshape)


def _accumulate(e, op, target, read, depth):
    if op == "sum":
        return [IND * depth + f"{target} += {read}"]
    v = e.fresh("v")
    return [IND * depth + f"{v} = {read}",
            IND * depth + f"if {v} > {target} or {v} != {v}:  # NaN wins, as in np.max",
            IND * (depth + 1) + f"{target} = {v}"]


def _reduce_to_scalar(e, acc, op, xshape, xv, init, read):
    # numba turns `acc += ...` under prange into a per-thread reduction; max stays serial.
    first = e.range_(xshape) if op == "sum" and xshape else "range"
    head, depth = nest(e, xshape, xv, [first] + ["range"] * (len(xv) - 1))
    return [IND + f"{acc} = {init}", *head, *_accumulate(e, op, acc, read, depth)]


def _fiber_lse(e, x, xv, inner_axes, xshape, depth, stash=None):
    """max, then sum of exp(x - max), along the inner axes: the log-sum-exp trick.
    With `stash` (an array variable), exp(x - max) is kept there for a softmax.
    Returns (lines, loop, names): names["s"] is the sum, names["lse"] the result."""
    dtype = e.g.dtype(x)
    read = f"{e.array(x)}[{', '.join(xv)}]" if xshape else e.scalar(x)
    inner = [(e.dim(xshape[a]), xv[a]) for a in inner_axes]
    m, s, v, ev, lse = (e.fresh(h) for h in ("m", "s", "v", "ev", "lse"))

    def loop(body):
        lines = [IND * (depth + k) + f"for {v_} in range({d}):" for k, (d, v_) in enumerate(inner)]
        return lines + [IND * (depth + len(inner)) + b for b in body]
    lines = [IND * depth + f"{m} = {lit(float('-inf'), dtype)}"]
    lines += loop([f"{v} = {read}", f"if {v} > {m} or {v} != {v}:", IND + f"{m} = {v}"])
    lines += [IND * depth + f"if not math.isfinite({m}):  # all -inf, or inf/NaN: as the NumPy reference",
              IND * (depth + 1) + f"{m} = {lit(0, dtype)}",
              IND * depth + f"{s} = {lit(0, dtype)}"]
    if stash:
        lines += loop([f"{ev} = math.exp({read} - {m})", f"{stash}[{', '.join(xv)}] = {ev}", f"{s} += {ev}"])
    else:
        lines += loop([f"{s} += math.exp({read} - {m})"])
    lines += [IND * depth + f"{lse} = {m} + math.log({s})"]
    return lines, loop, {"s": s, "lse": lse}


def _fiber_kernel(e, n, axes, write, stash=None):
    """Loop over every index outside `axes` (the outer one parallel); per fiber run
    the log-sum-exp and then `write(read, loop, depth, xv, names)`."""
    g = e.g
    x = g.operands(n)[0]
    xshape = g.shape(x)
    xv = loop_vars(e, len(xshape))
    outer = [a for a in range(len(xshape)) if a not in axes]
    lines, depth = [], 1
    for k, a in enumerate(outer):
        rng = e.range_(xshape) if k == 0 else "range"
        lines.append(IND * depth + f"for {xv[a]} in {rng}({e.dim(xshape[a])}):")
        depth += 1
    body, loop, names = _fiber_lse(e, x, xv, axes, xshape, depth, stash)
    return lines + body + write(f"{e.array(x)}[{', '.join(xv)}]", loop, depth, xv, names)


def _logsumexp(e, n):
    g, (x, axes, keepdims) = e.g, reduce_attrs(e.g, n)
    xshape = g.shape(x)
    if g.shape(n) == ():
        lines = [IND + "if True:  # one fiber: all of x"]
        inner, _, names = _fiber_lse(e, x, loop_vars(e, len(xshape)), axes, xshape, 2)
        return lines + inner + [IND * 2 + f"{e.name(n)} = {names['lse']}"]
    return _fiber_kernel(e, n, axes, lambda read, loop, depth, xv, names: [
        IND * depth + f"{e.element(n, out_index(xv, axes, keepdims))} = {names['lse']}"])


def _softmax(e, n, log):
    axis = e.g.node(n)["attrs"]["axis"] % len(e.g.shape(n))
    out = e.array(n)
    if log:
        return _fiber_kernel(e, n, (axis,), lambda read, loop, depth, xv, names: loop(
            [f"{out}[{', '.join(xv)}] = {read} - {names['lse']}"]))
    # exp(x - max) is stashed in the output by the sum pass; one exp per element.
    return _fiber_kernel(e, n, (axis,), lambda read, loop, depth, xv, names: _normalize(
        e, out, loop, depth, xv, e.g.dtype(n), names), stash=out)


def _normalize(e, out, loop, depth, xv, dtype, names):
    inv = e.fresh("inv")
    return [IND * depth + f"{inv} = {lit(1, dtype)} / {names['s']}"] + loop([f"{out}[{', '.join(xv)}] *= {inv}"])


def _label_check(e, n, labels, bound):
    r = e.fresh("r")
    message = literal(label_at(e.g.op(n), e.g.name_of(n), bound))
    return [IND + f"for {r} in range({labels}.shape[0]):",
            IND * 2 + f"if {labels}[{r}] < 0 or {labels}[{r}] >= {e.dim(bound)}:",
            IND * 3 + f"raise ValueError({message})"]


def _softmax_cross_entropy(e, n, partner=None):
    """Per row: lse - z[label].  With a `partner` softmax of the same logits (what the
    backward pass needs), the same pass writes the probabilities too."""
    g = e.g
    z, y = g.operands(n)
    k = g.shape(z)[1]
    lines = _label_check(e, n, e.array(y), k)
    probs = e.array(partner) if partner is not None else None

    def write(read, loop, depth, xv, names):
        loss = [IND * depth + f"{e.array(n)}[{xv[0]}] = {names['lse']} - {e.array(z)}[{xv[0]}, {e.array(y)}[{xv[0]}]]"]
        return loss + (_normalize(e, probs, loop, depth, xv, g.dtype(n), names) if probs else [])
    return lines + _fiber_kernel(e, n, (1,), write, stash=probs)


def _gather(e, n):
    x, idx = (e.array(o) for o in e.g.operands(n))
    rows = e.dim(e.g.shape(n)[0])
    lines = _label_check(e, n, idx, e.g.shape(e.g.operands(n)[0])[1])
    r = e.fresh("r")
    return lines + [IND + f"for {r} in {e.range_(e.g.shape(n))}({rows}):",
                    IND * 2 + f"{e.array(n)}[{r}] = {x}[{r}, {idx}[{r}]]"]


def _one_hot(e, n):
    g = e.g
    labels = g.operands(n)[0]
    shape = g.shape(n)
    xv = loop_vars(e, len(shape))
    head, depth = nest(e, shape, xv, [e.range_(shape)] + ["range"] * (len(shape) - 1))
    lab = f"{e.array(labels)}[{', '.join(xv[:-1])}]" if len(shape) > 1 else e.scalar(labels)
    dtype = g.dtype(n)
    return head + [IND * depth + f"{e.array(n)}[{', '.join(xv)}] = {lit(1, dtype)} if {lab} == {xv[-1]} else {lit(0, dtype)}"]


def _transpose(e, n):
    """A permutation other than a 2-D .T view: copy, reading x with permuted indices."""
    g = e.g
    x = g.operands(n)[0]
    perm = g.node(n)["attrs"]["perm"]
    shape = g.shape(n)
    ov = loop_vars(e, len(shape))
    xidx = [None] * len(shape)
    for j, p in enumerate(perm):
        xidx[p] = ov[j]
    head, depth = nest(e, shape, ov, [e.range_(shape)] + ["range"] * (len(shape) - 1))
    return head + [IND * depth + f"{e.array(n)}[{', '.join(ov)}] = {e.array(x)}[{', '.join(xidx)}]"]


def _reshape(e, n):
    """A reshape that cannot be a view: of a scalar, or of an F-order (transposed) array."""
    g = e.g
    x = g.operands(n)[0]
    out = e.array(n)
    if g.shape(x) == ():
        return [IND + f"{out}[{', '.join('0' for _ in g.shape(n))}] = {e.scalar(x)}"]
    xv = loop_vars(e, len(g.shape(x)))
    head, depth = nest(e, g.shape(x), xv, ["range"] * len(xv))
    flat, k = e.fresh(out + "_flat"), e.fresh("k")
    return [IND + f"{flat} = {out}.reshape({e.size(g.shape(n))})", IND + f"{k} = 0", *head,
            IND * depth + f"{flat}[{k}] = {e.array(x)}[{', '.join(xv)}]", IND * depth + f"{k} += 1"]


def _broadcast_node(e, n):
    """broadcast_to outside a loop (e.g. of a size-1 array): a loop of its own."""
    g = e.g
    shape = g.shape(n)
    vars_ = loop_vars(e, len(shape))
    head, depth = nest(e, shape, vars_, [e.range_(shape)] + ["range"] * (len(shape) - 1))
    return head + [IND * depth + f"{e.array(n)}[{', '.join(vars_)}] = {e.read(g.operands(n)[0], shape, vars_)}"]


KERNELS = {
    "matmul": OpKernel(_matmul, in_loop=_small_matmul_expr),
    "sum": OpKernel(lambda e, n: _reduce(e, n, "sum")),
    "max": OpKernel(lambda e, n: _reduce(e, n, "max")),
    "logsumexp": OpKernel(_logsumexp),
    "softmax": OpKernel(lambda e, n: _softmax(e, n, log=False)),
    "log_softmax": OpKernel(lambda e, n: _softmax(e, n, log=True)),
    "softmax_cross_entropy": OpKernel(_softmax_cross_entropy),
    "gather": OpKernel(_gather),
    "one_hot": OpKernel(_one_hot, in_loop=_one_hot_expr),
    "transpose": OpKernel(_transpose),
    "reshape": OpKernel(_reshape),
    "broadcast_to": OpKernel(_broadcast_node),  # in a loop it is a SCALAR statement: the index broadcasts
}
IN_LOOP = frozenset(op for op, entry in KERNELS.items() if entry.in_loop)  # what fusion.plan may fuse besides SCALAR
