"""Scalar expressions for elementwise ops: the body of a fused loop.

The numba CPU and CUDA emitters both fuse chains of elementwise ops into one
loop whose body is a sequence of scalar statements.  SCALAR is how each op is
spelled as a scalar expression, and it is the one place both backends share:
an elementwise op is spelled here once, for the numba CPU and the CUDA
backend alike; every other op is an entry of the backend's own KERNELS table
(numba_cpu/kernels.py, cuda/kernels.py).  SCALAR_STEPS spells the few 0-d ops
that are not elementwise but that a scalar step computes (count, and reshape or
transpose of one value); the fusion planner asks `is_scalar_step`.  The
spellings use only `math`, Python operators and typed literals, which numba
compiles for the CPU and for CUDA alike.

Rules of the spelling:
- NaN propagates as in NumPy (np.maximum(nan, 0) is nan), so comparisons are
  arranged so that a NaN operand falls through to the NaN-producing branch.
- Literals carry the node's dtype (`np.float32(0.5)`), so a float32 loop stays
  in float32 instead of being promoted to float64 by a Python float.
- The stable forms match the op table's NumPy references (expit, logaddexp).
"""
import functools

from graphc.backends.common.operators import FUNCTIONS, function_table, operator_table
from graphc.backends.common.literals import dtype_name, literal
from graphc.errors import GraphcError
from graphc.ir.ops.registry import OPS


def lit(value, dtype):
    """A literal of `dtype` as source text (the one literal policy: literals.literal)."""
    return literal(value, dtype)


class Ctx:
    """What a spelling sees: the node's dtype and attrs, and typed literals."""

    def __init__(self, dtype, attrs, operand_dtypes):
        self.dtype, self.attrs, self.operand_dtypes = dtype, attrs, operand_dtypes

    @classmethod
    def of(cls, graph, n):
        """The Ctx of node n."""
        return cls(graph.dtype(n), graph.node(n)["attrs"], [graph.dtype(o) for o in graph.operands(n)])

    def lit(self, value, dtype=None):
        return lit(value, dtype or self.dtype)


def _cast(a, c):
    target, source = c.attrs["dtype"], c.operand_dtypes[0]
    if target == "bool":
        return f"({a[0]} != {lit(0, source)})"
    return f"np.{dtype_name(target)}({a[0]})"


# op -> (operand expressions, Ctx) -> expression
SCALAR = {
    **operator_table(parens=True),  # add, sub, mul, div, pow, the comparisons, neg
    **function_table("math", (*FUNCTIONS, "erf")),  # exp, log, sqrt, tanh, erf
    "abs": lambda a, c: f"abs({a[0]})",
    "sign": lambda a, c: f"({c.lit(1)} if {a[0]} > {c.lit(0)} else ({c.lit(-1)} if {a[0]} < {c.lit(0)} else {a[0]} * {c.lit(0)}))",
    # expit: each branch only ever exponentiates a non-positive number.
    "sigmoid": lambda a, c: (f"({c.lit(1)} / ({c.lit(1)} + math.exp(-{a[0]})) if {a[0]} >= {c.lit(0)} "
                             f"else math.exp({a[0]}) / ({c.lit(1)} + math.exp({a[0]})))"),
    "relu": lambda a, c: f"({c.lit(0)} if {a[0]} <= {c.lit(0)} else {a[0]})",
    "leaky_relu": lambda a, c: f"({a[0]} if {a[0]} > {c.lit(0)} else {c.lit(c.attrs.get('alpha', 0.01))} * {a[0]})",
    "elu": lambda a, c: f"({a[0]} if {a[0]} > {c.lit(0)} else {c.lit(c.attrs.get('alpha', 1.0))} * math.expm1({a[0]}))",
    # logaddexp(0, a) = max(a, 0) + log1p(exp(-|a|)): never overflows.
    "softplus": lambda a, c: f"(({a[0]} if {a[0]} > {c.lit(0)} else {c.lit(0)}) + math.log1p(math.exp(-abs({a[0]}))))",
    "maximum": lambda a, c: f"({a[0]} if ({a[0]} >= {a[1]} or {a[0]} != {a[0]}) else {a[1]})",
    "minimum": lambda a, c: f"({a[0]} if ({a[0]} <= {a[1]} or {a[0]} != {a[0]}) else {a[1]})",
    "where": lambda a, c: f"({a[1]} if {a[0]} else {a[2]})",
    "cast": _cast,
    "broadcast_to": lambda a, c: a[0],  # inside a loop, broadcasting is in the operand's index
    "bce_with_logits": lambda a, c: (f"(({a[0]} if {a[0]} > {c.lit(0)} else {c.lit(0)}) - {a[0]} * {a[1]} "
                                     f"+ math.log1p(math.exp(-abs({a[0]}))))"),
}


@functools.cache
def _math_printer_class():
    """The printer class, made on first use (only user ops need it): SymPy's
    printers import SymPy, which a step of built-in ops never needs."""
    from sympy.printing.pycode import PythonCodePrinter

    class _MathPrinter(PythonCodePrinter):
        """Writes a user op's SymPy expression with `math`, each symbol as its operand."""

        def __init__(self, names):
            super().__init__({"fully_qualified_modules": True})
            self._names = names

        def _print_Symbol(self, s):
            return self._names.get(s) or super()._print_Symbol(s)
    return _MathPrinter


def _user_op(opdef):
    """A user-defined op (graphc.define_elementwise) is spelled from its SymPy form."""
    lam = opdef.expr

    def spell(args, ctx):
        names = {s: f"({a})" for s, a in zip(lam.variables, args)}
        text = _math_printer_class()(names).doprint(lam.expr)
        return f"np.{dtype_name(ctx.dtype)}({text})"
    return spell


def scalar_expr(op, args, ctx):
    """The scalar expression for one elementwise node."""
    spell = SCALAR.get(op)
    if spell is None:
        opdef = OPS.get(op)
        if opdef is None or opdef.expr is None:
            raise GraphcError(f"op {op!r} has no scalar spelling for the compiled backends; add it to graphc.backends.common.scalar.SCALAR")
        spell = _user_op(opdef)
    return spell(args, ctx)


def is_fusible(op):
    """Elementwise ops (and broadcast_to) become statements of a fused loop."""
    if op in SCALAR:
        return True
    opdef = OPS.get(op)
    return opdef is not None and opdef.expr is not None and opdef.is_elementwise


# ----- scalar steps: a 0-d node computed as one expression ---------------------------------
# An emitter that writes scalar steps gives: g (the graph), value(n) (a 0-d node's value),
# element(n, idx) (element idx of an array node), size(shape) and ctx(n).
def _count(e, n):
    shape = e.g.shape(e.g.operands(n)[0])
    return f"np.{dtype_name(e.g.dtype(n))}({e.size([shape[a] for a in e.g.node(n)['attrs']['axes']])})"


def _one_value(e, n):
    """reshape or transpose of a 0-d or 1-element array: its one value."""
    src = e.g.operands(n)[0]
    return e.value(src) if e.g.shape(src) == () else e.element(src, ["0"] * len(e.g.shape(src)))


# op -> (emitter, node) -> expression: 0-d ops besides the elementwise ones that a scalar
# step spells (a kernel computes any other 0-d node, e.g. a reduction to a scalar).
SCALAR_STEPS = {"count": _count, "reshape": _one_value, "transpose": _one_value}


def is_scalar_step(op):
    """Whether a 0-d node of `op` is a scalar step (else it is a kernel of its own)."""
    return is_fusible(op) or op in SCALAR_STEPS


def scalar_step(e, n):
    """The expression of the scalar step for 0-d node n."""
    op = e.g.op(n)
    if op in SCALAR_STEPS:
        return SCALAR_STEPS[op](e, n)
    return scalar_expr(op, [e.value(o) for o in e.g.operands(n)], e.ctx(n))

