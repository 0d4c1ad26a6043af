"""The Python emitter and the runtime that loads emitted code from the cache dir."""
import re
import traceback
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.python.emit import emit
from graphc.transform.rewrite import live_nodes
from tests.conftest import lecture

RNG = np.random.default_rng(5)
LINE = re.compile(r"^    (?P<lhs>\w+) = (?P<expr>.+?)  # (?P<ir>.+)$")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    root = tmp_path / "graphc-cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(root))
    return root


def mlp(x, y, W1, b1, W2, b2):
    h = gc.tanh(x @ W1 + b1)
    logits = h @ W2 + b2
    loss = gc.cross_entropy(logits, y)
    return loss


def mlp_graph():
    return gc.grad(gc.trace(mlp, ("N", 3), gc.Input(("N",), "int64"), gc.Param((3, 4)), gc.Param((4,)),
                            gc.Param((4, 2)), gc.Param((2,))))


def mlp_feeds(n=5):
    return dict(x=RNG.standard_normal((n, 3)), y=RNG.integers(0, 2, n), W1=RNG.standard_normal((3, 4)),
                b1=RNG.standard_normal(4), W2=RNG.standard_normal((4, 2)), b2=RNG.standard_normal(2))


def body_lines(source):
    return [m for m in map(LINE.match, source.splitlines()) if m]


def test_lecture_source_reads_like_the_lecture():
    source = gc.compile(gc.grad(gc.trace(lecture, (), (), (), ()))).source
    assert "def run(x1, x2, x3, x4):" in source
    for line in ["    a = x1 + x2  # a:f64[] = add x1 x2",
                 "    b = a * x3  # b:f64[] = mul a x3",
                 "    f = b - x4  # f:f64[] = sub b x4",
                 "    g_x3 = g_f * a  # g_x3:f64[] = mul g_f a",
                 "    g_a = g_f * x3  # g_a:f64[] = mul g_f x3",
                 "    return {'f': f, 'g_x1': g_a, 'g_x2': g_a, 'g_x3': g_x3, 'g_x4': g_x4}"]:
        assert line in source.splitlines(), line


def test_one_line_per_node_named_after_the_node_with_ir_comment():
    gg = mlp_graph()
    compiled = gc.compile(gg)
    lines = body_lines(compiled.source)
    by_ir = {}
    for m in lines:
        by_ir.setdefault(m["ir"], []).append(m)
    emitted = 0
    live = live_nodes(gg, gg.outputs.values())
    for n in gg.toposort():
        data = gg.node(n)
        if n not in live:  # e.g. local-gradient records that no output needs
            assert gg.node_text(n) not in by_ir
            continue
        if data["op"] in ("input", "param"):
            assert gg.node_text(n) not in by_ir
            continue
        inlined = data["op"] == "const" and np.ndim(data["attrs"]["value"]) == 0 and data["name"].startswith("const_")
        if inlined:
            continue
        (m,) = by_ir[gg.node_text(n)]  # exactly one line, carrying the IR node as its comment
        assert m["lhs"] == data["name"]
        emitted += 1
    assert emitted == len(lines)


def test_gradients_are_named_g_name():
    compiled = gc.compile(mlp_graph())
    assert compiled.output_names == ["loss", "g_W1", "g_b1", "g_W2", "g_b2"]
    lhs = {m["lhs"] for m in body_lines(compiled.source)}
    assert {"g_W1", "g_b1", "g_W2", "g_b2", "g_loss", "g_h", "g_logits"} <= lhs
    assert "'g_W1': g_W1" in compiled.source


def test_forward_section_then_backward_section():
    gg = mlp_graph()
    source = gc.compile(gg).source
    lines = source.splitlines()
    fwd, bwd = lines.index("    # ---- forward ----"), lines.index("    # ---- backward ----")
    assert fwd < bwd
    phase = {gg.node_text(n): gg.node(n)["phase"] for n in gg.nx.nodes}
    for i, line in enumerate(lines):
        m = LINE.match(line)
        if m:
            assert (fwd < i < bwd) == (phase[m["ir"]] == "forward"), line
    # a forward-only graph has no backward section
    assert "# ---- backward ----" not in gc.compile(gc.trace(lecture, (), (), (), ())).source


def test_symbolic_dim_is_bound_from_the_first_input_carrying_it():
    source = gc.compile(mlp_graph()).source
    assert "    N = x.shape[0]" in source.splitlines()


def test_compiled_values_match_numpy_reference():
    feeds = mlp_feeds()
    out = gc.compile(mlp_graph())(feeds)
    x, y, W1, b1, W2, b2 = (feeds[k] for k in ("x", "y", "W1", "b1", "W2", "b2"))
    n = len(y)
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    loss = -np.log(p[np.arange(n), y]).mean()
    dz = (p - np.eye(2)[y]) / n
    dh = dz @ W2.T * (1 - h * h)
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-13)
    np.testing.assert_allclose(out["g_W2"], h.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(out["g_b2"], dz.sum(0), rtol=1e-12)
    np.testing.assert_allclose(out["g_W1"], x.T @ dh, rtol=1e-12)
    np.testing.assert_allclose(out["g_b1"], dh.sum(0), rtol=1e-12)


def test_source_is_loaded_from_a_file_under_the_cache_dir(cache):
    compiled = gc.compile(gc.trace(lecture, (), (), (), ()))
    path = Path(compiled.path)
    assert path.is_file()
    assert path.is_relative_to(cache)
    assert path.suffix == ".py"
    assert path.read_text() == compiled.source
    assert compiled.module.__file__ == str(path)
    assert compiled.source == emit(compiled.graph)
    # same graph, same content hash, same file
    assert gc.compile(gc.trace(lecture, (), (), (), ())).path == compiled.path


def test_each_cache_dir_gets_its_own_file(tmp_path, monkeypatch):
    paths = []
    for sub in ("one", "two"):
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / sub))
        compiled = gc.compile(gc.trace(lecture, (), (), (), ()))
        assert Path(compiled.path).is_relative_to(tmp_path / sub)
        assert Path(compiled.path).read_text() == compiled.source
        assert float(compiled(x1=5.0, x2=4.0, x3=3.0, x4=2.0)["f"]) == 25.0
        paths.append(compiled.path)
    assert paths[0] != paths[1]


def test_a_deleted_cache_file_is_rebuilt(cache):
    compiled = gc.compile(gc.trace(lecture, (), (), (), ()))
    Path(compiled.path).unlink()
    again = gc.compile(gc.trace(lecture, (), (), (), ()))
    assert Path(again.path).read_text() == again.source


def test_runtime_error_traceback_points_into_the_generated_file():
    def pick(x, idx):
        picked = gc.gather(x, idx)
        total = gc.sum(picked)
        return total
    compiled = gc.compile(gc.trace(pick, ("N", 3), gc.Input(("N",), "int64")))
    assert float(compiled(x=np.eye(3) * 2.0, idx=np.array([0, 1, 2]))["total"]) == 6.0
    with pytest.raises(gc.CallError, match=r"gather 'picked': a label is outside \[0, 3\)") as e:
        compiled(x=np.ones((2, 3)), idx=np.array([0, 7]))  # index 7 is out of range for 3 columns
    frames = traceback.extract_tb(e.value.__cause__.__traceback__)  # the reference's own error, from the emitted line
    generated = [f for f in frames if f.filename == compiled.path]
    assert len(generated) == 1
    # the frame shows the emitted line, IR comment included
    assert generated[0].name == "run"
    assert generated[0].line.startswith("picked = ref.gather(x, idx)  # picked:f64[N] = gather x idx")
    assert compiled.source.splitlines()[generated[0].lineno - 1].strip() == generated[0].line


def test_names_are_made_valid_python():
    b = gc.Builder("odd names")
    x = b.input("np", (2,))        # clashes with the numpy import
    y = b.input("run", (2,))       # clashes with the entry point
    s = gc.add(x, y, name="layer.0")
    b.output(lambda_=gc.exp(s, name="lambda"))
    compiled = gc.compile(b.graph)
    assert "def run(np_, run_):" in compiled.source
    assert "    layer_0 = np_ + run_  # layer.0:f64[2] = add np run" in compiled.source
    assert "    lambda_ = np.exp(layer_0)" in compiled.source
    xa, ya = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    np.testing.assert_allclose(compiled(np=xa, run=ya)["lambda_"], np.exp(xa + ya))


def test_scalar_constants_are_inlined():
    compiled = gc.compile(gc.trace(lambda x: x * 2.5 + 1.0, (2,), name="affine"))
    assert "np.float64(2.5)" in compiled.source and "np.float64(1.0)" in compiled.source
    assert not [m for m in body_lines(compiled.source) if m["lhs"].startswith("const_")]
    np.testing.assert_allclose(next(iter(compiled(x=np.array([2.0, 4.0])).values())), [6.0, 11.0])


def test_array_constants_and_float32():
    b = gc.Builder(dtype="float32")
    x = b.input("x", (3,))
    b.output(out=x * b.const([1.0, 2.0, 3.0], name="scale"))
    compiled = gc.compile(b.graph)
    # an array constant is a module global the loader hands over, never a printed list
    assert "K_scale = CONSTANTS['K_scale']" in compiled.source and "[1.0, 2.0, 3.0]" not in compiled.source
    assert "    scale = K_scale.copy()  # scale:f32[3] = const[value=array(3,)]" in compiled.source
    out = compiled(x=np.ones(3, np.float32))["out"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])


def test_outputs_subset_and_dead_nodes_are_not_emitted():
    b = gc.Builder()
    x = b.input("x", (2,))
    b.output(keep=gc.exp(x, name="kept"), drop=gc.tanh(x, name="dropped"))
    compiled = gc.compile(b.graph, outputs=["keep"])
    assert "kept = np.exp(x)" in compiled.source and "dropped" not in compiled.source
    assert list(compiled(x=np.zeros(2))) == ["keep"]


def test_header_and_repr():
    compiled = gc.compile(gc.trace(lecture, (), (), (), ()))
    assert compiled.source.startswith('"""NumPy code for one graph, emitted by graphc')
    assert "GRAPH = 'lecture'" in compiled.source
    assert "INPUTS = ('x1', 'x2', 'x3', 'x4')" in compiled.source
    assert "OUTPUTS = ('f',)" in compiled.source
    assert compiled.input_names == ["x1", "x2", "x3", "x4"]
    assert "backend=python" in repr(compiled) and compiled.path in repr(compiled)
