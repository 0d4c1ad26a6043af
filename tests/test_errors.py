"""Every bad input raises a GraphcError subclass whose message says what and where."""
import numpy as np
import pytest

import graphc as gc
from graphc.ir.graph import Graph
from tests.conftest import lecture, lecture_graph


def test_every_error_is_a_graphc_error():
    for cls in (gc.ArityError, gc.CallError, gc.DisconnectedOutputError, gc.DTypeError, gc.DuplicateNameError,
                gc.GraphCycleError, gc.NonScalarLossError, gc.NumericError, gc.ShapeError, gc.UnknownOpError):
        assert issubclass(cls, gc.GraphcError)


# ----- structure ---------------------------------------------------------------------------
def test_cycle_prints_the_cycle_path():
    g = lecture_graph()
    g.nx.add_edge(g.find("f"), g.find("a"), key=2, pos=2)  # f feeds back into a
    with pytest.raises(gc.GraphCycleError) as e:
        g.validate()
    msg = str(e.value)
    assert "cycle" in msg
    # The path names the nodes in order and returns to where it started.
    path = msg.split("cycle: ")[1].split(" -> ")
    assert path[0] == path[-1]
    assert set(path) == {"a", "b", "f"}
    for u, v in zip(path, path[1:]):
        assert (u, v) in {("a", "b"), ("b", "f"), ("f", "a")}


def test_cycle_also_stops_toposort_and_evaluate():
    g = lecture_graph()
    g.nx.add_edge(g.find("b"), g.find("a"), key=2, pos=2)
    with pytest.raises(gc.GraphCycleError, match="a -> b -> a|b -> a -> b"):
        gc.evaluate(g, x1=1.0, x2=1.0, x3=1.0, x4=1.0)


def test_unknown_op_names_the_op():
    b = gc.Builder()
    x = b.input("x", (2,))
    with pytest.raises(gc.UnknownOpError, match="unknown op 'frobnicate'"):
        b.graph.add("frobnicate", [x.node])
    g = lecture_graph()
    g.node(g.find("b"))["op"] = "mull"
    with pytest.raises(gc.UnknownOpError, match="'mull'.*known ops: .*mul"):
        g.validate()


def test_wrong_arity_when_adding():
    b = gc.Builder()
    x = b.input("x", (2,))
    with pytest.raises(gc.ArityError, match=r"node 'e' \(exp\): takes 1 operand\(s\), got 2"):
        b.graph.add("exp", [x.node, x.node], name="e")
    with pytest.raises(gc.ArityError, match=r"\(add\): takes 2 operand\(s\), got 1"):
        b.graph.add("add", [x.node])


def test_wrong_arity_in_hand_edited_graph():
    g = lecture_graph()
    g.nx.remove_edge(g.find("x4"), g.find("f"))
    with pytest.raises(gc.ArityError, match=r"node 'f' \(sub\): takes 2 operand\(s\), has edges at positions \[0\]"):
        g.validate()


def test_broadcast_mismatch_names_node_op_and_both_shapes():
    b = gc.Builder()
    x, y = b.input("x", ("N", 3)), b.input("y", (4,))
    with pytest.raises(gc.ShapeError) as e:
        gc.add(x, y, name="h")
    msg = str(e.value)
    assert "node 'h'" in msg and "(add)" in msg and "(N, 3)" in msg and "(4,)" in msg


def test_broadcast_mismatch_from_an_operator_names_op_and_shapes():
    def bad(x, y):
        return x * y
    with pytest.raises(gc.ShapeError, match=r"\(mul\).*\(2, 3\) and \(3, 2\)"):
        gc.trace(bad, (2, 3), (3, 2))


def test_matmul_mismatch_names_node_op_and_both_shapes():
    b = gc.Builder()
    x, w = b.input("x", ("N", 3)), b.param("w", (4, 5))
    with pytest.raises(gc.ShapeError) as e:
        gc.matmul(x, w, name="logits")
    msg = str(e.value)
    assert "node 'logits'" in msg and "(matmul)" in msg and "(N, 3)" in msg and "(4, 5)" in msg
    with pytest.raises(gc.ShapeError, match=r"\(matmul\).*\(N, 3\) @ \(4, 5\)"):
        x @ w


def test_dtype_mismatch_names_both_dtypes():
    b = gc.Builder()
    x, y = b.input("x", (3,), "float32"), b.input("y", (3,), "float64")
    with pytest.raises(gc.DTypeError) as e:
        gc.add(x, y, name="s")
    msg = str(e.value)
    assert "node 's'" in msg and "(add)" in msg and "float32" in msg and "float64" in msg


def test_non_float_arithmetic_and_bad_where_condition():
    b = gc.Builder()
    i = b.input("i", (3,), "int64")
    x = b.input("x", (3,))
    with pytest.raises(gc.DTypeError, match=r"\(exp\).*needs a float operand, got int64"):
        gc.exp(i)
    with pytest.raises(gc.DTypeError, match="condition 'x' must be a bool mask, got float64"):
        gc.where(x, x, x)
    with pytest.raises(gc.DTypeError, match="labels must be integers, got float64"):
        gc.softmax_cross_entropy(b.input("z", (3, 2)), x)


def test_duplicate_names():
    b = gc.Builder()
    b.input("x", (2,))
    with pytest.raises(gc.DuplicateNameError, match="'x' is used twice"):
        b.param("x", (2,))
    g = lecture_graph()
    g.node(g.find("b"))["name"] = "a"  # hand edit behind the index's back
    with pytest.raises(gc.DuplicateNameError, match="'a' is used by nodes"):
        g.validate()


def test_output_not_depending_on_any_input():
    b = gc.Builder()
    b.input("x", (3,))
    c = b.const(np.ones(3))
    with pytest.raises(gc.DisconnectedOutputError, match=r"node 'e' \(exp\): output does not depend on any input"):
        b.output(gc.exp(c, name="e"))


def test_traced_function_returning_constant_expression():
    from graphc.frontend.dsl import constant

    def f(x):
        k = gc.exp(constant(x.graph, np.ones(2), "float64"))
        return {"x2": x * 2.0, "k": k}
    with pytest.raises(gc.DisconnectedOutputError, match=r"node 'k' \(exp\)"):
        gc.trace(f, (2,))


def test_graph_without_outputs():
    g = Graph("empty")
    g.add("input", [], {"shape": (), "dtype": "float64"}, name="x")
    with pytest.raises(gc.GraphcError, match="has no outputs"):
        g.validate()


def test_non_scalar_loss():
    g = gc.trace(lambda x: gc.exp(x), ("N", 3))
    with pytest.raises(gc.NonScalarLossError) as e:
        gc.grad(g)
    msg = str(e.value)
    assert "(exp)" in msg and "(N, 3)" in msg and "scalar" in msg


def test_grad_needs_a_named_loss_when_several_outputs():
    g = gc.trace(lambda x: {"p": gc.sum(x), "q": gc.sum(x * x)}, (3,))
    with pytest.raises(gc.GraphcError, match=r"outputs \['p', 'q'\]; say which is the loss"):
        gc.grad(g)


def test_grad_wrt_integer_input():
    g = gc.trace(lambda x, i: gc.sum(gc.gather(x, i)), (2, 3), gc.Input((2,), "int64"))
    with pytest.raises(gc.GraphcError, match=r"node 'i' \(input\): cannot differentiate with respect to a int64"):
        gc.grad(g, wrt=["x", "i"])


# ----- calls -------------------------------------------------------------------------------
def sum_graph():
    return gc.trace(lambda x, y: gc.sum(x) + gc.sum(y), ("N", 3), ("N",))


@pytest.fixture(params=["interpreter", "python"])
def call(request):
    g = sum_graph()
    if request.param == "interpreter":
        return lambda **kw: gc.evaluate(g, kw).outputs
    return gc.compile(g)


def test_call_ok(call):
    out = call(x=np.ones((2, 3)), y=np.ones(2))
    assert float(next(iter(out.values()))) == 8.0


def test_call_missing_array(call):
    with pytest.raises(gc.CallError, match="missing argument.*y"):
        call(x=np.ones((2, 3)))


def test_call_unexpected_array(call):
    with pytest.raises(gc.CallError, match="unexpected argument.*z"):
        call(x=np.ones((2, 3)), y=np.ones(2), z=1.0)


def test_call_wrong_shape(call):
    with pytest.raises(gc.CallError) as e:
        call(x=np.ones((2, 4)), y=np.ones(2))
    msg = str(e.value)
    assert "'x'" in msg and "(N, 3)" in msg and "(2, 4)" in msg


def test_call_wrong_rank(call):
    with pytest.raises(gc.CallError, match=r"'y'.*expected rank 1 \(N,\), got \(2, 1\)"):
        call(x=np.ones((2, 3)), y=np.ones((2, 1)))


def test_call_wrong_dtype(call):
    with pytest.raises(gc.CallError) as e:
        call(x=np.ones((2, 3), dtype=np.float32), y=np.ones(2))
    msg = str(e.value)
    assert "'x'" in msg and "float32" in msg and "float64" in msg


def test_call_inconsistent_symbolic_dim(call):
    with pytest.raises(gc.CallError) as e:
        call(x=np.ones((2, 3)), y=np.ones(5))
    msg = str(e.value)
    assert "'y'" in msg and "N" in msg and "2" in msg and "5" in msg


def test_call_unconvertible_value(call):
    with pytest.raises(gc.CallError, match="'y'.*cannot convert"):
        call(x=np.ones((2, 3)), y="abc")


# ----- numerics ----------------------------------------------------------------------------
def test_check_finite_names_the_first_bad_node():
    def f(x):
        l = gc.log(x)      # NaN for x < 0: the first bad node
        m = l * 2.0        # NaN again, but not first
        return gc.sum(m)
    g = gc.trace(f, (3,))
    x = np.array([1.0, -1.0, 2.0])
    with pytest.raises(gc.NumericError, match=r"node 'l' \(log\): produced NaN \(first node"):
        gc.evaluate(g, x=x, check_finite=True)
    # without the check the NaN just flows through
    assert np.isnan(gc.evaluate(g, x=x).outputs[g.name_of(g.outputs[next(iter(g.outputs))])])


def test_check_finite_reports_inf():
    g = gc.trace(lambda x: gc.sum(gc.exp(x, name="e")), (2,))
    with pytest.raises(gc.NumericError, match=r"node 'e' \(exp\): produced Inf"):
        gc.evaluate(g, x=np.array([1.0, 1000.0]), check_finite=True)


def test_compiled_check_finite_names_the_output():
    g = gc.trace(lambda x: gc.sum(gc.log(x)), (2,))
    compiled = gc.compile(g)
    with pytest.raises(gc.NumericError, match="output '.*' is not finite"), np.errstate(invalid="ignore"):
        compiled(x=np.array([-1.0, 1.0]), check_finite=True)


# ----- the DSL -----------------------------------------------------------------------------
def test_truth_value_of_symbolic_value():
    def branchy(x):
        if gc.sum(x) > 0:
            return x
        return -x
    with pytest.raises(gc.GraphcError, match=r"\(gt\): a symbolic value has no truth value; use gc.where"):
        gc.trace(branchy, (3,))


def test_trace_missing_spec_and_bad_output():
    with pytest.raises(gc.GraphcError, match=r"no spec for parameter\(s\) y"):
        gc.trace(lambda x, y: x + y, (2,))
    with pytest.raises(gc.GraphcError, match="output 0 is float, not a symbolic value"):
        gc.trace(lambda x: 1.0, (2,))


def test_operands_from_two_graphs():
    x = gc.Builder().input("x", (2,))
    y = gc.Builder().input("y", (2,))
    with pytest.raises(gc.GraphcError, match="operands must come from one graph"):
        x + y


def test_bad_axis_and_reshape():
    x = gc.Builder().input("x", (2, 3))
    with pytest.raises(gc.ShapeError, match="axis 2 is out of range for rank 2"):
        gc.sum(x, axis=2)
    with pytest.raises(gc.ShapeError, match=r"\(reshape\): cannot reshape \(2, 3\) into \(4, 2\)"):
        x.reshape(4, 2)





def test_compile_unknown_backend():
    with pytest.raises(gc.GraphcError, match="unknown backend 'tpu'; choose one of python, numba, cuda"):
        gc.compile(sum_graph(), backend="tpu")


def test_compile_option_the_backend_does_not_take():
    with pytest.raises(gc.GraphcError, match="backend 'python' has no option 'flush_subnormals'"):
        gc.compile(sum_graph(), backend="python", flush_subnormals=False)
