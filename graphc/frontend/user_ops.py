"""User-defined elementwise ops, from a SymPy expression alone.

    softsign = gc.define_elementwise("softsign", lambda x: x / (1 + sympy.Abs(x)),
                                     regions=[{0: "positive"}, {0: "negative"}])
    y = softsign(x)

Everything an op needs is derived from the expression: the NumPy reference
(`sympy.lambdify`), the SymPy form the prover uses, the inline NumPy the Python
emitter writes, and the partial derivatives -- which are themselves user ops
`<name>_d<i>`, registered the first time autodiff asks for them, so second and
higher derivatives work the same way.
"""
import functools
import inspect
import re

import numpy as np

from graphc.frontend import dsl as dsl
from graphc.errors import GraphcError
from graphc.ir.ops.common import broadcast_rule, same_float, same_shape, sympy, vectorize_sympy
from graphc.ir.ops.registry import OPS, OpDef, register

NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FOREIGN_MODULE = re.compile(r"\b(?!numpy\.)[A-Za-z_]\w*\.[A-Za-z_]")  # math.erf, scipy.special...


def define_elementwise(name, fn, doc="", regions=None):
    """Register elementwise op `name` computing `fn` and return its DSL function.

    `fn` is a Python function of k SymPy symbols returning an expression (k is
    read from its signature), or a `sympy.Lambda`.  `regions` (optional) are
    proof regions for kinked functions, as in the built-in op table, e.g.
    [{0: "positive"}, {0: "negative"}] for a kink at 0.
    """
    if not isinstance(name, str) or not NAME_OK.match(name):
        raise GraphcError(f"op name {name!r} must be an identifier (letters, digits and '_')")
    if name in OPS:
        raise GraphcError(f"cannot define op {name!r}: an op of that name already exists "
                          f"({OPS[name].doc or OPS[name].kind}); choose another name")
    syms, expr = _expression(name, fn)
    _register(name, syms, expr, doc or f"user op {name}{tuple(syms)} = {expr}", regions)
    return _dsl_function(name, len(syms))


def undefine(name):
    """Remove a user op and the derivative ops registered for it."""
    op = OPS.get(name)
    if op is None or op.expr is None:
        raise GraphcError(f"{name!r} is not a user-defined op")
    for i in range(op.arity):
        if f"{name}_d{i}" in OPS:
            undefine(f"{name}_d{i}")
    del OPS[name]


# ----- from the user's function to an expression ------------------------------------
def _expression(name, fn):
    """(real symbols, expression).  Real symbols make |x|' = sign(x), not a complex form."""
    if isinstance(fn, sympy.Lambda):
        params, body = [v.name for v in fn.variables], fn.expr
        syms = [sympy.Symbol(p, real=True) for p in params]
        expr = body.xreplace(dict(zip(fn.variables, syms)))
    else:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        syms = [sympy.Symbol(p, real=True) for p in params]
        expr = sympy.sympify(fn(*syms))
    if not syms:
        raise GraphcError(f"define_elementwise({name!r}): the function takes no arguments")
    extra = expr.free_symbols - set(syms)
    if extra:
        raise GraphcError(f"define_elementwise({name!r}): expression {expr} uses symbol(s) "
                          f"{', '.join(sorted(map(str, extra)))} that are not its arguments")
    return syms, expr


def _register(name, syms, expr, doc, regions):
    lam = sympy.Lambda(tuple(syms), expr)
    register(OpDef(
        name=name, arity=len(syms), kind="elementwise",
        shape_rule=broadcast_rule if len(syms) > 1 else same_shape, dtype_rule=same_float,
        numpy_impl=_numpy_impl(syms, expr), sympy_impl=vectorize_sympy(lam), sympy_scalar=lam,
        derivs=_derivs(name, syms, expr, regions), differentiable=tuple(range(len(syms))),
        proof={"regions": list(regions)} if regions else {}, doc=doc, expr=lam))
    # no backend is told: each emitter spells a user op from opdef.expr when it meets one


def _numpy_impl(syms, expr):
    fn = sympy.lambdify(syms, expr, modules=["numpy", "scipy"])

    def impl(*arrays):
        arrays = [np.asarray(a) for a in arrays]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        out = np.asarray(fn(*arrays), dtype=np.result_type(*arrays))
        # A constant expression (say a derivative that is 2) gives a scalar: spread it.
        return out if out.shape == shape else np.broadcast_to(out, shape).copy()
    impl.__doc__ = f"NumPy reference for {expr}"
    return impl


# ----- derivatives: more user ops ----------------------------------------------------
def _almost_everywhere(expr):
    """Drop DiracDelta terms: like sign's gradient, a derivative holds off the kinks."""
    return expr.replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))


def _derivs(name, syms, expr, regions):
    def derivs(c, i):
        d = _almost_everywhere(sympy.diff(expr, syms[i]))
        if d.is_number:
            return c.const(float(d), exact=str(d))
        if d in syms:  # d(x*y)/dx = y: reuse the operand, no new node
            return c.x[syms.index(d)]
        dname = _derivative_op(name, i, syms, d, regions)
        return dsl.apply(dname, *c.x)
    return derivs


def _derivative_op(name, i, syms, d, regions):
    """Op `<name>_d<i>` computing d; registered on first use."""
    dname = f"{name}_d{i}"
    existing = OPS.get(dname)
    if existing is None:
        _register(dname, syms, d, f"d {name} / d {syms[i]} = {d}", regions)
    elif existing.expr is None or existing.expr != sympy.Lambda(tuple(syms), d):
        raise GraphcError(f"op {dname!r} exists but is not the derivative of {name!r}; "
                          f"rename one of them")
    return dname


# ----- the DSL function and the emitter's inline spelling ----------------------------
def _dsl_function(opname, arity):
    fn = dsl._arith(opname)  # lifts Python numbers and bool masks like the built-in ops
    fn.__doc__ = OPS[opname].doc
    fn.arity = arity
    return fn


@functools.cache
def _printer_class():
    """The printer class, made on first use: SymPy's printers import SymPy."""
    from sympy.printing.numpy import NumPyPrinter

    class _Printer(NumPyPrinter):
        """NumPy printer that writes each symbol as the emitted operand expression."""

        # Strict printers raise on what NumPy cannot spell (SymPy >= 1.13); older
        # ones write a "# Not supported" comment, which graphc.backends.python.emit._user_template rejects.
        SETTINGS = {"strict": True} if "strict" in NumPyPrinter._default_settings else {}

        def __init__(self, names):
            super().__init__(dict(self.SETTINGS))
            self._names = names

        def _print_Symbol(self, s):
            return self._names.get(s) or super()._print_Symbol(s)
    return _Printer


def _printer(names):
    return _printer_class()(names)
