"""Edge semantics of every op, forward and backward, against an independent oracle.

For each op in the table (leaves skipped) and each of its edge cases (0-d
operands, zero-size dims, rank 6 with broadcasting, +-inf, nan, +-0 and the
kinks; see tests/ops/edge_cases.py), `gc.evaluate` and the python backend
must give PyTorch float64's values and gradients -- or, without torch, the
op's NumPy reference and float64 central differences (finite cases only).
The numba CPU and CUDA (simulator) backends are checked against `gc.evaluate`
on a few family graphs at the bottom, so that few numba graphs are compiled.
The conventions themselves are written in docs/semantics.md.
"""
import functools

import numpy as np
import pytest

import graphc as gc
from graphc.frontend import dsl as dsl
from graphc.check.gradcheck import gradcheck
from graphc.ir.ops import table
from graphc.ir.ops.registry import FLOATS
from tests.ops.edge_cases import TORCH, cases, unspecified

OPS = [op for op in table() if op.kind != "leaf"]
PARAMS = [pytest.param(op, case, id=f"{op.name}-{case.name}") for op in OPS for case in cases(op)]


def test_every_op_has_edge_cases():
    """A new op must come with edge cases and a PyTorch spelling (user ops are exempt)."""
    missing = [op.name for op in OPS if op.expr is None and (not cases(op) or op.name not in TORCH)]
    assert not missing, f"add edge cases and a TORCH entry for {missing} in tests/ops/edge_cases.py"


# ----- building ---------------------------------------------------------------------
def build(op, case):
    """y = op(x0..xk); loss = sum(y * w) for a float y, so one graph gives value and gradients."""
    b = gc.Builder(f"edge_{op.name}")
    xs = [b.input(f"x{i}", a.shape, a.dtype.name) for i, a in enumerate(case.arrays)]
    y = dsl.apply(op.name, *xs, name="y", **case.attrs)
    if y.dtype not in FLOATS:
        return b.output(y=y), None
    # w is fed, not a constant: a zero-size constant would test the emitters' literals, not the op
    w = weights(y.shape)
    loss = gc.sum(gc.cast(y, "float64") * b.input("w", w.shape), name="loss")
    return b.output(loss, y=y), w


def weights(shape):
    return np.random.default_rng(7).uniform(0.5, 1.5, shape)


def wrt(op, case):
    return [f"x{i}" for i in op.differentiable if case.arrays[i].dtype.name in FLOATS]


def feeds_of(case, w=None):
    feeds = {f"x{i}": a for i, a in enumerate(case.arrays)}
    return feeds if w is None else {**feeds, "w": w}


def run_graphc(graph, feeds, backend):
    if backend == "evaluate":
        return gc.evaluate(graph, feeds).outputs
    return gc.compile(graph, backend=backend)(feeds)


# ----- the oracle -----------------------------------------------------------------------
def torch_reference(op, case, w, names):
    """PyTorch float64: y, and d sum(y * w) / d x_i for each differentiable float operand."""
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(a, requires_grad=f"x{i}" in names) for i, a in enumerate(case.arrays)]
    y = TORCH[op.name](*ts, **case.attrs)
    out = {"y": y.detach().numpy()}
    if names:
        loss = (y.to(torch.float64) * torch.tensor(w)).sum()
        grads = torch.autograd.grad(loss, [ts[int(n[1:])] for n in names], allow_unused=True)
        for n, g in zip(names, grads):
            out[f"g_{n}"] = np.zeros(case.arrays[int(n[1:])].shape) if g is None else g.numpy()
    return out


def assert_same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=what)
        # inf and -0.0 are part of the contract where the oracle makes them
        assert np.array_equal(np.signbit(got[np.isinf(want)]), np.signbit(want[np.isinf(want)])), what
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("backend", ["evaluate", "python"])
@pytest.mark.parametrize("op,case", PARAMS)
def test_edge_case_matches_torch(op, case, backend):
    graph, w = build(op, case)
    names = wrt(op, case) if w is not None else []
    grad_graph = gc.grad(graph, loss="loss", wrt=names) if names else None
    want = torch_reference(op, case, w, names)
    got = run_graphc(graph, feeds_of(case, w), backend)
    skip = unspecified(op, case, np.shape(want["y"]))
    assert_same(got["y"][~skip], want["y"][~skip], f"{op.name} {case.name}: forward")
    if skip.any():  # there the convention is NumPy's value
        with np.errstate(all="ignore"):
            numpy_y = np.asarray(op.numpy_impl(*case.arrays, **case.attrs))
        assert_same(got["y"][skip], numpy_y[skip], f"{op.name} {case.name}: forward where torch differs")
    if names:
        grads = run_graphc(grad_graph, feeds_of(case, w), backend)
        for n in names:
            g, gw = np.asarray(grads[f"g_{n}"]), want[f"g_{n}"]
            assert g.shape == gw.shape, f"{op.name} {case.name}: gradient of {n} has shape {g.shape}, want {gw.shape}"
            keep = ~skip if skip.shape == gw.shape else np.ones(gw.shape, dtype=bool)
            if skip.any() and skip.shape != gw.shape:  # a row with a NaN: its whole gradient is unspecified
                keep = ~np.broadcast_to(np.any(skip), gw.shape)
            assert_same(g[keep], gw[keep], f"{op.name} {case.name}: gradient of {n}")


@pytest.mark.parametrize("op,case", PARAMS)
def test_edge_case_without_torch(op, case):
    """The fallback oracle, run always: NumPy's reference forward, finite differences backward."""
    graph, w = build(op, case)
    got = gc.evaluate(graph, feeds_of(case, w)).outputs["y"]
    with np.errstate(all="ignore"):
        want = op.numpy_impl(*case.arrays, **case.attrs)
    assert_same(got, want, f"{op.name} {case.name}: forward vs numpy_impl")
    names = wrt(op, case)
    if names and case.smooth:
        assert gradcheck(graph, feeds_of(case, w), wrt=names, loss="loss")


# ----- numba CPU and CUDA: a few family graphs, each against gc.evaluate ----------------------
# numba compiles cost seconds per op, so each edge kind gets ONE graph over the
# ops where that kind has bitten a backend (issue 12); the python backend and
# the interpreter above cover every op on every case.
EMPTY = ("empty", "empty_reduced", "empty_kept", "empty_all", "empty_batch", "empty_axis",
         "K0", "N0", "M0", "into_zero", "into_zero_rank6")
ELEMENTWISE = tuple(op.name for op in OPS if op.kind in ("elementwise", "compare"))
FAMILIES = {  # name: (ops, case names)
    "scalar_elementwise": (ELEMENTWISE, ("0d", "0d_and_vector")),  # 0 itself: in "special"
    "scalar_structural": (tuple(op.name for op in OPS if op.name not in ELEMENTWISE), ("0d", "to_0d")),
    "special": (("abs", "relu", "maximum", "sign", "max", "logsumexp", "softmax"),
                ("special", "kinks")),
    "special_domain": (("log", "sqrt", "pow"), ("special", "kinks")),
    "pow_at_zero": (("pow",), ("base0",)),
    "empty": (("mul", "exp", "broadcast_to", "reshape", "softmax_cross_entropy", "gather", "max", "transpose"),
              EMPTY),
    "empty_matmul": (("matmul",), EMPTY),
    "empty_reductions": (("sum", "logsumexp", "softmax"), ("empty_reduced", "empty_all", "empty_axis")),
    "rank6": (("add", "sum"), ("rank6",)),
}
# The CUDA simulator runs kernels with Python's math module, which raises on log(0), log(-1) and
# sqrt(-1) where a GPU (IEEE) gives -inf or nan: strict, so a change shows as XPASS.
EMITTER_BUGS = {
    ("cuda", "empty_reductions"): "emitter: logsumexp / softmax over an empty axis call math.log(0) "
                                  "(simulator: math domain error)",
    ("cuda", "special_domain"): "emitter: math.log / math.sqrt / ** of a negative raise on the CUDA simulator "
                                "where IEEE gives nan",
}


def family_graph(kind):
    """The family's ops on the family's cases, in one graph with its gradients.

    Returns (grad graph, feeds).  Input names are <op>_<case>_<i>.
    """
    names, kinds = FAMILIES[kind]
    b = gc.Builder(f"edge_{kind}")
    feeds, terms, wrt_names = {}, [], []
    for op in OPS:
        if op.expr is not None or (names is not None and op.name not in names):
            continue
        for case in (c for c in cases(op) if c.name in kinds):
            tag = f"{op.name}_{case.name}"
            xs = [b.input(f"{tag}_{i}", a.shape, a.dtype.name) for i, a in enumerate(case.arrays)]
            feeds.update({f"{tag}_{i}": a for i, a in enumerate(case.arrays)})
            y = dsl.apply(op.name, *xs, name=f"y_{tag}", **case.attrs)
            b.graph.set_output(y.node)
            diff = [f"{tag}_{i}" for i in op.differentiable if case.arrays[i].dtype.kind == "f"]
            if y.dtype in FLOATS and diff:
                feeds[f"w_{tag}"] = weights(y.shape)
                term = y * b.input(f"w_{tag}", y.shape)
                terms.append(gc.sum(term) if y.ndim else term)  # a 0-d sum is a bug of its own (scalar_structural)
                wrt_names += diff
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    b.graph.set_output(loss.node, "loss")
    return gc.grad(b.graph.validate(), loss="loss", wrt=wrt_names), feeds


COMPILED = [pytest.param(backend, kind, id=f"{backend}-{kind}",
                         marks=[pytest.mark.xfail(strict=True, reason=EMITTER_BUGS[backend, kind])]
                         if (backend, kind) in EMITTER_BUGS else [])
            for backend in ("numba", "cuda") for kind in FAMILIES]


@pytest.mark.parametrize("backend,kind", COMPILED)
def test_compiled_backends_match_evaluate(backend, kind):
    graph, feeds = family_graph(kind)
    want = gc.evaluate(graph, feeds).outputs
    got = gc.compile(graph, backend=backend)(feeds)
    assert set(got) == set(want)
    for name in want:
        assert_same(got[name], want[name], f"{backend} {kind}: output {name}")


# ----- +-inf and nan as constants (issue 12: the python backend wrote `inf`) -----------------
@pytest.mark.parametrize("backend", [
    "evaluate",
    "python",
    "numba", "cuda"])
def test_infinite_and_nan_constants(backend):
    def f(x):
        lo = gc.maximum(x, float("-inf"))      # -inf is the identity of maximum
        hi = gc.minimum(x * 2.0, np.inf)       # so is +inf of minimum
        return {"lo": lo, "hi": hi, "n": x + np.nan, "s": gc.sum(lo * hi)}
    g = gc.grad(gc.trace(f, (4,)), loss="s", wrt=["x"])
    x = np.array([-1.5, 0.0, 2.0, np.inf])
    out = run_graphc(g, {"x": x}, backend)
    assert_same(out["lo"], x, "maximum with -inf")
    assert_same(out["hi"], 2.0 * x, "minimum with inf")
    assert_same(out["n"], np.full(4, np.nan), "plus nan")
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    (torch.maximum(t, torch.tensor(-np.inf)) * torch.minimum(2 * t, torch.tensor(np.inf))).sum().backward()
    assert_same(out["g_x"], t.grad.numpy(), "gradient")


# ----- max over an axis that is empty only at run time (a dim bound to 0) ---------------------
@functools.cache
def run_time_empty_graph():
    b = gc.Builder("run_time_empty")
    x = b.input("x", ("N", 4))
    return b.output(m=gc.max(x, axis=0, name="colmax"), r=gc.max(x, axis=1), l=gc.logsumexp(x, axis=0))


@pytest.mark.parametrize("backend", ["evaluate", "python", "numba", "cuda"])
def test_max_over_an_axis_bound_to_zero_is_one_call_error(backend):
    """docs/semantics.md: a max over an empty axis has no value (NumPy raises a raw
    ValueError, PyTorch an IndexError, a numba loop would give -inf).  Every backend
    raises the same CallError naming node, op and shape before running anything."""
    with pytest.raises(gc.CallError, match=r"node 'colmax' \(max\): max over axis 0 of \(N, 4\) with N = 0"):
        run_graphc(run_time_empty_graph(), {"x": np.zeros((0, 4))}, backend)


def test_max_over_a_kept_axis_bound_to_zero_is_fine():
    """With N = 0 only the reduced axis matters: max over axis 1 of (0, 4) is empty, not an error,
    and logsumexp over the empty axis 0 is -inf (its identity), on gc.evaluate and the python backend."""
    b = gc.Builder("run_time_empty_ok")
    x = b.input("x", ("N", 4))
    graph = b.output(r=gc.max(x, axis=1), l=gc.logsumexp(x, axis=0), s=gc.softmax(x, axis=0))
    for out in (gc.evaluate(graph, x=np.zeros((0, 4))).outputs, gc.compile(graph)(x=np.zeros((0, 4)))):
        assert_same(out["r"], np.zeros((0,)), "max over the kept axis")
        assert_same(out["l"], np.full(4, -np.inf), "logsumexp over an empty axis")
        assert_same(out["s"], np.zeros((0, 4)), "softmax over an empty axis")
