"""The CUDA backend agrees with the Python backend, op by op and on whole models.

Runs on numba-cuda's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1
before numba is imported) unless GRAPHC_REAL_CUDA=1, which runs the same tests
on a GPU.  The simulator runs every CUDA thread as a Python thread, so shapes
stay tiny; the simulator's launch defaults (4 threads a block, at most 2
blocks, 4x4 matmul tiles) still make every grid-stride loop and tile loop turn.

Tolerances, as compare_numba_and_py in PyTensor: float64 within 1e-10 and
float32 within 1e-5, relative to the largest magnitude of the reference.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba_cuda")
from numba import cuda  # noqa: E402

if not cuda.is_available():  # GRAPHC_REAL_CUDA=1 on a machine without a GPU
    pytest.skip("no CUDA GPU, and the simulator is off (GRAPHC_REAL_CUDA=1)", allow_module_level=True)

import graphc as gc  # noqa: E402
from graphc.frontend.dsl import Input, Param  # noqa: E402
from graphc.train import SGD, compile_step  # noqa: E402
from tests.conftest import lecture_graph  # noqa: E402
from tests.ops.test_op_table import OPS, IDS, build, feeds_of, make_feeds  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import spiral_gradients  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-5}


def assert_close(got, want, dtype, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    tol = TOL[dtype]
    scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=1.0))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


def compare_cuda_and_py(graph, feeds, dtype="float64", **options):
    """Compile `graph` for both backends, run both on `feeds`, compare every output."""
    want = gc.compile(graph, "python")(feeds)
    got = gc.compile(graph, "cuda", **options)(feeds)
    assert set(got) == set(want)
    for name in want:
        assert_close(got[name], want[name], dtype, f"{graph.name}: output {name}")
    return got


def _as(arrays, dtype):
    return [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]


# ----- every op, forward and backward -----------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_every_op_and_its_gradient_match_python(op, dtype):
    arrays = _as(make_feeds(op), dtype)
    graph = gc.grad(build(op, arrays), loss="loss", optimize=op.name != "count")
    compare_cuda_and_py(graph, feeds_of(arrays), dtype)


TREE_OPS = [op for op in OPS if op.name in ("sum", "max", "logsumexp", "softmax", "log_softmax", "softmax_cross_entropy")]


@pytest.mark.parametrize("op", TREE_OPS, ids=[op.name for op in TREE_OPS])
def test_reductions_as_shared_memory_trees(op):
    """tree_min=0: every reduction and softmax runs a block per fiber and a tree."""
    arrays = make_feeds(op)
    graph = gc.grad(build(op, arrays), loss="loss")
    compare_cuda_and_py(graph, feeds_of(arrays), tree_min=0)


def _matmul_graph(m, k, n):
    b = gc.Builder("mm")
    x, w = b.input("x", (m, k)), b.param("w", (k, n))
    y = x @ w
    return gc.grad(b.output(loss=gc.sum(gc.tanh(y)), y=y, yt=gc.transpose(y)), loss="loss")


@pytest.mark.parametrize("tile", [1, 2, 3])
def test_tiled_matmul_across_tiles_and_edges(tile):
    """Ragged edges, several tiles along K, transposed operands (the gradient's x.T
    and w.T are index arithmetic, not copies) and a transposed output."""
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((5, 3)), "w": rng.standard_normal((3, 7))}
    compare_cuda_and_py(_matmul_graph(5, 3, 7), feeds, tile=tile, max_blocks=3)


def test_float32_matmul():
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((5, 3)).astype("float32"), "w": rng.standard_normal((3, 7)).astype("float32")}
    b = gc.Builder("mm32")
    y = b.input("x", (5, 3), "float32") @ b.param("w", (3, 7), "float32")
    compare_cuda_and_py(gc.grad(b.output(loss=gc.sum(y * y)), loss="loss"), feeds, "float32", tile=2)


def test_reshape_views_and_copies():
    """reshape of a buffer is a view (index arithmetic); reshape of a transposed
    array and a 3-D transpose are copies."""
    b = gc.Builder("shapes")
    x = b.input("x", (2, 3, 2))
    flat = gc.reshape(gc.exp(x), (3, 4), name="flat")
    t = gc.transpose(flat)
    back = gc.reshape(t, (2, 6), name="back")
    perm = gc.transpose(x, (2, 0, 1), name="perm")
    loss = gc.sum(back * back) + gc.sum(gc.tanh(perm))
    graph = gc.grad(b.output(loss=loss, flat=flat, back=back, perm=perm), loss="loss")
    compare_cuda_and_py(graph, {"x": np.random.default_rng(2).standard_normal((2, 3, 2))})


# ----- models -------------------------------------------------------------------------------
def test_lecture_graph_all_scalars():
    graph = gc.grad(lecture_graph(), loss="f")
    out = compare_cuda_and_py(graph, {"x1": 1.0, "x2": 2.0, "x3": 3.0, "x4": 4.0})
    assert float(out["f"]) == 5.0


def _mlp(hidden=5, classes=3, dtype="float64"):
    return gc.trace(spiral_gradients.net, Input(("N", 2), dtype), Input(("N",), "int64"), Param((2, hidden), dtype),
                    Param((1, hidden), dtype), Param((hidden, classes), dtype), Param((1, classes), dtype),
                    name="mlp", dtype=dtype)


def _mlp_feeds(rng, n=4, hidden=5, classes=3, dtype="float64"):
    f = {"X": rng.standard_normal((n, 2)), "y": rng.integers(0, classes, n),
         "W1": rng.standard_normal((2, hidden)), "b1": rng.standard_normal((1, hidden)),
         "W2": rng.standard_normal((hidden, classes)), "b2": rng.standard_normal((1, classes))}
    return {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in f.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_with_softmax_cross_entropy(dtype):
    rng = np.random.default_rng(3)
    compare_cuda_and_py(gc.grad(_mlp(dtype=dtype), loss="loss"), _mlp_feeds(rng, dtype=dtype), dtype)


def _sigmoid_bce_net(X, Y, W1, b1, W2, b2):
    """Seed 003's network: sigmoid hidden layer, binary cross-entropy on logits."""
    a1 = gc.sigmoid(X @ W1 + b1)
    z2 = a1 @ W2 + b2
    loss = gc.bce_loss(z2, Y)
    return loss


def test_sigmoid_bce_net():
    rng = np.random.default_rng(4)
    graph = gc.trace(_sigmoid_bce_net, Input(("N", 3)), Input(("N", 1)), Param((3, 4)), Param((1, 4)),
                     Param((4, 1)), Param((1, 1)), name="bce")
    feeds = {"X": rng.standard_normal((4, 3)), "Y": (rng.random((4, 1)) < 0.5).astype(float),
             "W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((1, 4)),
             "W2": rng.standard_normal((4, 1)), "b2": rng.standard_normal((1, 1))}
    compare_cuda_and_py(gc.grad(graph, loss="loss"), feeds)


# ----- the training step: params stay on the device -------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sgd_steps_match_python(dtype):
    rng = np.random.default_rng(5)
    feeds = _mlp_feeds(rng, dtype=dtype)
    params = {k: feeds.pop(k) for k in ("W1", "b1", "W2", "b2")}
    steps = {be: compile_step(_mlp(dtype=dtype), params, SGD(lr=0.5), backend=be) for be in ("python", "cuda")}
    for i in range(3):
        batch = {"X": rng.standard_normal((4, 2)).astype(dtype), "y": rng.integers(0, 3, 4)}
        want, got = steps["python"](batch), steps["cuda"](batch)
        assert_close(got["loss"], want["loss"], dtype, f"loss, step {i}")
    for name, value in steps["python"].params.items():
        assert_close(steps["cuda"].params[name], value, dtype, f"param {name}")
    held = steps["cuda"].compiled._held
    assert all(not isinstance(a, np.ndarray) for a in held.values()), "params must live on the device"
    assert all(isinstance(a, np.ndarray) for a in steps["cuda"].params.values()), "held gives host copies"


def test_a_scalar_param_is_updated_on_the_device():
    """A 0-d param is a 1-element device array that the update writes."""
    def fit(x, t, s, c):
        loss = gc.mean((x * s + c - t) ** 2)
        return loss
    graph = gc.trace(fit, Input(("N",)), Input(("N",)), Param(()), Param(()), name="line")
    rng = np.random.default_rng(6)
    params = {"s": np.array(0.5), "c": np.array(-1.0)}
    steps = {be: compile_step(graph, params, SGD(lr=0.1), backend=be) for be in ("python", "cuda")}
    for _ in range(3):
        batch = {"x": rng.standard_normal(5), "t": rng.standard_normal(5)}
        assert_close(steps["cuda"](batch)["loss"], steps["python"](batch)["loss"], "float64", "loss")
    for name in params:
        assert steps["cuda"].params[name].shape == ()
        assert_close(steps["cuda"].params[name], steps["python"].params[name], "float64", name)


def test_workspace_is_reused_per_batch_size():
    compiled = gc.compile(gc.grad(_mlp(), loss="loss"), "cuda")
    rng = np.random.default_rng(7)
    compiled(_mlp_feeds(rng))
    ws = compiled._ws
    compiled(_mlp_feeds(rng))
    assert compiled._ws is ws
    compiled(_mlp_feeds(rng, n=3))  # a ragged last batch: new dims, new workspace
    assert compiled._ws is not ws


# ----- calls -----------------------------------------------------------------------------------
def test_out_of_range_label_is_a_call_error_before_any_launch():
    compiled = gc.compile(_mlp(), "cuda")
    feeds = _mlp_feeds(np.random.default_rng(8))
    feeds["y"] = np.array([0, 1, 3, 0])
    with pytest.raises(gc.CallError, match=r"softmax_cross_entropy .*a label is outside \[0, 3\)"):
        compiled(feeds)


def test_out_of_range_computed_label_is_flagged_by_the_kernel():
    b = gc.Builder("computed_labels")
    z, c = b.input("z", ("N", 3)), b.input("c", ("N",))
    labels = gc.cast(c, "int64")
    graph = b.output(loss=gc.sum(gc.softmax_cross_entropy(z, labels)), g=gc.gather(z, labels))
    compiled = gc.compile(graph, "cuda")
    z = np.random.default_rng(9).standard_normal((2, 3))
    compare_cuda_and_py(graph, {"z": z, "c": np.array([2.0, 0.0])})
    with pytest.raises(gc.CallError, match="a label is outside"):
        compiled(z=z, c=np.array([1.0, 5.0]))
    compiled(z=z, c=np.array([1.0, 2.0]))  # the flag was cleared


def test_feeds_are_validated_and_non_contiguous_arrays_work():
    graph = gc.grad(_mlp(), loss="loss")
    compiled = gc.compile(graph, "cuda")
    feeds = _mlp_feeds(np.random.default_rng(10))
    with pytest.raises(gc.CallError):
        compiled({**feeds, "X": feeds["X"][:, :1]})
    strided = {**feeds, "X": np.asfortranarray(feeds["X"]), "W2": feeds["W2"].T.copy().T}
    assert not strided["X"].flags.c_contiguous
    want = gc.compile(graph, "python")(feeds)
    assert_close(compiled(strided)["g_W1"], want["g_W1"], "float64", "g_W1")


def test_unknown_option_is_a_graphc_error():
    with pytest.raises(gc.GraphcError, match="no option 'parallel'"):
        gc.compile(lecture_graph(), "cuda", parallel=True)
    with pytest.raises(gc.GraphcError, match="power of 2"):
        gc.compile(lecture_graph(), "cuda", threads=3)


def test_emitted_source_is_readable_cuda():
    src = gc.backends.emit_source(gc.grad(_mlp(), loss="loss"), "cuda")
    assert "@cuda.jit(cache=True)" in src
    assert "cuda.shared.array((TILE, TILE)" in src  # the tiled matmul
    assert "def run(X, y, W1, b1, W2, b2, ws, check):" in src
    compile(src, "<cuda>", "exec")


def test_updates_that_cannot_be_written_in_place_are_copied():
    """p's new value comes from a matmul (not a fused loop), and q's is also an
    output: both are computed into buffers and copied into the held arrays."""
    b = gc.Builder("copies")
    x, p, q = b.input("x", (3, 3)), b.param("p", (2, 3)), b.param("q", (2, 3))
    q_new = gc.tanh(q + 1.0, name="q_new")
    graph = b.output(s=gc.sum(p * q), q_new=q_new)
    graph.set_update(p.node, (p @ x).node)
    graph.set_update(q.node, q_new.node)
    rng = np.random.default_rng(11)
    state = {"p": rng.standard_normal((2, 3)), "q": rng.standard_normal((2, 3))}
    runs = {be: gc.compile(graph, be).hold(state) for be in ("python", "cuda")}
    for _ in range(2):
        x = rng.standard_normal((3, 3))
        want, got = runs["python"](x=x), runs["cuda"](x=x)
        for name in want:
            assert_close(got[name], want[name], "float64", name)
    for name in state:
        assert_close(runs["cuda"].held[name], runs["python"].held[name], "float64", name)
