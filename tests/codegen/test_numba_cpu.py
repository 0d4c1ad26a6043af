"""The numba CPU backend against the Python backend (the oracle), PyTensor style.

Every op of the table is compared through one "zoo" graph per dtype and mode
(see zoo.py: compiling one graph per op would take minutes), forward values
and gradients: float64 within 1e-10 relative, float32 within 1e-5, with the
tolerance scaled by the reference's largest magnitude.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as gc
from graphc.errors import CallError, NumericError
from graphc.train import SGD, compile_step
from tests.codegen.zoo import IDS, OPS, build_zoo, outputs_of

TOL = {"float64": 1e-10, "float32": 1e-5}
# parallel=True compiles the zoo under numba's parfor pass (about 2 min per dtype on 2 cores):
# float64 only, since the parallel loop structure does not depend on the dtype, and the
# float32 literals and casts are covered by the serial variant.
VARIANTS = [("float64", False), ("float32", False), ("float64", True)]
_zoo_cache = {}


@pytest.fixture(autouse=True)
def _shared_cache(_cache_dir, monkeypatch, tmp_path_factory):
    """numba compiles are slow: these tests share one cache directory, so a graph
    compiled by one test is loaded from disk by the next."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "numba-cache"))


def assert_agree(got, want, dtype, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


def zoo_results(dtype, parallel):
    key = (dtype, parallel)
    if key not in _zoo_cache:
        graph, feeds = build_zoo(dtype)
        want = gc.compile(graph)(feeds)
        got = gc.compile(graph, backend="numba", parallel=parallel)(feeds)
        _zoo_cache[key] = (want, got)
    return _zoo_cache[key]


@pytest.mark.parametrize("dtype,parallel", VARIANTS, ids=[f"{d}-{'parallel' if p else 'serial'}" for d, p in VARIANTS])
@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_every_op_agrees_with_python_backend(op, dtype, parallel):
    want, got = zoo_results(dtype, parallel)
    names = outputs_of(op, want)
    assert names, f"{op.name}: no outputs in the zoo"
    for name in names:
        assert_agree(got[name], want[name], dtype, f"{op.name}: {name} ({dtype}, parallel={parallel})")


# ----- shapes and attributes the zoo does not reach ------------------------------------------
def odd_shapes(x, w):
    """Multi-axis and keepdims reductions, softmax over axis 0, a 3-D transpose,
    a reshape of a transposed value, and broadcasting from both sides."""
    a = gc.sum(x * x, axis=(0, 2), keepdims=True)  # (1, 3, 1)
    b = gc.max(x, axis=0)  # (3, 4)
    c = gc.logsumexp(x, axis=(1, 2))  # (2,)
    d = gc.softmax(x, axis=0)  # (2, 3, 4)
    e = gc.transpose(x, (2, 0, 1))  # (4, 2, 3)
    f = gc.reshape(gc.transpose(w), (12,))  # w is (3, 4): its .T is F-ordered
    g = gc.tanh(x + a) * gc.exp(-d)  # (2,3,4) + (1,3,1)
    h = gc.reshape(b, (4, 3)) + gc.reshape(f, (4, 3))
    loss = gc.sum(g) + gc.sum(c) + gc.sum(e * e) + gc.sum(h * h) + gc.mean(gc.log_softmax(w, axis=0))
    return loss


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_odd_shapes_agree(parallel):
    graph = gc.grad(gc.trace(odd_shapes, (2, 3, 4), (3, 4)), wrt=["x", "w"])
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((2, 3, 4)), "w": rng.standard_normal((3, 4))}
    want = gc.compile(graph)(feeds)
    got = gc.compile(graph, backend="numba", parallel=parallel)(feeds)
    for name in want:
        assert_agree(got[name], want[name], "float64", name)


def test_reductions_over_every_axis_kept_agree_in_parallel():
    """sum/max/logsumexp over all axes with keepdims=True: the parallel emitter has no
    kept axis to split among threads (it once crashed on max() of an empty sequence)."""
    b = gc.Builder("full_keepdims")
    x, y = b.input("x", (3, 2)), b.input("y", (3,))
    graph = b.output(s=gc.sum(x, axis=(0, 1), keepdims=True), m=gc.max(x, axis=(0, 1), keepdims=True),
                     l=gc.logsumexp(x, axis=(0, 1), keepdims=True), s1=gc.sum(y, axis=0, keepdims=True))
    feeds = {"x": np.array([[1.0, -2.0], [7.5, 0.25], [3.0, -np.inf]]), "y": np.array([0.5, 2.0, -4.0])}
    want = gc.evaluate(graph, feeds).outputs
    got = gc.compile(graph, backend="numba", parallel=True)(feeds)
    for name in want:
        assert_agree(got[name], want[name], "float64", name)


def test_symbolic_dims_with_no_workspace_array():
    """Every intermediate is 0-d, so there is no workspace array but there is a dim:
    `workspace_views` once read `def workspace_views(, N):`, a SyntaxError."""
    b = gc.Builder("no_workspace")
    x, w = b.input("x", ("N", 4)), b.param("w", ())
    graph = b.output(loss=gc.sum(x) * w)
    fn = gc.compile(graph, backend="numba")
    for n in (0, 3):
        feeds = {"x": np.arange(4.0 * n).reshape(n, 4), "w": np.array(1.5)}
        assert_agree(fn(feeds)["loss"], gc.evaluate(graph, feeds).outputs["loss"], "float64", f"N={n}")


def skinny_net(x, W1, W2, y):
    """Inner dimensions of 2 and 3: the numba backend fuses these matmuls (and the
    transposed W2 of the gradient, and one_hot) into loops instead of calling BLAS."""
    h = gc.relu(x @ W1 + 0.5)
    return gc.cross_entropy(h @ W2, y) + gc.sum(gc.one_hot(y, 3, "float64") * (h @ W2))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_small_inner_dimension_matmuls_are_fused_loops_that_agree(parallel):
    graph = gc.grad(gc.trace(skinny_net, ("N", 2), gc.dsl.Param((2, 5)), gc.dsl.Param((5, 3)),
                             gc.dsl.Input(("N",), "int64")), wrt=["W1", "W2", "x"])
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((7, 2)), "W1": rng.standard_normal((2, 5)),
             "W2": rng.standard_normal((5, 3)), "y": rng.integers(0, 3, 7)}
    want = gc.compile(graph)(feeds)
    compiled = gc.compile(graph, backend="numba", parallel=parallel)
    got = compiled(feeds)
    for name in want:
        assert_agree(got[name], want[name], "float64", name)
    x_at_w1 = next(n for n in graph.nodes_with_op("matmul") if graph.operands(n)[0] == graph.find("x"))
    assert f"loop over (N, 5): {graph.name_of(x_at_w1)}" in compiled.source  # fused, not np.dot
    assert "np.dot(x, W1" not in compiled.source


# ----- models -------------------------------------------------------------------------------------
def test_lecture_graph_on_numba():
    from tests.conftest import lecture_graph
    out = gc.compile(gc.grad(lecture_graph()), backend="numba")(x1=5.0, x2=4.0, x3=3.0, x4=2.0)
    assert float(out["f"]) == 25.0  # seed 001
    assert [float(out[f"g_x{i}"]) for i in (1, 2, 3, 4)] == [3.0, 3.0, 9.0, -1.0]


def seed003_net(X, y, W1, b1, W2, b2, W3, b3):
    """Seed 003: three sigmoid layers, binary cross-entropy on the logits."""
    a1 = gc.sigmoid(X @ W1 + b1)
    a2 = gc.sigmoid(a1 @ W2 + b2)
    z3 = a2 @ W3 + b3
    loss = gc.bce_loss(z3, y)
    return loss


def _seed003(dtype):
    from graphc.frontend.dsl import Input, Param
    graph = gc.trace(seed003_net, Input(("N", 4), dtype), Input(("N", 1), dtype), Param((4, 8), dtype),
                     Param((1, 8), dtype), Param((8, 6), dtype), Param((1, 6), dtype), Param((6, 1), dtype),
                     Param((1, 1), dtype), dtype=dtype)
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((4, 8)), "b1": np.zeros((1, 8)), "W2": rng.standard_normal((8, 6)),
              "b2": np.zeros((1, 6)), "W3": rng.standard_normal((6, 1)), "b3": np.zeros((1, 1))}
    X = rng.standard_normal((32, 4)).astype(dtype)
    y = (X[:, :1] * X[:, 1:2] > 0).astype(dtype)
    return graph, params, X, y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_steps_match_python_backend(dtype):
    graph, params, X, y = _seed003(dtype)
    steps = {b: compile_step(graph, params, SGD(lr=0.5), backend=b) for b in ("python", "numba")}
    for k in range(5):
        batch = slice(0, 32) if k % 2 == 0 else slice(0, 20)  # a smaller batch rebinds N
        losses = {b: float(s(X=X[batch], y=y[batch])["loss"]) for b, s in steps.items()}
        assert losses["numba"] == pytest.approx(losses["python"], rel=TOL[dtype] * 10)
    for name in params:
        assert_agree(steps["numba"].params[name], steps["python"].params[name], dtype, name)
    assert not np.allclose(steps["numba"].params["W1"], params["W1"])  # it did train


def test_spiral_step_trains_and_matches_hand_backprop():
    """Seed 004's spiral net: one SGD step on numba equals the lecture's NumPy backprop step."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
    import spiral_gradients as sg
    rng = np.random.default_rng(0)
    X, y = sg.spiral(rng)
    params = {"W1": 0.01 * rng.standard_normal((2, 100)), "b1": np.zeros((1, 100)),
              "W2": 0.01 * rng.standard_normal((100, 3)), "b2": np.zeros((1, 3))}
    step = compile_step(sg.build(), params, SGD(lr=1.0), backend="numba")
    step(X=X, y=y)
    _, grads = sg.numpy_backprop(X, y, *(params[k] for k in ("W1", "b1", "W2", "b2")))
    for name, g in grads.items():
        np.testing.assert_allclose(step.params[name], params[name] - 1.0 * g, rtol=1e-10, atol=1e-13)


# ----- calls: validation, layouts, NaN checks ------------------------------------------------
@pytest.fixture(scope="module")
def mlp():
    def net(x, W):
        return gc.sum(gc.relu(x @ W))
    return gc.grad(gc.trace(net, ("N", 3), gc.dsl.Param((3, 2))), wrt=["W"])


def test_call_errors_are_graphc_errors_raised_before_numba(mlp):
    c = gc.compile(mlp, backend="numba")
    W = np.ones((3, 2))
    with pytest.raises(CallError, match="missing argument"):
        c(W=W)
    with pytest.raises(CallError, match=r"input 'x' \(N, 3\) float64: expected .*got \(4, 5\)"):
        c(x=np.ones((4, 5)), W=W)
    with pytest.raises(CallError, match="got dtype float32"):
        c(x=np.ones((4, 3), np.float32), W=W)
    with pytest.raises(CallError, match="unexpected argument"):
        c(x=np.ones((4, 3)), W=W, z=1)


def test_non_contiguous_and_list_inputs_work(mlp):
    c, ref = gc.compile(mlp, backend="numba"), gc.compile(mlp)
    x = np.asfortranarray(np.random.default_rng(0).standard_normal((5, 3)))
    strided = np.random.default_rng(1).standard_normal((10, 3))[::2]
    W = np.arange(6.0).reshape(3, 2)[:, ::-1]
    for feed in (x, strided):
        assert_agree(c(x=feed, W=W)["g_W"], ref(x=feed, W=W)["g_W"], "float64", "g_W")
    assert_agree(c(x=x.tolist(), W=W.tolist())["g_W"], ref(x=x, W=W)["g_W"], "float64", "lists")


def test_nan_check_is_optional(mlp):
    c = gc.compile(mlp, backend="numba")
    x = np.ones((2, 3))
    x[1, 1] = np.nan
    assert np.isnan(c(x=x, W=np.ones((3, 2)))["g_W"]).any()  # off by default: NaN flows like NumPy
    with pytest.raises(NumericError, match="input 'x'"):
        c(x=x, W=np.ones((3, 2)), check_finite=True)


def test_out_of_range_labels_are_a_clear_error():
    def net(z, y):
        return gc.cross_entropy(z, y)
    c = gc.compile(gc.grad(gc.trace(net, ("N", 3), gc.dsl.Input(("N",), "int64")), wrt=["z"]), backend="numba")
    with pytest.raises(CallError, match=r"softmax_cross_entropy .*label is outside \[0, 3\)"):
        c(z=np.zeros((2, 3)), y=np.array([0, 3]))


def test_workspace_is_reused_and_outputs_are_copies(mlp):
    c = gc.compile(mlp, backend="numba")
    W = np.ones((3, 2))
    first = c(x=np.ones((4, 3)), W=W)["g_W"]
    ws = c._workspace({"N": 4})
    second = c(x=2 * np.ones((4, 3)), W=W)["g_W"]
    assert c._workspace({"N": 4})[0] is ws[0]
    np.testing.assert_array_equal(second, 2 * first)  # the first result was not overwritten


def test_subnormals_flush_to_zero_inside_a_call_only():
    """IEEE arithmetic keeps 1e-310 * 1 = 1e-310; with flush-to-zero (the default, as in
    XLA) the compiled call gives 0, and NumPy after the call is back to IEEE."""
    graph = gc.trace(lambda x, w: x * w, (3,), (3,))
    x, w = np.array([1e-310, 1.0, -1e-310]), np.ones(3)
    flushed = next(iter(gc.compile(graph, backend="numba")(x=x, w=w).values()))
    np.testing.assert_array_equal(flushed, [0.0, 1.0, 0.0])
    assert (x * w)[0] == 1e-310  # the caller's floating-point mode was restored
    kept = next(iter(gc.compile(graph, backend="numba", flush_subnormals=False)(x=x, w=w).values()))
    np.testing.assert_array_equal(kept, x)


# ----- the emitted module ---------------------------------------------------------------------------
def test_emitted_source_is_readable_and_fused():
    src = gc.backends.emit_source(gc.grad(gc.trace(odd_shapes, (2, 3, 4), (3, 4)), wrt=["x"]), "numba")
    assert "@njit(cache=True" in src and "def run(" in src
    assert "# loop over (2, 3, 4):" in src  # a fused elementwise loop names its members
    assert "prange" not in src.split("def run(")[1] or "parallel=True" in src


def test_a_new_process_loads_compiled_code_from_the_cache(tmp_path):
    """The second process compiles nothing: every kernel comes from numba's disk cache."""
    script = textwrap.dedent("""
        import json, numpy as np, graphc as gc
        def net(x, W):
            return gc.sum(gc.tanh(x @ W))
        c = gc.compile(gc.grad(gc.trace(net, ("N", 3), gc.dsl.Param((3, 2))), wrt=["W"]), backend="numba")
        c(x=np.ones((4, 3)), W=np.ones((3, 2)))
        fns = [f for f in vars(c.module).values() if hasattr(f, "stats")]
        print(json.dumps({"hits": sum(sum(f.stats.cache_hits.values()) for f in fns),
                          "misses": sum(sum(f.stats.cache_misses.values()) for f in fns)}))
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    import json
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert first["misses"] > 0 and first["hits"] == 0
    assert second["misses"] == 0 and second["hits"] > 0
    import shutil
    shutil.rmtree(tmp_path / "cache")  # clearing the cache is safe: the next run rebuilds it
    third = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert json.loads(third.stdout.strip().splitlines()[-1])["misses"] > 0


def test_graphc_selects_the_workqueue_threading_layer(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, numba, graphc as gc
        def net(x):
            return gc.sum(gc.exp(x))
        gc.compile(gc.trace(net, (8,)), backend="numba", parallel=True)(x=np.ones(8))
        print(numba.threading_layer())
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env["GRAPHC_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "workqueue"
