"""Prove every op's VJP rule with SymPy.

For one op, `prove_op` builds a tiny graph (inputs x0..xk, the op, a cotangent
input v), asks `graphc.transform.autodiff.grad` for the VJP graph -- the same rule the
emitter uses -- and evaluates that graph *symbolically*: each node runs its
op's SymPy form over object arrays of SymPy expressions (structural ops such as
sum, matmul and reshape run their NumPy reference, which works on object
arrays).  The result is compared, entry by entry, with J^T v where J comes from
`sympy.diff` of the op's own SymPy form.  Equality is decided symbolically
(expand, cancel, simplify, a rewrite in exp, then `Expr.equals`), never by
sampling.  The VJP graph is taken unoptimized: this proves the rule, and the
rewrites are tested on their own.

Every float operand is differentiated, declared differentiable or not, so an
op such as `gt` or `sign` is proved to have a zero gradient (status
"zero-gradient"), not merely assumed to.  Operands listed in proof["values"]
are fixed: integer labels as given, and a "mask" in both of its cases.

Kinked ops are proved on each region of their `proof["regions"]` (on a kink
the derivative is a convention, not a theorem):
  {pos: "positive" | "negative"}  operand pos's symbols carry that sign;
  {"gap": "positive" | "negative"}  x0 = x1 + p or x1 - p, with p > 0;
  {"argmax": (c0, c1, ...)}  row r of the (rows, cols) operand 0 peaks at
      column c_r; the other entries are max - p_j with p_j > 0.
Substituted regions change variables x = x(z); the chain rule gives
grad_x = (dx/dz)^-T grad_z, which is exact because x(z) is affine.
"""
import itertools
from dataclasses import dataclass, field

import numpy as np
import sympy

from graphc.frontend import dsl as dsl
from graphc.transform.autodiff import grad
from graphc.ir.ops.registry import FLOATS, get, table
from graphc.check.interpreter import sym_apply, sympy_value, walk

POS, NEG = "positive", "negative"


@dataclass
class RegionResult:
    region: str
    ok: bool
    detail: str = ""
    methods: tuple = ()  # the simplification steps that were needed, e.g. ("simplify",)


@dataclass
class ProofResult:
    op: str
    ok: bool
    detail: str
    regions: list = field(default_factory=list)
    status: str = "proved"  # proved | zero-gradient | not-differentiable | leaf | failed

    def __bool__(self):
        return self.ok


# ----- the symbolic evaluator ------------------------------------------------------
def sym_evaluate(graph, feeds):
    """Evaluate every node of `graph` symbolically (the one walker, SymPy values);
    feeds map input names to object arrays of SymPy expressions."""
    leaves = {n: feeds[graph.name_of(n)] for n in graph.nodes_with_op("input", "param")}
    return walk(graph, leaves, sympy_value)


def symbols(prefix, shape, **assumptions):
    """An object array of distinct symbols, e.g. x0_1_2 for entry (1, 2)."""
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = sympy.Symbol(prefix + "".join(f"_{i}" for i in idx), **assumptions)
    return arr


def is_zero(expr):
    """Decide expr == 0 symbolically.  Returns the steps needed, or None if undecided.

    The last resort, `Expr.equals`, samples numbers only to show an expression is
    *not* zero; it answers True only after simplification or exact algebra
    (minimal polynomials), so a True here is still a proof.
    """
    steps = [("expand", sympy.expand), ("cancel", lambda e: sympy.cancel(sympy.expand(e))),
             ("simplify", sympy.simplify),
             ("rewrite(exp)", lambda e: sympy.simplify(e.rewrite(sympy.exp)))]
    if expr == 0:
        return ()
    for i, (name, step) in enumerate(steps):
        if step(expr) == 0:
            return tuple(s for s, _ in steps[: i + 1])
    if expr.equals(0) is True:
        return ("equals",)
    return None


# ----- proof set-up ----------------------------------------------------------------
def proof_shapes(opdef):
    return [tuple(s) for s in opdef.proof.get("shapes", [()] * opdef.arity)]


def proof_attrs(opdef):
    return dict(opdef.proof.get("attrs", {}))


def graph_attr(value):
    """Graph attrs are plain Python values: the proof's Rational(1, 10) becomes 0.1."""
    if isinstance(value, sympy.Integer):
        return int(value)
    if isinstance(value, sympy.Basic) and value.is_number:
        return float(value)
    return value


def _mask_cases(shape):
    """Concrete masks for a `where`-style condition: both branches of every entry."""
    size = int(np.prod(shape))
    pattern = np.arange(size).reshape(shape) % 2 == 0
    return [pattern, ~pattern]


def _value_cases(opdef, shapes):
    """Each combination of the proof's concrete operand values; masks give two cases."""
    fixed = opdef.proof.get("values", {})
    options = []
    for pos in sorted(fixed):
        val = fixed[pos]
        cases = _mask_cases(shapes[pos]) if isinstance(val, str) and val == "mask" else [np.asarray(val)]
        options.append([(pos, c) for c in cases])
    return [dict(combo) for combo in itertools.product(*options)]


def _leaf_value(arr):
    """Bool masks become 0/1 SymPy integers (sympy.Ne(False, 0) would be True)."""
    if arr.dtype == bool:
        return np.vectorize(sympy.Integer, otypes=[object])(arr.astype(int))
    return arr


def _region_operands(region, shapes, floats):
    """Operand arrays x_i(z) for one region, and the free symbols z, in order."""
    xs, zs = {}, []
    for i in floats:
        sign = region.get(i)
        assumptions = {"positive": True} if sign == POS else {"negative": True} if sign == NEG else {"real": True}
        xs[i] = symbols(f"x{i}", shapes[i], **assumptions)
    if "gap" in region:  # x0 = x1 +- p
        p = symbols("p", shapes[0], positive=True)
        xs[0] = np.asarray(xs[1] + p if region["gap"] == POS else xs[1] - p, dtype=object)
    if "argmax" in region:
        xs[0] = _argmax_operand(shapes[0], region["argmax"])
    for i in floats:
        for e in xs[i].flat:
            zs.extend(s for s in sorted(e.free_symbols, key=str) if s not in zs)
    return xs, zs


def _argmax_operand(shape, argmax):
    rows, cols = shape
    arr = np.empty(shape, dtype=object)
    for r in range(rows):
        top = sympy.Symbol(f"m_{r}", real=True)
        for c in range(cols):
            arr[r, c] = top if c == argmax[r] else top - sympy.Symbol(f"p_{r}_{c}", positive=True)
    return arr


def _describe(region, values):
    parts = []
    for key, val in region.items():
        if key == "gap":
            parts.append(f"x0 - x1 {'>' if val == POS else '<'} 0")
        elif key == "argmax":
            parts.append(f"argmax per row = {tuple(val)}")
        else:
            parts.append(f"x{key} {'>' if val == POS else '<'} 0")
    parts += [f"x{pos} = {np.asarray(v).astype(int).tolist()}" for pos, v in values.items()]
    return ", ".join(parts) or "all reals"


# ----- the proof ---------------------------------------------------------------------
def expected_vjp(opdef, operands, attrs, v, floats, zs):
    """J^T v from sympy.diff of the op's SymPy form, per float operand."""
    y = sym_apply(opdef, operands, attrs)
    loss = sum((yk * vk for yk, vk in zip(y.flat, v.flat)), sympy.Integer(0))
    grad_z = sympy.Matrix([sympy.diff(loss, z) for z in zs])
    xs = [e for i in floats for e in operands[i].flat]
    jac = sympy.Matrix([[sympy.diff(x, z) for z in zs] for x in xs])  # dx/dz, constant
    grad_x = grad_z if jac == sympy.eye(len(zs)) else jac.T.solve(grad_z)
    out, k = {}, 0
    for i in floats:
        size = operands[i].size
        out[i] = np.array(list(grad_x[k:k + size]), dtype=object).reshape(operands[i].shape)
        k += size
    return out


def graph_vjp(opdef, operands, dtypes, attrs):
    """The VJP graph graphc's autodiff builds for this op (seeded by input v), and y's shape."""
    b = dsl.Builder(f"proof_{opdef.name}")
    xs = [b.input(f"x{i}", op.shape, dt) for i, (op, dt) in enumerate(zip(operands, dtypes))]
    y = dsl.apply(opdef.name, *xs, name="y", **{k: graph_attr(a) for k, a in attrs.items()})
    b.input("v", y.shape, y.dtype)
    floats = [i for i, dt in enumerate(dtypes) if dt in FLOATS]
    gg = grad(b.graph, loss="y", wrt=[f"x{i}" for i in floats], seed="v", optimize=False)
    return gg, y.shape


def _prove_region(opdef, region, values, shapes, attrs):
    # Symbolic operands are float64; fixed ones keep their dtype (bool masks, int labels).
    dtypes = [np.asarray(values[i]).dtype.name if i in values else "float64" for i in range(opdef.arity)]
    floats = [i for i, dt in enumerate(dtypes) if dt in FLOATS]
    xs, zs = _region_operands(region, shapes, floats)
    operands = [xs[i] if i in xs else _leaf_value(np.asarray(values[i])) for i in range(opdef.arity)]
    gg, out_shape = graph_vjp(opdef, operands, dtypes, attrs)
    v = symbols("v", out_shape, real=True)
    feeds = {f"x{i}": operands[i] for i in range(opdef.arity)} | {"v": v}
    vals = sym_evaluate(gg, feeds)
    want = expected_vjp(opdef, operands, attrs, v, floats, zs)
    return _compare(gg, vals, want, _describe(region, values))


def _compare(gg, vals, want, label):
    methods = set()
    for i, expected in want.items():
        got = vals[gg.grads[f"x{i}"]]
        if got.shape != expected.shape:
            return RegionResult(label, False, f"g_x{i} has shape {got.shape}, J^T v has {expected.shape}")
        for idx in np.ndindex(*expected.shape):
            steps = is_zero(sympy.sympify(got[idx] - expected[idx]))
            if steps is None:
                return RegionResult(label, False, f"g_x{i}{list(idx)}: graph gives {got[idx]}, "
                                                  f"J^T v is {expected[idx]}")
            methods.update(steps[-1:])
    return RegionResult(label, True, "", tuple(sorted(methods)))


def _prove(opdef):
    if opdef.kind == "leaf":
        return ProofResult(opdef.name, True, "leaf: nothing to differentiate", status="leaf")
    shapes, attrs = proof_shapes(opdef), proof_attrs(opdef)
    cases = _value_cases(opdef, shapes)
    floats_exist = any(i not in opdef.proof.get("values", {}) for i in range(opdef.arity))
    if not floats_exist:
        ok = not opdef.differentiable
        return ProofResult(opdef.name, ok, "integer operands only: no gradient flows"
                           if ok else "declares differentiable operands but has no float operand",
                           status="not-differentiable" if ok else "failed")
    results = [_prove_region(opdef, region, values, shapes, attrs)
               for region in opdef.proof.get("regions", [{}]) for values in cases]
    ok = all(r.ok for r in results)
    status = ("zero-gradient" if not opdef.differentiable else "proved") if ok else "failed"
    detail = "; ".join(f"[{r.region}] {r.detail}" for r in results if not r.ok)
    return ProofResult(opdef.name, ok, detail or "g = J^T v in every region", results, status)


_CACHE = {}  # name -> (OpDef, ProofResult); keyed on the OpDef object so re-registering re-proves


def prove_op(name):
    """Prove the VJP rule of op `name` (cached per OpDef for the session)."""
    opdef = get(name)
    hit = _CACHE.get(name)
    if hit is not None and hit[0] is opdef:
        return hit[1]
    try:
        result = _prove(opdef)
    except Exception as e:  # a rule that cannot even be built is a failed proof, not a crash
        result = ProofResult(name, False, f"{type(e).__name__}: {e}", status="failed")
    _CACHE[name] = (opdef, result)
    return result


def prove_all(include_leaves=False):
    return [prove_op(op.name) for op in table() if include_leaves or op.kind != "leaf"]


def format_table(results=None):
    """A plain-text table: op, status, regions, and the simplification each needed."""
    results = prove_all() if results is None else results
    rows = [("op", "status", "regions", "method")]
    for r in results:
        methods = sorted({m for reg in r.regions for m in reg.methods}) or ["-"]
        regions = "; ".join(reg.region for reg in r.regions) or "-"
        rows.append((r.op, r.status, regions, ", ".join(methods)))
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
