"""Careless use (issue 13): every misuse gets one clear graphc error that names
the culprit, and a damaged cache heals itself.  The hostile-file half of the
issue is tested elsewhere; training misuse is in tests/train/test_fit.py and
tests/train/test_checkpoint.py.

Oracles: NumPy by hand (losses), the numba and CUDA kernels' own label check
(the interpreter and python backend must say the same), and a fresh process
(the damaged cache)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.frontend import dsl as F
from graphc.errors import CallError, GraphcError, ShapeError
from graphc.train.losses import BinaryCrossEntropy, MeanSquaredError

REPO = Path(__file__).resolve().parents[1]


# ----- losses compare element by element -------------------------------------------------
LOSSES = [(gc.mse, "mse"), (gc.bce_loss, "bce_loss"), (MeanSquaredError(), "mse"), (BinaryCrossEntropy(), "bce_loss")]
MISMATCHED = [((4, 1), (4,)), ((4,), (4, 1)), ((3,), (4,)), ((2, 3), (3,)), (("N", 1), ("N",)), ((), (4,))]


@pytest.mark.parametrize("loss, name", LOSSES, ids=["mse", "bce_loss", "train.mse", "train.bce"])
@pytest.mark.parametrize("pred_shape, target_shape", MISMATCHED, ids=str)
def test_a_loss_refuses_prediction_and_target_of_different_shapes(loss, name, pred_shape, target_shape):
    fmt = lambda s: "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"  # noqa: E731
    with pytest.raises(ShapeError) as err:
        gc.trace(lambda p, t: loss(p, t), pred_shape, target_shape)
    message = str(err.value)
    assert message.startswith(f"{name}: prediction {fmt(pred_shape)} and target {fmt(target_shape)} differ")
    assert "broadcast_to" in message  # says how to mean it


@pytest.mark.parametrize("labels, match", [((4, 1), r"labels must have rank 1, got shape \(4, 1\)"),
                                           ((5,), r"logits \(4, 3\) and labels \(5,\) differ in batch size")])
def test_cross_entropy_refuses_labels_that_do_not_fit_the_logits(labels, match):
    with pytest.raises(ShapeError, match=r"\(softmax_cross_entropy\): " + match):
        gc.trace(lambda z, y: gc.cross_entropy(z, y), (4, 3), gc.Input(labels, "int64"))


@pytest.mark.parametrize("table, idx, idx_dtype, error, match", [
    ((4, 3), (5,), "int64", ShapeError, r"table \(4, 3\) and indices \(5,\) differ in batch size"),
    ((4, 3), (4, 1), "int64", ShapeError, r"indices must have rank 1, got shape \(4, 1\)"),
    ((4,), (4,), "int64", ShapeError, r"table must have rank 2, got shape \(4,\)"),
    ((4, 3), (4,), "float64", gc.DTypeError, r"indices must be integers, got float64")])
def test_gather_refuses_indices_that_do_not_fit_the_table(table, idx, idx_dtype, error, match):
    """gather and cross-entropy share one rule (a label per row of a table); each names its own operands."""
    with pytest.raises(error, match=r"\(gather\): " + match):
        gc.trace(lambda x, i: gc.gather(x, i), table, gc.Input(idx, idx_dtype))


def test_the_issue_case_no_longer_averages_sixteen_pairs():
    # (4,1) against (4,) used to broadcast to (4,4): the MSE of identical numbers came out 2.5
    values = np.array([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ShapeError, match=r"mse: prediction \(4, 1\) and target \(4,\)"):
        gc.trace(lambda p, t: gc.mse(p, t), (4, 1), (4,))
    same = gc.trace(lambda p, t: gc.mse(p, gc.reshape(t, (4, 1))), (4, 1), (4,))
    assert float(gc.evaluate(same, p=values[:, None], t=values).outputs.popitem()[1]) == 0.0


@pytest.mark.parametrize("loss, ref", [
    (gc.mse, lambda p, t: np.mean((p - t) ** 2)),
    (gc.bce_loss, lambda z, y: np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))),
])
def test_an_explicit_broadcast_is_the_users_choice_and_is_computed(loss, ref):
    g = gc.trace(lambda p, t: loss(p, F.broadcast_to(t, (4, 3))), (4, 3), (4, 1))
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 1))
    out = gc.evaluate(g, p=p, t=t).outputs.popitem()[1]
    np.testing.assert_allclose(out, ref(p, np.broadcast_to(t, (4, 3))), rtol=1e-12)


def test_a_number_target_needs_no_broadcast():
    g = gc.trace(lambda p: gc.mse(p, 1.0), (3,))
    assert float(gc.evaluate(g, p=np.array([1.0, 2.0, 3.0])).outputs.popitem()[1]) == pytest.approx(5 / 3)


# ----- labels: one check, one message, every backend ----------------------------------
def _ce(z, y):
    loss = gc.cross_entropy(z, y)
    return loss


@pytest.fixture(scope="module")
def ce_graph():
    return gc.trace(_ce, ("N", 3), gc.Input(("N",), "int64"), name="classes")


@pytest.fixture(scope="module")
def compiled_ce(ce_graph, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # one numba compile for the module, in a cache of its own
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("label_cache")))
        yield {backend: gc.compile(ce_graph, backend) for backend in ("python", "numba", "cuda")}


def _label_error(fn):
    with pytest.raises(GraphcError) as err:
        fn()
    assert type(err.value) is CallError
    return str(err.value)


@pytest.mark.parametrize("labels", [[0, 1, -1, 2], [0, 3, 1, 2], [7, 0, 0, 0], [-5]])
def test_a_label_out_of_range_is_the_same_error_in_the_interpreter_and_on_every_backend(ce_graph, compiled_ce, labels):
    y = np.array(labels, dtype="int64")
    z = np.zeros((len(y), 3))
    expected = "graph 'classes': softmax_cross_entropy 'softmax_cross_entropy_1': a label is outside [0, 3)"
    messages = {"interpreter": _label_error(lambda: gc.evaluate(ce_graph, z=z, y=y))}
    for backend, compiled in compiled_ce.items():
        messages[backend] = _label_error(lambda: compiled(z=z, y=y))
    assert messages == {k: expected for k in messages}


def test_labels_in_range_still_give_the_reference_loss(ce_graph, compiled_ce):
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((5, 3)), np.array([0, 2, 1, 2, 0])
    ref = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(5), y])
    assert float(gc.evaluate(ce_graph, z=z, y=y)["loss"]) == pytest.approx(ref, rel=1e-12)
    for compiled in compiled_ce.values():
        assert float(compiled(z=z, y=y)["loss"]) == pytest.approx(ref, rel=1e-12)


def test_gather_indices_are_checked_like_labels():
    g = gc.trace(lambda x, i: gc.sum(gc.gather(x, i), name="total"), (2, 3), gc.Input((2,), "int64"), name="pick")
    x = np.ones((2, 3))
    for bad in ([0, -1], [3, 0]):
        expected = "graph 'pick': gather 'gather_1': a label is outside [0, 3)"
        assert _label_error(lambda: gc.evaluate(g, x=x, i=np.array(bad))) == expected
        assert _label_error(lambda: gc.compile(g)(x=x, i=np.array(bad))) == expected


def test_graphc_check_reports_the_label_not_differing_gradients(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""
        import graphc as gc
        def net(X, W, y):
            return gc.cross_entropy(X @ W, y)
        graph = gc.trace(net, (4, 2), gc.Param((2, 3)), gc.Input((4,), "int64"))
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "graphc", "check", "--python", str(model), "--feed", "y=[0,1,-1,2]"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "softmax_cross_entropy" in errors[0] and "a label is outside [0, 3)" in errors[0]
    assert "differ" not in out.stdout + out.stderr


# ----- trace and the cache directory -------------------------------------------------------
def test_trace_refuses_a_value_of_another_graph():
    other = gc.trace(lambda a: gc.exp(a), (2,), name="other")
    stray = F.Value(other, other.outputs[next(iter(other.outputs))])
    with pytest.raises(GraphcError, match=r"trace\(f\): output 0 belongs to graph 'other', not to this trace"):
        def f(x):
            return stray
        gc.trace(f, (2,))


@pytest.mark.parametrize("make", ["file", "file_parent"])
def test_a_cache_dir_that_is_a_file_is_one_clear_error(tmp_path, monkeypatch, make):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    root = blocker if make == "file" else blocker / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(root))
    with pytest.raises(GraphcError, match=f"cannot use the graphc cache directory '{root}'.*GRAPHC_CACHE_DIR"):
        gc.compile(gc.trace(lambda a: gc.exp(a), (2,)))


# ----- a damaged cache heals itself, in a fresh process ----------------------------------
CHILD = """
import numpy as np, graphc as gc
g = gc.trace(lambda p, t: gc.mse(p, t, name="loss"), (4,), (4,), name="heal")
c = gc.compile(g, "numba")
print("loss", float(c(p=np.arange(4.0), t=np.zeros(4))["loss"]))
"""


def _fresh_process(cache):
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRAPHC_CACHE_DIR": str(cache)}
    env.pop("PYTHONWARNINGS", None)
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loss 3.5"  # (0 + 1 + 4 + 9) / 4
    return [line for line in out.stderr.splitlines() if line.strip()]


def _truncate(path):
    path.write_bytes(path.read_bytes()[:17])


def _garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(2000))


def _not_utf8(path):
    path.write_bytes(b"\xff\xfe\x00 not python, not UTF-8 \xc3\x28")


# numba's index and data files, and our module; each damage gets a fresh process (~5 s each)
DAMAGE = [("__pycache__/*.nbi", _truncate), ("__pycache__/*.nbc", _garbage), ("graphc_*.py", _not_utf8)]


def test_a_truncated_or_garbage_cache_entry_is_rebuilt_with_one_warning_line(tmp_path):
    cache = tmp_path / "cache"
    assert _fresh_process(cache) == []  # builds the cache
    folder = cache / "numba"
    for pattern, damage in DAMAGE:
        files = sorted(folder.glob(pattern))
        assert files, pattern
        for f in files:
            damage(f)
        lines = _fresh_process(cache)
        assert len(lines) == 1, (pattern, damage.__name__, lines)
        assert "CacheWarning" in lines[0] and str(folder) in lines[0] and "rebuilt" in lines[0]
    assert _fresh_process(cache) == []  # healed: no warning, no manual step


def test_a_cache_failure_on_the_first_call_reruns_from_the_held_state_before_it(monkeypatch):
    """Kernels that ran before the damaged one may have updated held state; the
    rerun must start from the state as it was (else an update would apply twice)."""
    g = gc.trace(lambda x, w: gc.sum(x * w, name="total"), (3,), gc.Param((3,)), name="held")
    compiled = gc.compile(g, "numba").hold({"w": np.array([1.0, 2.0, 3.0])})  # a backend with a kernel cache
    module_file = Path(compiled.module.__file__)
    (module_file.parent / "__pycache__").mkdir(exist_ok=True)
    index = module_file.parent / "__pycache__" / f"{module_file.stem}.run-1.py311.nbi"
    index.write_bytes(b"\x80\x04trunc")
    real_run, calls = compiled._run, []
    fake_loader = compile("def load(): raise EOFError('Ran out of input')", "/x/numba/core/caching.py", "exec")
    namespace = {}
    exec(fake_loader, namespace)  # noqa: S102 - a frame that looks like numba's cache loader

    def run_after_a_partial_update(args, dims):
        calls.append(1)
        if len(calls) == 1:
            compiled._held["w"][...] += 100.0  # a first kernel updated held state ...
            namespace["load"]()  # ... then the next one's cache entry was unreadable
        return real_run(args, dims)

    monkeypatch.setattr(compiled, "_run", run_after_a_partial_update)
    with pytest.warns(gc.runtime.CacheWarning, match=f"damaged cache entry .*EOFError.* in {module_file.parent}"):
        out = compiled(x=np.ones(3))
    assert float(out["total"]) == 6.0 and len(calls) == 2 and not index.exists()
    np.testing.assert_array_equal(compiled.held["w"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="not a cache failure"):  # other errors pass through, untouched
        monkeypatch.setattr(compiled, "_run", lambda args, dims: (_ for _ in ()).throw(ValueError("not a cache failure")))
        compiled._warm = False
        compiled(x=np.ones(3))
