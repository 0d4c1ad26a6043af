"""The IR: a validated wrapper over a public networkx.MultiDiGraph."""
import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.ir.graph import Graph
from tests.conftest import lecture


LECTURE_TEXT = """\
{ lambda x1:f64[], x2:f64[], x3:f64[], x4:f64[] .
  a:f64[] = add x1 x2
  b:f64[] = mul a x3
  f:f64[] = sub b x4
  in (f) }"""


def test_text_form_of_lecture_graph_is_golden():
    g = gc.trace(lecture, (), (), (), ())
    assert g.to_text() == LECTURE_TEXT
    assert repr(g) == LECTURE_TEXT


def test_text_form_shows_shapes_attrs_and_renamed_outputs():
    b = gc.Builder("net")
    x = b.input("x", ("N", 3))
    w = b.param("w", (3, 2), "float32")
    s = gc.sum(gc.exp(x), axis=1, name="s")
    b.output(total=s, w_out=gc.tanh(w, name="t"))
    assert b.graph.to_text() == (
        "{ lambda x:f64[N,3], w:f32[3,2] .\n"
        "  exp_1:f64[N,3] = exp x\n"
        "  s:f64[N] = sum[axes=(1,) keepdims=False] exp_1\n"
        "  t:f32[3,2] = tanh w\n"
        "  in (total=s, w_out=t) }")


def test_node_and_edge_attributes():
    g = gc.trace(lecture, (), (), (), ())
    nodes = g.nx.nodes
    for n, data in nodes(data=True):
        assert set(data) >= {"op", "attrs", "shape", "dtype", "name", "phase"}
        assert data["phase"] == "forward"
        assert data["dtype"] == "float64" and data["shape"] == ()
    b = g.find("b")
    assert nodes[b]["op"] == "mul" and nodes[b]["name"] == "b" and nodes[b]["attrs"] == {}
    x1 = g.find("x1")
    assert nodes[x1]["op"] == "input"
    assert nodes[x1]["attrs"] == {"shape": (), "dtype": "float64"}
    # edges run operand -> user and carry the operand position
    edges = {(g.name_of(s), g.name_of(d)): p for s, d, p in g.nx.edges(data="pos")}
    assert edges == {("x1", "a"): 0, ("x2", "a"): 1, ("a", "b"): 0, ("x3", "b"): 1, ("b", "f"): 0, ("x4", "f"): 1}
    assert g.operands(g.find("f")) == [g.find("b"), g.find("x4")]


def test_const_attrs_hold_the_value():
    b = gc.Builder()
    c = b.const([1.0, 2.0], name="c")
    assert c.op == "const" and c.shape == (2,) and c.dtype == "float64"
    np.testing.assert_array_equal(b.graph.node(c.node)["attrs"]["value"], [1.0, 2.0])


def test_x_times_x_keeps_two_operand_edges():
    g = gc.trace(lambda x: x * x, (3,))
    assert isinstance(g.nx, nx.MultiDiGraph)
    x, (sq,) = g.find("x"), g.nodes_with_op("mul")
    assert g.nx.number_of_edges(x, sq) == 2
    assert sorted(p for _, _, p in g.nx.in_edges(sq, data="pos")) == [0, 1]
    assert g.operands(sq) == [x, x]
    np.testing.assert_array_equal(gc.evaluate(g, x=np.array([1.0, -2.0, 3.0])).outputs[g.name_of(sq)], [1.0, 4.0, 9.0])
    # d(x*x)/dx = 2x needs both edges
    gg = gc.grad(gc.trace(lambda x: gc.sum(x * x), (3,)))
    np.testing.assert_array_equal(gc.evaluate(gg, x=np.array([1.0, -2.0, 3.0])).grad("x"), [2.0, -4.0, 6.0])


def test_graph_is_queryable_with_networkx():
    g = gc.trace(lecture, (), (), (), ())
    anc = {g.name_of(n) for n in nx.ancestors(g.nx, g.find("b"))}
    assert anc == {"x1", "x2", "x3", "a"}
    desc = {g.name_of(n) for n in nx.descendants(g.nx, g.find("x3"))}
    assert desc == {"b", "f"}
    assert nx.is_directed_acyclic_graph(g.nx)
    order = [g.name_of(n) for n in g.toposort()]
    assert order.index("a") < order.index("b") < order.index("f")
    assert nx.shortest_path_length(g.nx, g.find("x1"), g.find("f")) == 3


def test_inputs_params_and_queries():
    b = gc.Builder()
    x = b.input("x", (2,))
    w = b.param("w", (2,))
    b.output(gc.sum(x * w, name="s"))
    g = b.graph
    assert g.inputs == [x.node] and g.params == [w.node]
    assert g.find("s") in g.nodes_with_op("sum")
    assert len(g) == 4
    assert [g.name_of(d) for d, _ in g.users(x.node)] == [g.name_of(g.nodes_with_op("mul")[0])]
    with pytest.raises(gc.GraphcError, match="no node named 'nope'"):
        g.find("nope")


def test_auto_names_and_rename():
    b = gc.Builder()
    x = b.input("x", ())
    e1, e2 = gc.exp(x), gc.exp(x)
    assert (e1.name, e2.name) == ("exp_1", "exp_2")
    e1.named("first")
    assert b.graph.find("first") == e1.node
    with pytest.raises(gc.GraphcError):
        b.graph.find("exp_1")
    with pytest.raises(gc.DuplicateNameError, match="'first'"):
        e2.named("first")
    with pytest.raises(gc.GraphcError, match="not an identifier"):
        e2.named("has space")


def test_copy_is_independent():
    g = gc.trace(lecture, (), (), (), ())
    h = g.copy()
    h.rename(h.find("a"), "a2")
    h.node(h.find("b"))["attrs"]["tag"] = 1
    assert g.find("a") is not None and "tag" not in g.node(g.find("b"))["attrs"]
    assert g.to_text() == LECTURE_TEXT


def test_validate_returns_graph_and_accepts_hand_built():
    g = Graph("hand")
    x = g.add("input", [], {"shape": (2,), "dtype": "float64"}, name="x")
    y = g.add("exp", [x], name="y")
    g.set_output(y)
    assert g.validate() is g
    assert g.to_text() == "{ lambda x:f64[2] .\n  y:f64[2] = exp x\n  in (y) }"


def test_a_dim_that_no_input_binds_is_one_shape_error():
    """broadcast_to(w, ("D",)) with no input of shape D: nothing gives D a size.  It was
    accepted, and gc.evaluate then raised a raw KeyError 'D' (the python module a NameError)."""
    match = r"node 'wide' \(broadcast_to\): dim 'D' of shape \(D,\) is not in the shape of any input or param"
    b = gc.Builder("unbound")
    w = b.param("w", ())
    wide = gc.broadcast_to(w, ("D",), name="wide")
    with pytest.raises(gc.ShapeError, match=match):
        b.output(y=gc.sum(wide))
    with pytest.raises(gc.ShapeError, match=match):  # a graph that skipped validate(): refused all the same
        gc.evaluate(b.graph, w=np.array(1.0))
    with pytest.raises(gc.ShapeError, match=match):
        gc.compile(b.graph)
    # an input of shape D added after the node binds it: the check is in validate, not add
    b.input("x", ("D",))
    assert gc.evaluate(b.output(y=gc.sum(wide)), w=np.array(2.0), x=np.zeros(3)).outputs["y"] == 6.0


def test_validate_catches_hand_edited_shape_and_dtype():
    g = gc.trace(lecture, (), (), (), ())
    g.node(g.find("b"))["shape"] = (3,)
    with pytest.raises(gc.ShapeError, match=r"node 'b' \(mul\).*declared shape \(3,\).*\(\)"):
        g.validate()
    g = gc.trace(lecture, (), (), (), ())
    g.node(g.find("b"))["dtype"] = "float32"
    with pytest.raises(gc.DTypeError, match=r"node 'b' \(mul\).*float32.*float64"):
        g.validate()


# ----- the public methods that rewrites, files and builders use instead of private fields -------
def test_from_nx_indexes_names_and_continues_ids_after_the_largest():
    g = gc.trace(lecture, (), (), (), ())
    kept = nx.relabel_nodes(g.nx, {n: 10 * n + 3 for n in g.nx.nodes})  # ids with gaps, as a file may have
    h = Graph.from_nx(kept, "loaded")
    h.outputs = {"f": h.find("f")}
    assert h.validate().to_text() == LECTURE_TEXT
    assert h.has_name("a") and not h.has_name("nope") and h.find("x3") == 10 * g.find("x3") + 3
    e = h.add("exp", [h.find("f")], name="e")
    assert e == 10 * max(g.nx.nodes) + 3 + 1  # a fresh id, after the largest one taken
    assert h.find("e") == e and h.name_of(h.add("exp", [e])) == "exp_1"


def test_from_nx_refuses_two_nodes_with_one_name_and_takes_an_empty_graph():
    dup = nx.MultiDiGraph()
    for n in (0, 1):
        dup.add_node(n, op="input", attrs={"shape": (), "dtype": "float64"}, shape=(), dtype="float64",
                     name="x", phase="forward")
    with pytest.raises(gc.DuplicateNameError, match="'x' is used by nodes 0 and 1"):
        Graph.from_nx(dup, "dup")
    empty = Graph.from_nx(nx.MultiDiGraph(), "empty")
    assert empty.add("input", [], {"shape": (), "dtype": "float64"}, name="x") == 0


def test_remove_node_drops_its_edges_and_frees_its_name():
    g = gc.trace(lecture, (), (), (), ())
    f, b = g.find("f"), g.find("b")
    g.remove_node(f)
    assert f not in g.nx and not g.has_name("f") and g.users(b) == []
    again = g.add("sub", [b, g.find("x4")], name="f")  # the name is free again
    assert g.find("f") == again and again != f


def test_validate_node_checks_one_node():
    g = gc.trace(lecture, (), (), (), ())
    g.validate_node(g.find("b"))  # sound: no error
    g.node(g.find("b"))["shape"] = (3,)
    with pytest.raises(gc.ShapeError, match=r"node 'b' \(mul\).*declared shape \(3,\)"):
        g.validate_node(g.find("b"))
    g.validate_node(g.find("a"))  # the fault is b's alone
