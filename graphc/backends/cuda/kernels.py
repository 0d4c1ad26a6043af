"""Kernel templates for the CUDA backend: KERNELS, its one table keyed by op.

Elementwise ops are not here: they are fused loop statements, spelled in
common/scalar.py's SCALAR (shared with the numba CPU backend); an op in
neither is refused with a GraphcError naming it (emit.py).

Each template takes the Emitter and a step and returns `(body lines, launch)`:
the body of one `@cuda.jit` kernel (indented one level) and how `run` launches
it -- ("flat", n): a 1-D grid-stride loop over n items; ("tree", n): one block
per output with a shared-memory tree across the block; ("tile", m, n): 2-D
tiles of a matmul; ("one",): a single thread.  The Emitter records which arrays,
dims and scalars a body reads (`e.at`, `e.val`, `e.dim`) and makes them the
kernel's parameters.

No kernel races: every output element is written by exactly one thread, and a
tree reduction combines partial results in shared memory between barriers.
"""
import math

from graphc.backends.common.indexing import broadcast_index, out_index, reduce_attrs
from graphc.backends.common.literals import comment, dtype_name
from graphc.backends.common.scalar import lit, scalar_expr, scalar_step

IND = "    "

# Template temporaries are written as markers, \0hint\0, which no user string can
# contain (node names are identifiers, literals and comments are escaped);
# Emitter.finish turns each into a name the kernel's Scope hands out.
ROW, COL, KA, KB, I0, LAB = "\0row\0", "\0col\0", "\0ka\0", "\0kb\0", "\0i0\0", "\0lab\0"


def indent(lines, depth=1):
    return [IND * depth + line for line in lines]


def unravel(flat, dims, names):
    """Lines that split the flat (C-order) index `flat` into `names` over `dims`."""
    if not names:
        return []
    if len(names) == 1:
        return [f"{names[0]} = {flat}"]
    lines = [f"\0q\0 = {flat}"]
    for k in range(len(names) - 1, 0, -1):
        lines += [f"{names[k]} = \0q\0 % {dims[k]}", f"\0q\0 //= {dims[k]}"]
    return lines + [f"{names[0]} = \0q\0"]


def reshape_index(e, n, src, idx):
    """The index into src of element idx of its reshape n (C order)."""
    out, shape = e.g.shape(n), e.g.shape(src)
    keep_o, keep_s = [k for k, d in enumerate(out) if d != 1], [k for k, d in enumerate(shape) if d != 1]
    if [out[k] for k in keep_o] == [shape[k] for k in keep_s]:  # only size-1 axes come or go
        res = ["0"] * len(shape)
        for ko, ks in zip(keep_o, keep_s):
            res[ks] = idx[ko]
        return res
    od, sd = e.dims(out), e.dims(shape)
    flat = idx[0]
    for k in range(1, len(idx)):
        flat = f"({flat}) * {od[k]} + {idx[k]}"
    res = []
    for k in range(len(sd)):
        stride = " * ".join(sd[k + 1:])
        part = f"({flat}) // ({stride})" if stride else f"({flat})"
        res.append(f"({part}) % {sd[k]}" if k else part)
    return res


def launch_text(launch):
    """The [grid, block] of a kernel launch in `run`."""
    kind = launch[0]
    if kind == "flat":
        return f"[_blocks({launch[1]}), THREADS]"
    if kind == "tree":
        return f"[_tree_blocks({launch[1]}), THREADS]"
    if kind == "tile":
        return f"[_tiles({launch[1]}, {launch[2]}), (TILE, TILE)]"
    return "[1, 1]"


def grid_stride(e, shape, body):
    """One thread per element of `shape` (grid-stride): body(idx) -> lines."""
    idx = [f"\0i{k}\0" for k in range(len(shape))]
    size = e.size(shape)
    lines = [f"\0n\0 = {size}", "\0t\0 = cuda.grid(1)", "while \0t\0 < \0n\0:"]
    lines += indent(unravel("\0t\0", e.dims(shape), idx)) + indent(body(idx)) + [IND + "\0t\0 += cuda.gridsize(1)"]
    return lines, ("flat", size)


# ----- fused elementwise loops, scalars and copies ---------------------------------------------
def fused_loop(e, loop):
    g, members = e.g, set(loop.members)

    def read(o, idx):
        if o in members:
            return e.reg(o)
        if g.shape(o) == ():
            return e.val(o)
        return e.at(o, broadcast_index(g.shape(o), loop.shape, idx))

    def body(idx):
        lines = []
        for m in loop.members:
            args = [read(o, idx) for o in g.operands(m)]
            lines.append(f"{e.reg(m)} = {scalar_expr(g.op(m), args, e.ctx(m))}")
            if m in e.plan.stored:
                lines.append(f"{e.at(m, idx)} = {e.reg(m)}")
        return lines
    return grid_stride(e, loop.shape, body)


def scalars(e, nodes):
    """A run of 0-d steps in one single-thread kernel; each value lands in its 1-element array."""
    lines = []
    for n in nodes:
        lines += [f"{e.reg(n)} = {scalar_step(e, n)}  # {comment(e.g.node_text(n))}", f"{e.ref(n)} = {e.reg(n)}"]
        e.local[n] = e.reg(n)
    return lines, ("one",)


def copy_into_leaf(e, leaf, value):
    """An update that could not be written in place: copy its value into the param."""
    g = e.g
    if g.shape(leaf) == ():
        return [f"{e.ref(leaf)} = {e.val(value)}"], ("one",)
    shape = g.shape(leaf)

    def body(idx):
        src = e.val(value) if g.shape(value) == () else e.at(value, broadcast_index(g.shape(value), shape, idx))
        return [f"{e.at(leaf, idx)} = {src}"]
    return grid_stride(e, shape, body)


# ----- matmul: shared-memory tiles ---------------------------------------------------------------
def matmul(e, n):
    """C = A @ B in TILE x TILE tiles: each block stages a tile of A and of B in shared
    memory, then each thread accumulates its element of C from the staged tiles.
    Blocks walk the tiles of C grid-stride (rows along x, columns along y);
    threadIdx.x walks columns, so B and C are read and written coalesced.  A
    transposed operand is read through its index, not copied."""
    g = e.g
    a, b = g.operands(n)
    m, k = e.dims(g.shape(a))
    cols = e.dims(g.shape(b))[1]
    dt = g.dtype(n)
    zero = lit(0, dt)
    tile = ["\0col\0 = \0cb\0 * TILE + \0tx\0",
            f"\0acc\0 = {zero}",
            f"for \0kt\0 in range(({k} + TILE - 1) // TILE):",
            IND + "\0ka\0 = \0kt\0 * TILE + \0tx\0",
            IND + f"\0sa\0[\0ty\0, \0tx\0] = {e.at(a, [ROW, KA])} if \0row\0 < {m} and \0ka\0 < {k} else {zero}",
            IND + "\0kb\0 = \0kt\0 * TILE + \0ty\0",
            IND + f"\0sb\0[\0ty\0, \0tx\0] = {e.at(b, [KB, COL])} if \0kb\0 < {k} and \0col\0 < {cols} else {zero}",
            IND + "cuda.syncthreads()",
            IND + "for \0k\0 in range(TILE):",
            IND * 2 + "\0acc\0 += \0sa\0[\0ty\0, \0k\0] * \0sb\0[\0k\0, \0tx\0]",
            IND + "cuda.syncthreads()",
            f"if \0row\0 < {m} and \0col\0 < {cols}:",
            IND + f"{e.at(n, [ROW, COL])} = \0acc\0",
            "\0cb\0 += cuda.gridDim.y"]
    lines = [f"\0sa\0 = cuda.shared.array((TILE, TILE), numba.{dtype_name(dt)})",
             f"\0sb\0 = cuda.shared.array((TILE, TILE), numba.{dtype_name(dt)})",
             "\0tx\0 = cuda.threadIdx.x", "\0ty\0 = cuda.threadIdx.y",
             "\0rb\0 = cuda.blockIdx.x",
             f"while \0rb\0 * TILE < {m}:",
             IND + "\0row\0 = \0rb\0 * TILE + \0ty\0",
             IND + "\0cb\0 = cuda.blockIdx.y",
             IND + f"while \0cb\0 * TILE < {cols}:", *indent(tile, 2),
             IND + "\0rb\0 += cuda.gridDim.x"]
    return lines, ("tile", m, cols)


# ----- reductions and per-fiber kernels ------------------------------------------------------------
class Fiber:
    """The iteration of a reduction of x over `axes`: outputs are the kept indices,
    each output reduces one fiber.  Short fibers (concrete length <= tree_min) get one
    thread each; longer ones get a block, and a tree in shared memory."""

    def __init__(self, e, x, axes):
        self.e, self.x = e, x
        shape = e.g.shape(x)
        self.xv = [f"\0i{k}\0" for k in range(len(shape))]
        self.kept = [a for a in range(len(shape)) if a not in axes]
        self.red = sorted(axes)
        self.outputs = e.size([shape[a] for a in self.kept])
        red_shape = [shape[a] for a in self.red]
        self.length = e.size(red_shape)
        short = all(isinstance(d, int) for d in red_shape) and math.prod(red_shape) <= e.opts["tree_min"]
        self.tree = not short
        self.dims = e.dims(shape)
        self.dtype = e.g.dtype(x)

    def read(self):
        return self.e.at(self.x, self.xv)

    def _over_fiber(self, body):
        """Lines running body over this thread's share of the fiber."""
        if self.tree:
            pick = unravel("\0r\0", [self.dims[a] for a in self.red], [self.xv[a] for a in self.red])
            return ["\0r\0 = \0tid\0", f"while \0r\0 < {self.length}:", *indent(pick + body), IND + "\0r\0 += THREADS"]
        lines, depth = [], 0
        for a in self.red:
            lines.append(IND * depth + f"for {self.xv[a]} in range({self.dims[a]}):")
            depth += 1
        return lines + indent(body, depth)

    def reduce(self, op, value, init):
        """Lines that leave op(value over the fiber) in the `res` temporary, for every thread."""
        lines = [f"\0acc\0 = {init}", *self._over_fiber(_combine(op, "\0acc\0", value))]
        if not self.tree:
            return lines + ["\0res\0 = \0acc\0"]
        return lines + ["\0sh\0[\0tid\0] = \0acc\0", "cuda.syncthreads()", "\0h\0 = THREADS // 2", "while \0h\0 > 0:",
                        IND + "if \0tid\0 < \0h\0:", *indent(_combine(op, "\0sh\0[\0tid\0]", "\0sh\0[\0tid\0 + \0h\0]"), 2),
                        IND + "cuda.syncthreads()", IND + "\0h\0 //= 2", "\0res\0 = \0sh\0[0]",
                        "cuda.syncthreads()  # everyone has read \0sh\0[0] before it is reused"]

    def each(self, body):
        """body run once per fiber element (by the fiber's thread or threads)."""
        return self._over_fiber(body)

    def once(self, body):
        """body run once per fiber (by thread 0 of the block, in tree mode)."""
        return ["if \0tid\0 == 0:", *indent(body)] if self.tree else body

    def kernel(self, fiber_body):
        """The kernel around fiber_body (lines run with the kept indices set)."""
        e = self.e
        pick = unravel("\0f\0", [self.dims[a] for a in self.kept], [self.xv[a] for a in self.kept])
        if not self.tree:
            return ["\0f\0 = cuda.grid(1)", f"while \0f\0 < {self.outputs}:", *indent(pick + fiber_body),
                    IND + "\0f\0 += cuda.gridsize(1)"], ("flat", self.outputs)
        head = ["\0tid\0 = cuda.threadIdx.x", f"\0sh\0 = cuda.shared.array(THREADS, numba.{dtype_name(e.g.dtype(self.x))})",
                "\0f\0 = cuda.blockIdx.x"]
        return head + [f"while \0f\0 < {self.outputs}:", *indent(pick + fiber_body),
                       IND + "\0f\0 += cuda.gridDim.x"], ("tree", self.outputs)

    def lse(self):
        """Lines leaving the fiber's log-sum-exp in the `lse` temporary (max first, then sum of exp)."""
        dt = self.dtype
        return [*self.reduce("max", self.read(), lit(float("-inf"), dt)), "\0m\0 = \0res\0",
                "if not math.isfinite(\0m\0):  # all -inf, or inf/NaN: as the NumPy reference",
                IND + f"\0m\0 = {lit(0, dt)}",
                *self.reduce("sum", f"math.exp({self.read()} - \0m\0)", lit(0, dt)), "\0lse\0 = \0m\0 + math.log(\0res\0)"]


def _combine(op, acc, value):
    if op == "sum":
        return [f"{acc} += {value}"]
    return [f"\0v\0 = {value}", f"if \0v\0 > {acc} or \0v\0 != \0v\0:  # NaN wins, as in np.max", IND + f"{acc} = \0v\0"]


def _target(e, n, fiber, axes, keepdims):
    return e.ref(n) if e.g.shape(n) == () else e.at(n, out_index(fiber.xv, axes, keepdims))


def reduce(e, n, op):
    x, axes, keepdims = reduce_attrs(e.g, n)
    f = Fiber(e, x, axes)
    init = lit(0, e.g.dtype(n)) if op == "sum" else lit(float("-inf"), e.g.dtype(n))
    return f.kernel([*f.reduce(op, f.read(), init), *f.once([f"{_target(e, n, f, axes, keepdims)} = \0res\0"])])


def logsumexp(e, n):
    x, axes, keepdims = reduce_attrs(e.g, n)
    f = Fiber(e, x, axes)
    return f.kernel([*f.lse(), *f.once([f"{_target(e, n, f, axes, keepdims)} = \0lse\0"])])


def softmax(e, n, log):
    x = e.g.operands(n)[0]
    f = Fiber(e, x, (e.g.node(n)["attrs"]["axis"] % len(e.g.shape(n)),))
    value = f"{f.read()} - \0lse\0" if log else f"math.exp({f.read()} - \0lse\0)"
    return f.kernel([*f.lse(), *f.each([f"{e.at(n, f.xv)} = {value}"])])


def _label(e, n, label, bound, ok_lines, bad_target):
    """Read a label; out of [0, bound): flag the error (the host raises it) and write NaN."""
    return [f"\0lab\0 = {label}", f"if \0lab\0 < 0 or \0lab\0 >= {bound}:",
            IND + f"{e.err()}[0] = {e.label_check(n)}",
            IND + f"{bad_target} = {lit(float('nan'), e.g.dtype(n))}", "else:", *indent(ok_lines)]


def softmax_cross_entropy(e, n, partner=None):
    """Per row: lse - z[label].  With a `partner` softmax of the same logits (what the
    cross-entropy's gradient needs), the same kernel writes it too: one exp per logit."""
    z, y = e.g.operands(n)
    f = Fiber(e, z, (1,))
    k = e.dims(e.g.shape(z))[1]
    out = e.at(n, ["\0i0\0"])
    ok = [f"{out} = \0lse\0 - {e.at(z, [I0, LAB])}"]
    probs = f.each([f"{e.at(partner, f.xv)} = math.exp({f.read()} - \0lse\0)"]) if partner is not None else []
    return f.kernel([*f.lse(), *probs, *f.once(_label(e, n, e.at(y, ["\0i0\0"]), k, ok, out))])


# ----- structural ops: one thread per output element ----------------------------------------------
def gather(e, n):
    x, idx = e.g.operands(n)
    bound = e.dims(e.g.shape(x))[1]
    return grid_stride(e, e.g.shape(n), lambda i: _label(
        e, n, e.at(idx, i), bound, [f"{e.at(n, i)} = {e.at(x, [i[0], LAB])}"], e.at(n, i)))


def one_hot(e, n):
    g = e.g
    labels, dt = g.operands(n)[0], g.dtype(n)

    def body(i):
        lab = e.at(labels, i[:-1]) if g.shape(labels) != () else e.val(labels)
        return [f"{e.at(n, i)} = {lit(1, dt)} if {lab} == {i[-1]} else {lit(0, dt)}"]
    return grid_stride(e, g.shape(n), body)


def transpose(e, n):
    """A permutation other than a 2-D .T view: a copy reading x with permuted indices."""
    x, perm = e.g.operands(n)[0], e.g.node(n)["attrs"]["perm"]

    def body(i):
        xi = [None] * len(i)
        for j, p in enumerate(perm):
            xi[p] = i[j]
        return [f"{e.at(n, i)} = {e.at(x, xi)}"]
    return grid_stride(e, e.g.shape(n), body)


def reshape(e, n):
    """A reshape that is not a view: of a scalar, or of a transposed array."""
    x = e.g.operands(n)[0]
    if e.g.shape(x) == ():
        return grid_stride(e, e.g.shape(n), lambda i: [f"{e.at(n, i)} = {e.val(x)}"])
    return grid_stride(e, e.g.shape(n), lambda i: [f"{e.at(n, i)} = {e.at(x, reshape_index(e, n, x, i))}"])


def broadcast_to(e, n):
    x = e.g.operands(n)[0]
    shape = e.g.shape(n)

    def body(i):
        src = e.val(x) if e.g.shape(x) == () else e.at(x, broadcast_index(e.g.shape(x), shape, i))
        return [f"{e.at(n, i)} = {src}"]
    return grid_stride(e, shape, body)


KERNELS = {
    "matmul": matmul,
    "sum": lambda e, n: reduce(e, n, "sum"),
    "max": lambda e, n: reduce(e, n, "max"),
    "logsumexp": logsumexp,
    "softmax": lambda e, n: softmax(e, n, log=False),
    "log_softmax": lambda e, n: softmax(e, n, log=True),
    "softmax_cross_entropy": softmax_cross_entropy,
    "gather": gather,
    "one_hot": one_hot,
    "transpose": transpose,
    "reshape": reshape,
    "broadcast_to": broadcast_to,
}
