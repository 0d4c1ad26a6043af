"""One story for each op's backends: native, a fallback to the NumPy reference, or
a clear refusal -- never a bare KeyError.  The example ops of
docs/adding-an-op.md are followed through every backend."""
import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.backends import BACKEND_NAMES, coverage, coverage_table
from graphc.errors import GraphcError
from graphc.ir.ops.registry import OPS
from tests.codegen.astcheck import check_bound

# The built-in ops the python backend computes by calling the op's NumPy reference;
# every other built-in op is spelled natively by every backend.
PYTHON_FALLBACK = {"bce_with_logits", "count", "elu", "erf", "gather", "leaky_relu", "log_softmax", "logsumexp",
                   "one_hot", "sigmoid", "softmax", "softmax_cross_entropy"}
BUILT_IN = {"abs", "add", "bce_with_logits", "broadcast_to", "cast", "const", "count", "div", "elu", "eq", "erf",
            "exp", "gather", "ge", "gt", "input", "le", "leaky_relu", "log", "log_softmax", "logsumexp", "lt", "matmul",
            "max", "maximum", "minimum", "mul", "ne", "neg", "one_hot", "param", "pow", "relu", "reshape", "sigmoid",
            "sign", "softmax", "softmax_cross_entropy", "softplus", "sqrt", "sub", "sum", "tanh", "transpose", "where"}


def test_coverage_table_of_the_built_in_ops():
    table = coverage_table()
    assert set(table) == set(OPS)
    for op in sorted(BUILT_IN & set(OPS)):
        expected = {"python": "fallback" if op in PYTHON_FALLBACK else "native", "numba": "native", "cuda": "native"}
        assert table[op] == expected, op
    for op, row in table.items():  # ops added later still get one of the three stories
        assert set(row) == set(BACKEND_NAMES) and set(row.values()) <= {"native", "fallback", "refused"}, op
        assert row["python"] != "refused" and row["numba"] != "refused", op


def test_coverage_of_unknown_names_is_a_clear_error():
    with pytest.raises(GraphcError, match="unknown op"):
        coverage("no_such_op", "numba")
    with pytest.raises(GraphcError, match="unknown backend"):
        coverage("add", "tpu")


# ----- docs/adding-an-op.md's examples, registered for this module only ----------------------
@pytest.fixture(scope="module")
def doc_ops():
    from graphc.ir import shapes as S
    from graphc.ir.ops.common import first_float
    from graphc.ir.ops.elementwise import elementwise
    from graphc.ir.ops.tensor import _reduce_shape
    from graphc.ir.ops.registry import OpDef, register

    before = set(OPS)
    def _sumsq_vjp(ctx, g):
        F = ctx.F
        keep = S.reduced(ctx.x[0].shape, ctx.attrs["axes"], True)
        g = F.broadcast_to(F.reshape(g, keep), ctx.x[0].shape)
        return [2.0 * ctx.x[0] * g]

    elementwise(
        "softsign", 1,
        numpy_impl=lambda a: a / (1 + np.abs(a)),
        sympy_scalar=lambda a: a / (1 + sympy.Abs(a)),
        derivs=lambda c, i: 1.0 / ((1.0 + c.F.abs(c.x[0])) * (1.0 + c.F.abs(c.x[0]))),
        doc="a / (1 + |a|)")
    register(OpDef(
        name="sumsq", arity=1, kind="reduce",
        shape_rule=_reduce_shape, dtype_rule=first_float,
        numpy_impl=lambda a, axes, keepdims: np.sum(a * a, axis=axes, keepdims=keepdims),
        vjp=_sumsq_vjp, differentiable=(0,),
        proof={"shapes": [(2, 3)], "attrs": {"axes": (1,), "keepdims": False}},
        doc="sum of squares over axes"))
    user = gc.define_elementwise("softsign_user", lambda x: x / (1 + sympy.Abs(x)))
    yield user
    from graphc.frontend.user_ops import undefine
    undefine("softsign_user")
    OPS.pop("softsign")
    OPS.pop("sumsq")
    assert set(OPS) == before, "the doc ops leave the op table as they found it"


def _doc_graph(user):
    from graphc.frontend.dsl import apply

    def f(x, w):
        a = apply("softsign", x * w)
        b = user(x)
        total = apply("sumsq", a + b, axes=(0, 1), keepdims=False)  # 0-d: a host call returning a scalar
        rows = apply("sumsq", a, axes=(1,), keepdims=False)  # an array: a host call into a workspace buffer
        return total + gc.sum(rows * rows)
    return gc.grad(gc.trace(f, ("N", 3), (3,)), wrt=["x", "w"])


def test_doc_example_ops_have_their_stories(doc_ops):
    assert [coverage("softsign", b) for b in BACKEND_NAMES] == ["fallback", "fallback", "refused"]
    assert [coverage("sumsq", b) for b in BACKEND_NAMES] == ["fallback", "fallback", "refused"]
    assert [coverage("softsign_user", b) for b in BACKEND_NAMES] == ["native", "native", "native"]


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_doc_example_ops_run_and_agree(doc_ops, backend):
    graph = _doc_graph(doc_ops)
    feeds = dict(x=np.random.default_rng(3).standard_normal((4, 3)), w=np.array([0.5, -1.0, 2.0]))
    compiled = gc.compile(graph, backend)
    check_bound(compiled.source, backend)
    if backend == "numba":
        assert "ref.softsign(" in compiled.source and "ref.sumsq(" in compiled.source
        assert "@njit" in compiled.source
    expected = gc.evaluate(graph, feeds).outputs
    got = compiled(feeds)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, err_msg=k)


def test_doc_example_op_is_refused_by_cuda_with_a_clear_error(doc_ops):
    from graphc.backends.cuda import emit as numba_cuda
    with pytest.raises(GraphcError, match=r"softsign .*the cuda backend has no kernel for op 'softsign'"):
        numba_cuda.emit(_doc_graph(doc_ops))


def test_user_op_spelling_is_derived_not_registered(doc_ops):
    from graphc.backends.python import emit as python
    assert "softsign_user" not in python.TABLE
    source = gc.compile(gc.trace(lambda x: doc_ops(x), (3,))).source
    assert "ref.softsign_user(" not in source and "softsign_user_1 = (x)/(abs((x)) + 1)" in source


# ----- one place per op per backend ------------------------------------------------------------
def test_every_backend_table_is_keyed_by_ops_of_the_op_table():
    """A table entry under a name the op table lacks is dead code (or a typo that leaves
    the real op on its fallback)."""
    from graphc.backends.common.scalar import SCALAR, SCALAR_STEPS
    from graphc.backends.cuda import kernels as cuda_kernels
    from graphc.backends.numba_cpu import kernels as numba_kernels
    from graphc.backends.python import emit as python
    tables = {"python TABLE": python.TABLE, "SCALAR": SCALAR, "SCALAR_STEPS": SCALAR_STEPS,
              "numba KERNELS": numba_kernels.KERNELS, "cuda KERNELS": cuda_kernels.KERNELS}
    for name, table in tables.items():
        assert set(table) <= set(OPS), f"{name} has entries for unknown ops: {sorted(set(table) - set(OPS))}"


def test_the_runtime_never_names_a_backend():
    """runtime/ loads modules and holds the Compiled base; what is particular to numba or
    CUDA lives in the backend's own folder (docstrings may say why, code may not)."""
    import ast
    from pathlib import Path
    import graphc.runtime
    for path in Path(graphc.runtime.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n)}
        for node in ast.walk(tree):
            words = []
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words.append(node.value)
            elif isinstance(node, ast.Name):
                words.append(node.id)
            elif isinstance(node, ast.Attribute):
                words.append(node.attr)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                words += [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            for word in words:
                assert not any(b in word.lower() for b in ("numba", "cuda")), f"{path.name}:{node.lineno}: {word!r}"
