"""Every op in the table, checked three independent ways.

Parametrized over `graphc.ir.ops.table()`, so a newly registered op is covered
without touching this file:
  (a) its VJP rule is proved with SymPy (graphc.check.verify);
  (b) a float64 central-difference check of sum(op(...) * w) passes;
  (c) the emitted Python code agrees with the interpreter, forward and
      backward, and with the op's NumPy reference applied directly.
"""
import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.frontend import dsl as dsl
from graphc.check.gradcheck import gradcheck
from graphc.ir.ops import table
from graphc.check.verify import prove_op, sym_apply, symbols

OPS = [op for op in table() if op.kind != "leaf"]
IDS = [op.name for op in OPS]
POS, NEG = "positive", "negative"


# ----- inputs that keep clear of kinks ------------------------------------------------
def _test_shapes(op):
    """Elementwise ops get broadcasting shapes, so unbroadcasting is exercised too."""
    if op.kind in ("elementwise", "compare"):
        if op.arity == 1:
            return [(2, 3)]
        return [(2, 3)] * (op.arity - 1) + [(3,)]
    return [tuple(s) for s in op.proof["shapes"]]


def _signs(op, pos):
    """The signs operand `pos` takes across the op's proof regions."""
    return {r[pos] for r in op.proof.get("regions", []) if pos in r}


def _operand(op, pos, shape, rng):
    fixed = op.proof.get("values", {})
    if pos in fixed:
        if isinstance(fixed[pos], str):  # "mask"
            return rng.random(shape) < 0.5
        return np.asarray(fixed[pos])
    signs = _signs(op, pos)
    if signs == {POS}:
        return rng.uniform(0.5, 2.0, shape)
    if signs == {NEG}:
        return -rng.uniform(0.5, 2.0, shape)
    if signs:  # a kink at 0: both signs, but never near it
        return rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    return rng.standard_normal(shape)


def _separate(op, arrays, rng):
    """Keep maximum/minimum operands apart and each row's max unique."""
    regions = op.proof.get("regions", [])
    if any("gap" in r for r in regions):
        gap = rng.uniform(0.3, 1.0, arrays[0].shape) * rng.choice([-1.0, 1.0], arrays[0].shape)
        arrays[0] = arrays[1] + gap
    if any("argmax" in r for r in regions):
        rows, cols = arrays[0].shape
        arrays[0] = np.stack([rng.permutation(cols) * 0.5 for _ in range(rows)]) + rng.uniform(0, 0.1, (rows, cols))
    return arrays


def make_feeds(op, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [_operand(op, i, s, rng) for i, s in enumerate(_test_shapes(op))]
    return _separate(op, arrays, rng)


def graph_attrs(op):
    return {k: float(v) if isinstance(v, sympy.Basic) else v for k, v in op.proof.get("attrs", {}).items()}


def build(op, arrays, seed=1):
    """loss = sum(op(x0..xk) * w), with y = op(...) also an output."""
    b = gc.Builder(f"check_{op.name}")
    xs = [b.input(f"x{i}", a.shape, a.dtype.name) for i, a in enumerate(arrays)]
    y = dsl.apply(op.name, *xs, name="y", **graph_attrs(op))
    w = b.const(np.random.default_rng(seed).standard_normal(y.shape))
    loss = gc.sum(gc.cast(y, "float64") * w, name="loss")
    return b.output(loss, y=y)


def feeds_of(arrays):
    return {f"x{i}": a for i, a in enumerate(arrays)}


# ----- (a) the SymPy proof ------------------------------------------------------------
@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_vjp_rule_is_proved(op):
    result = prove_op(op.name)
    assert result.ok, f"{op.name}: {result.detail}"
    for region in result.regions:
        assert region.ok, region


# ----- (b) finite differences -----------------------------------------------------------
@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_gradcheck(op):
    arrays = make_feeds(op)
    if not any(a.dtype.kind == "f" for a in arrays):
        assert op.differentiable == (), "integer operands cannot carry a gradient"
        return
    result = gradcheck(build(op, arrays), feeds_of(arrays), loss="loss")
    assert result.ok, f"{op.name}: max error {result.max_error}"


# ----- (c) emitted code == interpreter == NumPy reference ---------------------------------
def _assert_same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15, err_msg=what)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_emitted_code_matches_interpreter_and_reference(op):
    arrays = make_feeds(op)
    graph = build(op, arrays)
    feeds = feeds_of(arrays)
    reference = op.numpy_impl(*arrays, **graph_attrs(op))
    emitted = gc.compile(graph)(feeds)
    _assert_same(emitted["y"], reference, f"{op.name}: emitted forward vs numpy_impl")
    _assert_same(gc.evaluate(graph, feeds)["y"], reference, f"{op.name}: interpreter vs numpy_impl")

    # count of a concrete shape folds to a constant, and then the forward output
    # "depends on no input" and compile's validate refuses it: keep it unfolded.
    gg = gc.grad(graph, loss="loss", optimize=op.name != "count")
    emitted, interpreted = gc.compile(gg)(feeds), gc.evaluate(gg, feeds).outputs
    assert set(emitted) == set(interpreted)
    for name in interpreted:
        _assert_same(emitted[name], interpreted[name], f"{op.name}: output {name}")


# ----- the table itself ---------------------------------------------------------------------
def _sympy_form_works(op):
    """A structural op's SymPy form is its NumPy reference run on object arrays."""
    fixed = op.proof.get("values", {})
    shapes = [tuple(s) for s in op.proof.get("shapes", [()] * op.arity)]
    args = [symbols(f"x{i}", s, real=True) for i, s in enumerate(shapes)]
    for i, value in fixed.items():  # labels stay integers; a mask is all-true 0/1
        args[i] = np.full(shapes[i], sympy.Integer(1), dtype=object) if isinstance(value, str) else np.asarray(value)
    out = sym_apply(op, args, op.proof.get("attrs", {}))
    return out.dtype == object and all(isinstance(e, sympy.Basic) for e in out.flat)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_every_op_has_a_sympy_form(op):
    if op.differentiable:  # sympy_impl, sympy_scalar, or a reference that runs on SymPy objects
        assert _sympy_form_works(op), f"{op.name}: cannot be evaluated symbolically"


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_every_op_has_a_derivative_rule_or_none_to_give(op):
    if op.differentiable:
        assert op.derivs is not None or op.vjp is not None, f"{op.name} has no VJP rule"
        assert set(op.differentiable) <= set(range(op.arity))
    else:
        assert op.derivs is None and op.vjp is None, f"{op.name}: a rule for no operand"


def test_table_is_sorted_and_complete():
    names = [op.name for op in table()]
    assert names == sorted(names)
    for expected in ("add", "matmul", "softmax_cross_entropy", "where", "max", "input", "const"):
        assert expected in names
