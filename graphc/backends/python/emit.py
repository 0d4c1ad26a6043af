"""Emit readable NumPy source from a Graph: one line per node, named after the
node, with the IR node as a comment, in the graph's dependency order.

This backend is the oracle the compiled backends are tested against, so each
line is the plainest NumPy spelling of the op.  Identifiers come from
`names.Scope` (user names are kept wherever they are free), values from
`literals.literal`, and array constants are module globals handed over by the
loader, never printed.
"""
import functools

import numpy as np

from graphc._version import __version__
from graphc.backends.common.indexing import symbolic_dims
from graphc.backends.common.operators import FUNCTIONS, function_table, operator_table
from graphc.backends.common.literals import comment, dtype_name, literal, shape_text
from graphc.backends.common.names import Scope
from graphc.backends.common.reference import IMPORT as REF_IMPORT, ref_call
from graphc.ir.ops.registry import OPS
from graphc.transform.rewrite import live_nodes


class Spell:
    """What a TABLE entry sees: the node's attrs, literals, and dims as identifiers."""

    def __init__(self, attrs, dim):
        self.attrs, self._dim = attrs, dim

    def shape(self, shape):
        return shape_text(shape, self._dim)

    def lit(self, key):
        """Attr `key` as a literal (the only way an attr should reach the code)."""
        return literal(self.attrs[key])

    def __getitem__(self, key):  # entries written as `lambda a, at: ... at["axes"]` keep working
        return self.attrs[key]


def _kw(name):
    return lambda a, c: f"{name}({a[0]}, axis={c.lit('axes')}, keepdims={c.lit('keepdims')})"


# op -> (operand expressions, Spell) -> expression: the python backend's one table.
# Ops missing here call the op table's NumPy reference through `ref`, which is
# always correct if less pretty; a user op's spelling is derived (`spelling`).
TABLE = {
    **operator_table(parens=False),  # add, sub, mul, div, pow, the comparisons, neg
    **function_table("np", (*FUNCTIONS, "abs", "sign")),  # exp, log, sqrt, tanh, abs, sign
    "relu": lambda a, c: f"np.maximum({a[0]}, 0)",
    "softplus": lambda a, c: f"np.logaddexp(0, {a[0]})",
    "maximum": lambda a, c: f"np.maximum({a[0]}, {a[1]})",
    "minimum": lambda a, c: f"np.minimum({a[0]}, {a[1]})",
    "where": lambda a, c: f"np.where({a[0]}, {a[1]}, {a[2]})",
    "cast": lambda a, c: f"np.asarray({a[0]}).astype(np.{dtype_name(c.attrs['dtype'])})",
    "sum": _kw("np.sum"),
    "max": _kw("np.max"),
    "matmul": lambda a, c: f"{a[0]} @ {a[1]}",
    "transpose": lambda a, c: f"np.transpose({a[0]}, {c.lit('perm')})",
    "reshape": lambda a, c: f"np.reshape({a[0]}, {c.shape(c.attrs['shape'])})",
    "broadcast_to": lambda a, c: f"np.broadcast_to({a[0]}, {c.shape(c.attrs['shape'])})",
}


@functools.lru_cache(maxsize=None)
def _user_template(op, expr):
    """A user op's inline NumPy spelling, derived from its SymPy form (opdef.expr), or
    None when it has no pure-NumPy one: then the emitter calls `ref.<op>`, the
    lambdified reference (erf prints as math.erf, which is not vectorized, and an
    expression that ignores an operand would not broadcast to the op's shape)."""
    from graphc.frontend.user_ops import _FOREIGN_MODULE, _printer
    syms = expr.variables
    placeholders = {s: f"__arg{k}__" for k, s in enumerate(syms)}
    try:
        template = _printer(placeholders).doprint(expr.expr)
    except Exception:  # the printer cannot spell it (strict mode): keep the ref call
        return None
    if expr.expr.free_symbols != set(syms) or _FOREIGN_MODULE.search(template) or "\n" in template or "#" in template:
        return None
    return template.replace("numpy.", "np.")


def spelling(op):
    """The inline spelling of `op` (TABLE, or derived for a user op), or None."""
    if op in TABLE:
        return TABLE[op]
    opdef = OPS.get(op)
    template = _user_template(op, opdef.expr) if opdef is not None and opdef.expr is not None else None
    if template is None:
        return None

    def spell(args, c):
        text = template
        for k, a in enumerate(args):
            text = text.replace(f"__arg{k}__", f"({a})")
        return text
    return spell


def inlined(graph, n):
    """Unnamed scalar constants are written into the expressions that use them."""
    data = graph.node(n)
    return data["op"] == "const" and np.ndim(data["attrs"]["value"]) == 0 and data["name"].startswith("const_")


class Emitter:
    """One module: a Scope for the module, a child for `run`, and the constants."""

    def __init__(self, graph, outputs):
        self.g, self.outputs = graph, outputs
        self.module_scope = Scope()
        self.scope = self.module_scope.child()
        self.constants = {}
        self.leaves = sorted(graph.nodes_with_op("input", "param"))
        for n in self.leaves:
            self.name(n)
        self.dims = symbolic_dims(graph, self.leaves)
        for d, _, _ in self.dims:
            self.dim(d)
        for n in graph.toposort():
            self.name(n)

    def name(self, n):
        return self.scope.bind(n, self.g.name_of(n))

    def dim(self, d):
        return self.scope.bind(("dim", d), d)

    def const(self, n):
        value = np.asarray(self.g.node(n)["attrs"]["value"])
        if value.ndim == 0:
            return literal(value.item(), self.g.dtype(n))
        key = self.module_scope.bind(("const", n), "K_" + self.name(n))
        self.constants[key] = value
        return key

    def operand(self, o):
        return self.const(o) if inlined(self.g, o) else self.name(o)

    def expr(self, n):
        g = self.g
        data = g.node(n)
        op, attrs = data["op"], data["attrs"]
        if op == "const":
            value = self.const(n)
            return f"{value}.copy()" if np.ndim(attrs["value"]) else value
        args = [self.operand(o) for o in g.operands(n)]
        spell = spelling(op)
        if spell is not None:
            return spell(args, Spell(attrs, self.dim))
        return ref_call(op, args, attrs, self.dim)

    def body(self):
        g = self.g
        lines = []
        for d, n, axis in self.dims:  # each symbolic dim from the first input that carries it
            lines.append(f"    {self.dim(d)} = {self.name(n)}.shape[{axis}]")
        live = live_nodes(g, [*self.outputs.values(), *g.updates.values()])
        phase = None
        for n in g.toposort():
            if n not in live or n in self.leaves or inlined(g, n):
                continue
            if g.node(n)["phase"] != phase:
                phase = g.node(n)["phase"]
                lines.append(f"    # ---- {comment(phase)} ----")
            lines.append(f"    {self.name(n)} = {self.expr(n)}  # {comment(g.node_text(n))}")
        return lines + self._updates()

    def _updates(self):
        """A step graph writes each param's new value into the param's own array, in
        place, after everything that reads the old value has run."""
        g = self.g
        if not g.updates:
            return []
        lines = ["    # ---- state updates: new values into the params' own arrays ----"]
        nexts = {leaf: self.scope.fresh(self.name(leaf) + "_next") for leaf in g.updates}
        for leaf, value in g.updates.items():
            # A value that is itself a param (a swap) may be overwritten first: copy it.
            copy = ".copy()" if g.op(value) == "param" else ""
            lines.append(f"    {nexts[leaf]} = {self.operand(value)}{copy}")
        lines += [f"    {self.name(leaf)}[...] = {nexts[leaf]}" for leaf in g.updates]
        return lines

    def module(self):
        g = self.g
        body = self.body()
        ret = ", ".join(f"{literal(k)}: {self.operand(n)}" for k, n in self.outputs.items())
        header = [
            f'"""NumPy code for one graph, emitted by graphc {__version__}.',
            "",
            "One line per graph node; each line's comment is that node in graphc's text form.",
            "Regenerate rather than edit.",
            '"""',
            "import numpy as np",
            "",
            REF_IMPORT,
            "",
            f"GRAPH = {literal(g.name)}",
            f"INPUTS = {literal(tuple(g.name_of(n) for n in self.leaves))}",
            f"OUTPUTS = {literal(tuple(self.outputs))}",
        ]
        if self.constants:
            header.append("# CONSTANTS (a dict) is handed over by the loader: runtime.load_source")
            header += [f"{k} = CONSTANTS[{literal(k)}]" for k in self.constants]
        header += ["", "", f"def run({', '.join(self.name(n) for n in self.leaves)}):"]
        return "\n".join(header + body + [f"    return {{{ret}}}", ""])


def emit_module(graph, outputs=None):
    """(source, constants) for `graph`: constants are the array globals the loader hands over."""
    outputs = graph.select_outputs(outputs)
    e = Emitter(graph, outputs)
    return e.module(), e.constants


def emit(graph, outputs=None):
    """Return the module source for `graph`, computing `outputs` (all by default)."""
    return emit_module(graph, outputs)[0]
