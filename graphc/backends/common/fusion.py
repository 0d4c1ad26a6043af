"""Kernel planning shared by the compiled backends (numba CPU and CUDA).

The planner walks the live nodes in topological order and decides, for each
node, where its value lives and which kernel computes it:

- Elementwise nodes of one shape fuse into a `Loop`: one pass over the shape
  whose body is a chain of scalar statements.  Only members that something
  outside the loop needs (an output, an update, another kernel) are stored;
  the rest live in registers.
- Scalars (shape ()) are plain local variables (`Scalar`).
- Everything else is one `Kernel` per node: matmul, reductions, softmax, ...
- reshape and 2-D transpose of an array in memory are `View`s: no copy.
- With `in_loop` ops (the numba CPU backend's, read from its KERNELS table:
  the ops it can spell inside a loop), a matmul whose inner dimension
  is a constant of at most SMALL_K is a loop member too: K multiply-adds per
  element, fused with the bias and activation that follow.  BLAS is slow at
  such skinny products (the spiral's 300x2 @ 2x100), and the loop saves a
  pass over memory.  Its right operand must be row-major so the inner loop
  vectorizes, so a transpose feeding it is materialized instead of viewed.
  one_hot joins loops the same way: cross-entropy's gradient p - one_hot(y)
  then never stores the one-hot matrix.

Fusion stays correct by one rule: a loop accepts new members only until some
other kernel has read one of its values ("sealed").  A loop is emitted where
its last member joined, so every kernel that reads it comes later, and every
value its members read was computed earlier.

A step graph's updates write into the param's own array when that is safe: the
new value is computed in a loop that reads the old value only at the same
index, and nothing after that loop reads the old value.  Otherwise the value
is computed into a buffer and copied at the end (`Copy`).
"""
from dataclasses import dataclass, field

import numpy as np

from graphc.backends.common.scalar import is_fusible, is_scalar_step
from graphc.transform.rewrite import live_nodes

SMALL_K = 4  # inner dimensions up to this are fused loops instead of BLAS calls (measured on the spiral step)


@dataclass
class Loop:
    shape: tuple
    members: list = field(default_factory=list)
    sealed: bool = False


@dataclass
class Scalar:
    node: int


@dataclass
class Kernel:
    node: int
    partner: int | None = None  # a second node the same kernel computes (softmax beside cross-entropy)


@dataclass
class View:
    node: int
    how: str  # "reshape" | "T"


@dataclass
class Copy:
    leaf: int
    value: int


@dataclass
class Plan:
    graph: object
    outputs: dict  # output name -> node
    steps: list  # Loop | Scalar | Kernel | View | Copy, in execution order
    storage: dict  # node -> "arg" | "literal" | "global" | "scalar" | "buffer" | "view" | ("leaf", p)
    stored: set  # loop members written to memory
    layout: dict  # array node -> "C" | "F"
    view_root: dict  # view node -> the node whose memory it shares

    def buffers(self):
        """Nodes that need workspace memory, in step order."""
        return [n for n in self.order if self.storage.get(n) == "buffer"]

    @property
    def order(self):
        out = []
        for step in self.steps:
            out += step.members if isinstance(step, Loop) else [getattr(step, "node", None)]
            out += [step.partner] if isinstance(step, Kernel) and step.partner is not None else []
        return [n for n in out if n is not None]


def plan(graph, outputs, in_loop=frozenset()):
    """The Plan for `outputs`; `in_loop`: the ops besides the elementwise ones that the
    backend can spell as members of a fused loop (matmul, one_hot: see above)."""
    return _Planner(graph, outputs, in_loop).run()


class _Planner:
    def __init__(self, graph, outputs, in_loop=frozenset()):
        self.g, self.outputs, self.in_loop = graph, outputs, frozenset(in_loop)
        self.steps, self.storage, self.stored = [], {}, set()
        self.layout, self.view_root, self.loop_of = {}, {}, {}

    def run(self):
        g = self.g
        live = self.live = live_nodes(g, [*self.outputs.values(), *g.updates.values()])
        for n in g.toposort():
            if n in live:
                self._place(n)
        self._mark_outputs()
        self._place_updates()
        return Plan(g, self.outputs, self.steps, self.storage, self.stored, self.layout, self.view_root)

    # ----- one node ----------------------------------------------------------------
    def _place(self, n):
        g, op, shape = self.g, self.g.op(n), self.g.shape(n)
        if op in ("input", "param"):
            self._set(n, "arg", "C")
        elif op == "const":
            self._set(n, "literal" if shape == () else "global", "C")
        elif n in self.storage:
            return  # computed already, as the partner of an earlier kernel
        elif shape == ():
            self._read_all(n)
            self._set(n, "scalar")
            self.steps.append(Scalar(n) if is_scalar_step(op) else Kernel(n))
        elif is_fusible(op):
            self._join_loop(n)
        elif self._is_small_matmul(n) or ("one_hot" in self.in_loop and op == "one_hot" and len(shape) > 1):
            self._read_all(n)  # its operands are read at other indices: they live in memory
            self._join_loop(n)
        elif self._is_view(n):
            self._read_all(n)
            how = "T" if op == "transpose" else "reshape"
            src = g.operands(n)[0]
            self.view_root[n] = self.view_root.get(src, src)
            self._set(n, "view", {"C": "F", "F": "C"}[self.layout[src]] if how == "T" else "C")
            self.steps.append(View(n, how))
        else:
            self._read_all(n)
            self._set(n, "buffer", "C")
            partner = self._softmax_partner(n) if op == "softmax_cross_entropy" else None
            if partner is not None:
                self._set(partner, "buffer", "C")
            self.steps.append(Kernel(n, partner))

    def _softmax_partner(self, n):
        """Autodiff of cross-entropy asks for softmax(z) of the same logits: one kernel
        computes both, so each exp is taken once."""
        z = self.g.operands(n)[0]
        for user, _ in self.g.users(z):
            data = self.g.node(user)
            if data["op"] == "softmax" and data["attrs"]["axis"] % 2 == 1 and user in self.live and user not in self.storage:
                return user
        return None

    def _set(self, n, storage, layout=None):
        self.storage[n] = storage
        if layout:
            self.layout[n] = layout

    def _is_view(self, n):
        g, op = self.g, self.g.op(n)
        src = g.operands(n)[0] if op in ("reshape", "transpose") else None
        if src is None or self.storage.get(src) == "scalar" or g.shape(src) == ():
            return False
        if op == "transpose":
            feeds_small_matmul = any(self._is_small_matmul(u, ignore_layout=True) and g.operands(u)[1] == n
                                     for u, _ in g.users(n) if u in self.live)
            return len(g.shape(n)) == 2 and tuple(g.node(n)["attrs"]["perm"]) == (1, 0) and not feeds_small_matmul
        return self.layout.get(src) == "C" or src in self.loop_of  # a loop member is stored in C order

    def _is_small_matmul(self, n, ignore_layout=False):
        g = self.g
        if "matmul" not in self.in_loop or g.op(n) != "matmul":
            return False
        a, b = g.operands(n)
        if len(g.shape(a)) != 2 or len(g.shape(b)) != 2 or g.shape(n) == ():
            return False
        k = g.shape(b)[0]
        row_major = ignore_layout or self.layout.get(b) == "C" or b in self.loop_of
        return isinstance(k, int) and k <= SMALL_K and row_major

    def _read_all(self, n):
        """A kernel other than a loop reads n's operands: they must be in memory."""
        for o in self.g.operands(n):
            self._read_from_outside(o)

    def _read_from_outside(self, o):
        loop = self.loop_of.get(o)
        if loop is not None:
            self.stored.add(o)
            loop.sealed = True

    # ----- fusion ------------------------------------------------------------------
    def _join_loop(self, n):
        shape = self.g.shape(n)
        joinable = []
        for o in self.g.operands(n):
            loop = self.loop_of.get(o)
            if loop is not None and loop.shape == shape and not loop.sealed and loop not in joinable:
                joinable.append(loop)
        for o in self.g.operands(n):
            if self.loop_of.get(o) is not None and self.loop_of[o] not in joinable:
                self._read_from_outside(o)
        loop = self._merge(joinable) if joinable else Loop(shape)
        if loop in self.steps:
            self.steps.remove(loop)  # a loop runs where its last member joined
        self.steps.append(loop)
        loop.members.append(n)
        self.loop_of[n] = loop
        self._set(n, "buffer", "C")  # refined later: unstored members live in registers

    def _merge(self, loops):
        first = loops[0]
        for other in loops[1:]:
            first.members += other.members
            for m in other.members:
                self.loop_of[m] = first
            self.steps.remove(other)
        order = {n: i for i, n in enumerate(self.g.toposort())}
        first.members.sort(key=order.__getitem__)
        return first

    def _mark_outputs(self):
        for n in self.outputs.values():
            self._read_from_outside(n)
        for step in self.steps:
            if isinstance(step, Loop):
                for m in step.members:
                    if m not in self.stored:
                        self.storage[m] = "register"

    # ----- updates -----------------------------------------------------------------
    def _place_updates(self):
        for leaf, value in self.g.updates.items():
            loop = self.loop_of.get(value)
            if loop is not None and self._in_place_ok(leaf, value, loop):
                self.storage[value] = ("leaf", leaf)
                self.stored.add(value)
            else:
                self._read_from_outside(value)
                if self.storage.get(value) == "register":
                    self.storage[value] = "buffer"
                self.steps.append(Copy(leaf, value))

    def _in_place_ok(self, leaf, value, loop):
        """Writing value into leaf's array inside `loop` is safe when nothing reads the
        old value afterwards, and inside the loop it is read only at the same index."""
        aliases = {leaf} | {v for v, root in self.view_root.items() if root == leaf}
        if any(self._reads(step, aliases) for step in self.steps[self.steps.index(loop) + 1:]):
            return False
        # the new value is stored as soon as it is computed, so a later member of the
        # same loop that reads the leaf would see the new value instead of the old
        later = loop.members[loop.members.index(value) + 1:]
        if any(o in aliases for m in later for o in self.g.operands(m)):
            return False
        views = aliases - {leaf}
        in_loop_reads = {o for m in loop.members for o in self.g.operands(m)}
        other_index_reads = {o for m in loop.members if self.g.op(m) in self.in_loop for o in self.g.operands(m)}
        return not (in_loop_reads & views) and not (other_index_reads & aliases) and value not in self.outputs.values()

    def _reads(self, step, nodes):
        members = step.members if isinstance(step, Loop) else [getattr(step, "node", getattr(step, "value", None))]
        return any(o in nodes for m in members for o in self.g.operands(m)) or \
            (isinstance(step, Copy) and step.value in nodes)


def concrete_size(shape, dims):
    return int(np.prod([dims.get(d, 1) if isinstance(d, str) else d for d in shape], dtype=np.int64))
