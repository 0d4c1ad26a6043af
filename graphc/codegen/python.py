"""Emit readable NumPy source from a Graph: one line per node, named after the
node, with the IR node as a comment; forward first, then backward.

This backend is the oracle the compiled backends are tested against, so each
line is the plainest NumPy spelling of the op.
"""
import keyword

import numpy as np

from graphc import __version__
from graphc.rewrite import live_nodes
from graphc.runtime import Compiled, load_source

RESERVED = {"np", "ref", "run"}


def _fmt_shape(shape):
    return "(" + "".join(f"{d}, " for d in shape).rstrip(" ") + ")" if len(shape) != 1 else f"({shape[0]},)"


def _kw(name):
    return lambda a, at: f"{name}({a[0]}, axis={at['axes']}, keepdims={at['keepdims']})"


# op -> (operand expressions, attrs) -> expression.  Ops missing here call the
# op table's NumPy reference through `ref`, which is always correct if less pretty.
TABLE = {
    "add": lambda a, at: f"{a[0]} + {a[1]}",
    "sub": lambda a, at: f"{a[0]} - {a[1]}",
    "mul": lambda a, at: f"{a[0]} * {a[1]}",
    "div": lambda a, at: f"{a[0]} / {a[1]}",
    "pow": lambda a, at: f"{a[0]} ** {a[1]}",
    "neg": lambda a, at: f"-{a[0]}",
    "exp": lambda a, at: f"np.exp({a[0]})",
    "log": lambda a, at: f"np.log({a[0]})",
    "sqrt": lambda a, at: f"np.sqrt({a[0]})",
    "abs": lambda a, at: f"np.abs({a[0]})",
    "sign": lambda a, at: f"np.sign({a[0]})",
    "tanh": lambda a, at: f"np.tanh({a[0]})",
    "relu": lambda a, at: f"np.maximum({a[0]}, 0)",
    "softplus": lambda a, at: f"np.logaddexp(0, {a[0]})",
    "maximum": lambda a, at: f"np.maximum({a[0]}, {a[1]})",
    "minimum": lambda a, at: f"np.minimum({a[0]}, {a[1]})",
    "gt": lambda a, at: f"{a[0]} > {a[1]}",
    "ge": lambda a, at: f"{a[0]} >= {a[1]}",
    "lt": lambda a, at: f"{a[0]} < {a[1]}",
    "le": lambda a, at: f"{a[0]} <= {a[1]}",
    "eq": lambda a, at: f"{a[0]} == {a[1]}",
    "ne": lambda a, at: f"{a[0]} != {a[1]}",
    "where": lambda a, at: f"np.where({a[0]}, {a[1]}, {a[2]})",
    "cast": lambda a, at: f"np.asarray({a[0]}).astype(np.{at['dtype']})",
    "sum": _kw("np.sum"),
    "max": _kw("np.max"),
    "matmul": lambda a, at: f"{a[0]} @ {a[1]}",
    "transpose": lambda a, at: f"np.transpose({a[0]}, {at['perm']})",
    "reshape": lambda a, at: f"np.reshape({a[0]}, {_fmt_shape(at['shape'])})",
    "broadcast_to": lambda a, at: f"np.broadcast_to({a[0]}, {_fmt_shape(at['shape'])})",
}


def register_expr(op, fn):
    """Give an op defined elsewhere (e.g. a user op) an inline NumPy spelling.

    `fn(operand expressions, attrs) -> expression`, like the entries above.
    """
    TABLE[op] = fn


class Namer:
    """Map node names to distinct Python identifiers (dots become underscores)."""

    def __init__(self, graph):
        self.graph, self.names, self.taken = graph, {}, set(RESERVED)

    def __call__(self, n):
        if n not in self.names:
            base = self.graph.name_of(n).replace(".", "_")
            if keyword.iskeyword(base) or base in RESERVED:
                base += "_"
            name, k = base, 1
            while name in self.taken:
                k += 1
                name = f"{base}_{k}"
            self.taken.add(name)
            self.names[n] = name
        return self.names[n]


def const_expr(value):
    value = np.asarray(value)
    if value.ndim == 0:
        return f"np.{value.dtype.name}({value.item()!r})"
    return f"np.array({value.tolist()!r}, dtype=np.{value.dtype.name})"


def inlined(graph, n):
    """Unnamed scalar constants are written into the expressions that use them."""
    data = graph.node(n)
    return data["op"] == "const" and np.ndim(data["attrs"]["value"]) == 0 and data["name"].startswith("const_")


def operand_expr(graph, o, name_of):
    return const_expr(graph.node(o)["attrs"]["value"]) if inlined(graph, o) else name_of(o)


def node_expr(graph, n, name_of):
    data = graph.node(n)
    op, attrs = data["op"], data["attrs"]
    if op == "const":
        return const_expr(attrs["value"])
    args = [operand_expr(graph, o, name_of) for o in graph.operands(n)]
    if op in TABLE:
        return TABLE[op](args, attrs)
    kwargs = "".join(f", {k}={v!r}" for k, v in sorted(attrs.items()))
    return f"ref.{op}({', '.join(args)}{kwargs})"


def _dim_bindings(graph, leaves, name_of):
    """Bind each symbolic dim from the first input that carries it: N = x.shape[0]."""
    lines, bound = [], set()
    for n in leaves:
        for axis, d in enumerate(graph.shape(n)):
            if isinstance(d, str) and d not in bound:
                bound.add(d)
                lines.append(f"    {d} = {name_of(n)}.shape[{axis}]")
    return lines


def _update_lines(graph, name_of):
    """A step graph writes each param's new value into the param's own array, in
    place, after everything that reads the old value has run."""
    if not graph.updates:
        return []
    lines = ["    # ---- state updates: new values into the params' own arrays ----"]
    for leaf, value in graph.updates.items():
        # A value that is itself a param (a swap) may be overwritten first: copy it.
        copy = ".copy()" if graph.op(value) == "param" else ""
        lines.append(f"    {name_of(leaf)}_next = {operand_expr(graph, value, name_of)}{copy}")
    lines += [f"    {name_of(leaf)}[...] = {name_of(leaf)}_next" for leaf in graph.updates]
    return lines


def emit(graph, outputs=None):
    """Return the module source for `graph`, computing `outputs` (all by default)."""
    outputs = dict(graph.outputs) if outputs is None else {k: graph.outputs[k] for k in outputs}
    name_of = Namer(graph)
    leaves = sorted(graph.nodes_with_op("input", "param"))
    for n in leaves:
        name_of(n)
    live = live_nodes(graph, [*outputs.values(), *graph.updates.values()])
    order = [n for n in graph.toposort() if n in live and n not in leaves and not inlined(graph, n)]
    body = _dim_bindings(graph, leaves, name_of)
    for phase in ("forward", "backward", "update"):
        nodes = [n for n in order if graph.node(n)["phase"] == phase]
        if nodes:
            body.append(f"    # ---- {phase} ----")
        body += [f"    {name_of(n)} = {node_expr(graph, n, name_of)}  # {graph.node_text(n)}" for n in nodes]
    body += _update_lines(graph, name_of)
    ret = ", ".join(f"{k!r}: {operand_expr(graph, n, name_of)}" for k, n in outputs.items())
    args = ", ".join(name_of(n) for n in leaves)
    header = [
        f'"""NumPy code for graph {graph.name!r}, emitted by graphc {__version__}.',
        "",
        "One line per graph node; each line's comment is that node in graphc's text form.",
        "Regenerate rather than edit.",
        '"""',
        "import numpy as np",
        "",
        "from graphc.codegen import pyref as ref",
        "",
        f"INPUTS = {tuple(graph.name_of(n) for n in leaves)!r}",
        f"OUTPUTS = {tuple(outputs)!r}",
        "",
        "",
        f"def run({args}):",
    ]
    return "\n".join(header + body + [f"    return {{{ret}}}", ""])




class PythonCompiled(Compiled):
    def _run(self, args, dims):
        return self.module.run(*args)


def build(graph, outputs=None):
    """Emit, load from the cache directory, and wrap: the python backend's compile."""
    source = emit(graph, outputs)
    return PythonCompiled(graph, source, load_source(source, "python"), "python")
