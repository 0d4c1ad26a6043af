"""Rewrites: each is checked by counting nodes and by values before and after."""
import numpy as np

import graphc as gc
from graphc.transform import rewrite as rewrite

RNG = np.random.default_rng(3)


def values(g, **feeds):
    return gc.evaluate(g, feeds).outputs


def count(g, op):
    return len(g.nodes_with_op(op))


def test_dce_removes_unused_nodes():
    b = gc.Builder()
    x = b.input("x", (3,))
    gc.exp(x, name="unused_exp")
    gc.tanh(gc.exp(x, name="unused_inner"), name="unused_outer")
    b.output(out=gc.sum(x * 2.0))
    g = b.graph
    x_val = RNG.standard_normal(3)
    before, n_before = values(g, x=x_val), len(g)
    rewrite.eliminate_dead_code(g)
    assert len(g) == n_before - 3
    for name in ("unused_exp", "unused_inner", "unused_outer"):
        assert name not in {g.name_of(n) for n in g.nx.nodes}
    assert values(g, x=x_val) == before
    assert float(before["out"]) == 2.0 * x_val.sum()


def test_dce_keeps_inputs_and_params_even_if_unused():
    b = gc.Builder()
    x = b.input("x", (3,))
    b.param("w", (3,))
    b.output(out=gc.sum(x, name="s"))
    gc.exp(x, name="dead")
    rewrite.eliminate_dead_code(b.graph)
    assert {b.graph.name_of(n) for n in b.graph.nx.nodes} == {"x", "w", "s"}
    assert float(values(b.graph, x=np.ones(3), w=np.ones(3))["out"]) == 3.0


def test_cse_merges_duplicate_subexpressions():
    def f(x):
        return gc.exp(x) + gc.exp(x)
    g = gc.trace(f, (4,))
    x = RNG.standard_normal(4)
    before = values(g, x=x)
    assert count(g, "exp") == 2
    n_before = len(g)
    rewrite.optimize(g)
    assert count(g, "exp") == 1
    assert len(g) == n_before - 1
    (add,) = g.nodes_with_op("add")
    (e,) = g.nodes_with_op("exp")
    assert g.operands(add) == [e, e]  # both operand edges now come from the one exp
    after = values(g, x=x)
    np.testing.assert_array_equal(after[next(iter(after))], before[next(iter(before))])
    np.testing.assert_allclose(after[next(iter(after))], 2 * np.exp(x), rtol=1e-15)


def test_cse_merges_chains_and_respects_attrs():
    def f(x):
        a = gc.sum(gc.tanh(x * 3.0), axis=0)
        b = gc.sum(gc.tanh(x * 3.0), axis=0)
        c = gc.sum(gc.tanh(x * 3.0), axis=1)  # different attrs: not the same expression
        return gc.sum(a) + gc.sum(b) + gc.sum(c)
    g = gc.trace(f, (2, 3))
    x = RNG.standard_normal((2, 3))
    before = values(g, x=x)
    assert count(g, "tanh") == 3 and count(g, "mul") == 3
    rewrite.eliminate_common_subexpressions(g)
    rewrite.eliminate_dead_code(g)
    assert count(g, "tanh") == 1 and count(g, "mul") == 1
    # the axis-0 and axis-1 sums of the shared tanh stay distinct
    row_sums = [n for n in g.nodes_with_op("sum") if g.op(g.operands(n)[0]) == "tanh"]
    assert sorted(g.node(n)["attrs"]["axes"] for n in row_sums) == [(0,), (1,)]
    after = values(g, x=x)
    (k,) = after
    np.testing.assert_allclose(after[k], before[k], rtol=1e-15)
    t = np.tanh(3 * x)
    np.testing.assert_allclose(after[k], 3 * t.sum(), rtol=1e-14)


def test_cse_does_not_merge_inputs():
    b = gc.Builder()
    x, y = b.input("x", (2,)), b.input("y", (2,))
    b.output(out=gc.sum(x - y))
    rewrite.optimize(b.graph)
    assert count(b.graph, "input") == 2
    assert float(values(b.graph, x=np.array([3.0, 4.0]), y=np.array([1.0, 1.0]))["out"]) == 5.0


def test_constant_folding_folds_const_only_subgraphs():
    b = gc.Builder()
    x = b.input("x", (3,))
    c = b.const([1.0, 2.0, 3.0], name="c")
    k = gc.exp(c) * 2.0 + b.const(1.0)          # const-only: folds to one constant
    b.output(out=x * k)
    g = b.graph
    x_val = RNG.standard_normal(3)
    before = values(g, x=x_val)
    n_before = len(g)
    assert count(g, "exp") == 1
    rewrite.optimize(g)
    assert count(g, "exp") == 0 and count(g, "add") == 0
    assert count(g, "mul") == 1  # only x * k is left
    assert len(g) < n_before
    (out_mul,) = g.nodes_with_op("mul")
    (folded,) = [o for o in g.operands(out_mul) if g.op(o) == "const"]
    np.testing.assert_allclose(g.node(folded)["attrs"]["value"], np.exp([1.0, 2.0, 3.0]) * 2 + 1, rtol=1e-15)
    after = values(g, x=x_val)
    np.testing.assert_array_equal(after["out"], before["out"])
    np.testing.assert_allclose(after["out"], x_val * (np.exp([1.0, 2.0, 3.0]) * 2 + 1), rtol=1e-15)


def test_constant_folding_keeps_the_node_name_and_id():
    b = gc.Builder()
    x = b.input("x", ())
    k = gc.mul(b.const(2.0), b.const(3.0), name="six")
    b.output(out=x * k)
    rewrite.fold_constants(b.graph)
    six = b.graph.find("six")
    assert six == k.node and b.graph.op(six) == "const"
    assert float(b.graph.node(six)["attrs"]["value"]) == 6.0
    assert float(values(b.graph, x=7.0)["out"]) == 42.0


def test_constant_folding_never_grows_a_constant():
    b = gc.Builder()
    x = b.input("x", (50, 50))
    big = gc.broadcast_to(b.const(2.0), (50, 50), name="big")
    b.output(out=x * big)
    rewrite.fold_constants(b.graph)
    assert b.graph.op(b.graph.find("big")) == "broadcast_to"
    xv = RNG.standard_normal((50, 50))
    np.testing.assert_array_equal(values(b.graph, x=xv)["out"], 2 * xv)


def test_count_of_concrete_shape_folds():
    g = gc.trace(lambda x: gc.mean(x, axis=0), ("N", 3))
    assert count(g, "count") == 1
    gg = gc.grad(gc.trace(lambda x: gc.sum(gc.mean(x, axis=0)), ("N", 3)))
    assert count(gg, "count") == 1  # symbolic N: stays a run-time count
    b = gc.Builder()
    x = b.input("x", (4, 3))
    b.output(out=gc.sum(x, axis=0) / gc.count(x, axis=0))
    rewrite.fold_constants(b.graph)
    assert count(b.graph, "count") == 0
    xv = RNG.standard_normal((4, 3))
    np.testing.assert_allclose(values(b.graph, x=xv)["out"], xv.mean(0), rtol=1e-15)


def test_optimize_keeps_gradient_records_valid():
    def f(x):
        return gc.sum(gc.exp(x) * gc.exp(x))
    g = gc.trace(f, (3,))
    raw = gc.grad(g, optimize=False)
    opt = rewrite.optimize(raw.copy())
    assert len(opt) < len(raw)
    x = RNG.standard_normal(3)
    ev = gc.evaluate(opt, x=x)
    np.testing.assert_allclose(ev.grad("x"), 2 * np.exp(2 * x), rtol=1e-14)
    for rec in opt.edge_grads.values():
        for node in rec.values():
            assert node is None or node in opt.nx.nodes
    np.testing.assert_allclose(ev.grad("x"), gc.evaluate(raw, x=x).grad("x"), rtol=1e-15)
