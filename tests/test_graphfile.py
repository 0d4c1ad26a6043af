"""JSON graph files: everything round-trips, and malformed files fail with one clear line."""
import json

import numpy as np
import pytest

import graphc as gc
from graphc.io import graphfile as graphfile
from graphc.errors import (GraphcError, GraphCycleError, ShapeError,
                           UnknownOpError)
from graphc.io.graphfile import GraphFileError
from tests.conftest import lecture_graph
from tests.models import deep_mlp

POINT = {"x1": 5.0, "x2": 4.0, "x3": 3.0, "x4": 2.0}


def same_value(a, b):
    """Equal, and of the same type: a tuple stays a tuple, an array keeps its dtype."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return type(a) is type(b) and a == b


def assert_same_graph(g, h):
    assert h.name == g.name
    assert sorted(h.nx.nodes) == sorted(g.nx.nodes)
    for n, data in g.nx.nodes(data=True):
        assert same_value(data, h.nx.nodes[n]), (n, data, h.nx.nodes[n])
    assert sorted(h.nx.edges(keys=True, data="pos")) == sorted(g.nx.edges(keys=True, data="pos"))
    assert list(h.outputs.items()) == list(g.outputs.items())
    assert h.grads == g.grads and h.edge_grads == g.edge_grads
    assert h.to_text() == g.to_text()


def roundtrip(graph, tmp_path):
    path = tmp_path / "g.json"
    graphfile.save(graph, path)
    return graphfile.load(path)


@pytest.mark.parametrize("make", [lecture_graph, lambda: gc.grad(lecture_graph()),
                                  lambda: gc.grad(deep_mlp(depth=2))], ids=["forward", "grad", "mlp-grad"])
def test_roundtrip_keeps_everything(make, tmp_path):
    graph = make()
    loaded = roundtrip(graph, tmp_path)
    assert_same_graph(graph, loaded)
    assert graphfile.dumps(loaded) == graphfile.dumps(graph)


def test_loaded_gradient_graph_computes_the_lecture_gradients(tmp_path):
    loaded = roundtrip(gc.grad(lecture_graph()), tmp_path)
    ev = gc.evaluate(loaded, POINT)
    assert [float(ev.grad(k)) for k in ("x1", "x2", "x3", "x4")] == [3.0, 3.0, 9.0, -1.0]
    assert {k: float(v) for k, v in ev.edge("x3", "b").items()} == {"upstream": 1.0, "local": 9.0, "downstream": 9.0}


def test_attr_values_of_every_kind_roundtrip(tmp_path):
    b = gc.Builder("kinds")
    x = b.input("x", ("N", 3), dtype="float32")
    mask = b.input("m", ("N", 3), dtype="bool")
    c32 = b.const(np.array([1.5, np.inf, -np.inf]), dtype="float32")
    cnan = b.const(np.array([np.nan, 0.1, 1e-300]), dtype="float64")
    flags = b.const(np.array([True, False, True]), dtype="bool")
    ints = b.const(np.arange(3, dtype="int64"), dtype="int64")
    y = gc.where(mask, x * c32, gc.cast(gc.cast(ints, "float32") + gc.cast(flags, "float32"), "float32"))
    z = gc.sum(gc.reshape(gc.transpose(y), (3, "N")), axis=(0,), keepdims=True)
    out = gc.leaky_relu(z, alpha=0.2) + gc.cast(gc.sum(cnan), "float32")
    graph = b.output(out=gc.mean(out))
    loaded = roundtrip(graph, tmp_path)
    assert_same_graph(graph, loaded)


def test_attr_encoding_roundtrips_nested_values():
    """Values no built-in op takes (ops refuse unknown attrs) still encode and decode exactly."""
    from graphc.io.graphfile import decode, encode
    note = {"scalar": np.float32(2.5), "list": [1, (2, "N")], "inf": float("inf")}
    back = decode(json.loads(json.dumps(encode(note))))
    assert back == note and type(back["scalar"]) is np.float32 and isinstance(back["list"][1], tuple)


def test_updates_roundtrip(tmp_path):
    graph = deep_mlp(depth=1)
    if not hasattr(graph, "set_update"):
        pytest.skip("this Graph has no updates")
    w = graph.find("layer1.W")
    new_w = graph.add("neg", [w], name="w_next")
    graph.set_update(w, new_w)
    assert roundtrip(graph, tmp_path).updates == {w: new_w}


def test_file_is_node_link_json_with_a_version(tmp_path):
    path = tmp_path / "g.json"
    graphfile.save(lecture_graph(), path)
    data = json.loads(path.read_text())
    assert (data["format"], data["version"], data["directed"], data["multigraph"]) == ("graphc-graph", 1, True, True)
    assert {n["name"] for n in data["nodes"]} == {"x1", "x2", "x3", "x4", "a", "b", "f"}
    assert {(e["source"], e["target"], e["pos"]) for e in data["edges"]} == {(0, 4, 0), (1, 4, 1), (4, 5, 0),
                                                                             (2, 5, 1), (5, 6, 0), (3, 6, 1)}


# ----- malformed files ------------------------------------------------------------------
def write(tmp_path, text, name="bad.json"):
    path = tmp_path / name
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return path


def lecture_data():
    return graphfile.to_data(lecture_graph())


def load_error(path, cls=GraphcError, **limits):
    with pytest.raises(cls) as e:
        graphfile.load(path, **limits)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def test_cycle_is_rejected(tmp_path):
    data = lecture_data()
    # f's operand b becomes f itself... through a: a = add(x1, f) closes a -> b -> f -> a.
    data["edges"] = [e for e in data["edges"] if not (e["target"] == 4 and e["pos"] == 1)]
    data["edges"].append({"source": 6, "target": 4, "key": 1, "pos": 1})
    message = load_error(write(tmp_path, data), GraphCycleError)
    assert "cycle" in message and "a -> b -> f -> a" in message


def test_unknown_op_is_rejected(tmp_path):
    data = lecture_data()
    data["nodes"][4]["op"] = "frobnicate"
    message = load_error(write(tmp_path, data), UnknownOpError)
    assert "node 4 'a': unknown op 'frobnicate'" in message


def test_bad_shape_is_rejected(tmp_path):
    data = lecture_data()
    data["nodes"][5]["shape"] = [3]
    message = load_error(write(tmp_path, data), ShapeError)
    assert "node 'b' (mul): declared shape (3,) but operands give ()" in message


def test_operands_that_do_not_broadcast_are_rejected(tmp_path):
    data = lecture_data()
    data["nodes"][0]["shape"] = data["nodes"][0]["attrs"]["shape"] = {"tuple": [2]}
    data["nodes"][0]["shape"] = [2]
    data["nodes"][1]["shape"], data["nodes"][1]["attrs"]["shape"] = [3], {"tuple": [3]}
    assert "cannot broadcast shapes (2,) and (3,)" in load_error(write(tmp_path, data), ShapeError)


def test_oversized_file_and_too_many_nodes(tmp_path):
    path = write(tmp_path, graphfile.dumps(lecture_graph()))
    assert "over the limit of 1,000" in load_error(path, GraphFileError, max_bytes=1000)
    assert "7 nodes, over the limit of 5" in load_error(path, GraphFileError, max_nodes=5)


def test_truncated_file(tmp_path):
    text = graphfile.dumps(lecture_graph())
    message = load_error(write(tmp_path, text[: len(text) // 2]), GraphFileError)
    assert "ends too early (truncated?)" in message


def test_invalid_json_and_not_a_graph(tmp_path):
    assert "is not valid JSON" in load_error(write(tmp_path, "import os\nos.system('echo hi')\n"))
    assert "not valid JSON" in load_error(write(tmp_path, '{"x": NaN}'))
    assert "not a graphc graph file" in load_error(write(tmp_path, "[1, 2, 3]"))
    assert "\\xff" not in load_error(write(tmp_path, "{}"), GraphFileError)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe{")
    assert "not UTF-8" in load_error(tmp_path / "bin.json", GraphFileError)
    deep = "[" * 100000 + "]" * 100000
    assert "nested deeper than the limit of 32" in load_error(write(tmp_path, deep), GraphFileError)
    assert "nested deeper than the limit of 32" in load_error(write(tmp_path, "[" * 40 + "]" * 40), GraphFileError)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(version=2), "format version 2 is newer"),
    (lambda d: d["nodes"][0].pop("op"), "at nodes/0: 'op' is a required property"),
    (lambda d: d["nodes"][0].update(dtype="complex128"), "at nodes/0/dtype: \"complex128\" is not one of"),
    (lambda d: d["nodes"][0].update(name="x1; rm -rf"), "at nodes/0/name"),
    (lambda d: d["nodes"][0].update(phase="sideways"), "at nodes/0/phase"),
    (lambda d: d["edges"].append({"source": 0, "target": 99, "pos": 0}), "no node with id 99"),
    (lambda d: d["nodes"].append(dict(d["nodes"][0])), "node id 0 is used twice"),
    (lambda d: d["graph"]["outputs"].update(g=42), "output 'g' names node 42"),
    (lambda d: d["graph"].update(outputs={}), "at graph/outputs"),
    (lambda d: d["nodes"][4]["attrs"].update(alpha={"set": [1]}), "at nodes/4/attrs/alpha: "),
])
def test_schema_and_reference_errors(edit, expected, tmp_path):
    data = lecture_data()
    edit(data)
    assert expected in load_error(write(tmp_path, data), GraphFileError)


def test_two_nodes_with_one_name_are_refused_before_anything_is_built(tmp_path):
    data = lecture_data()
    first = data["nodes"][0]
    data["nodes"].append(dict(first, id=99))  # a second leaf, with its own id, that takes node 0's name
    message = load_error(write(tmp_path, data), gc.DuplicateNameError)
    assert f"node name {first['name']!r} is used by nodes 0 and 99" in message


def test_attrs_an_op_cannot_use(tmp_path):
    data = graphfile.to_data(gc.trace(lambda x: gc.sum(x), gc.Input((3,))))
    node = next(n for n in data["nodes"] if n["op"] == "sum")
    del node["attrs"]["axes"]
    assert "node 1 'sum_1' (sum): missing attr 'axes'" in load_error(write(tmp_path, data), GraphFileError)


def test_exact_constants_must_be_plain_arithmetic(tmp_path):
    graph = gc.trace(lambda x: gc.mean(x), gc.Input((4,)))
    data = graphfile.to_data(graph)
    const = next(n for n in data["nodes"] if n["op"] == "const")
    assert const["attrs"]["exact"] == "1/4"
    assert same_value(graphfile.load(write(tmp_path, data)).to_text(), graph.to_text())
    const["attrs"]["exact"] = "__import__('os').system('touch pwned')"
    assert "attr 'exact' must be plain arithmetic" in load_error(write(tmp_path, data), GraphFileError)
    assert not (tmp_path / "pwned").exists()


def test_loads_checks_a_string_too():
    assert graphfile.loads(graphfile.dumps(lecture_graph())).to_text() == lecture_graph().to_text()
    with pytest.raises(GraphFileError, match="^<string>: "):
        graphfile.loads("{")


# ----- files are data (issue 13) ------------------------------------------------------------
@pytest.mark.parametrize("name", ["model.graph", "g.json.txt", "weights.npz", "model.py", ".json", "json"])
def test_only_json_names_are_loaded_or_saved(name, tmp_path):
    path = tmp_path / name
    path.write_text(graphfile.dumps(lecture_graph()))  # valid graph content: the name alone is refused
    assert "not a graph file name: graph files end in .json" in load_error(path, GraphFileError)
    with pytest.raises(GraphFileError, match="graph files end in .json"):
        graphfile.save(lecture_graph(), tmp_path / "sub" / name)  # refused before any write


def test_json_suffix_in_any_case_is_a_graph_file(tmp_path):
    graphfile.save(lecture_graph(), tmp_path / "G.Json")
    assert graphfile.load(tmp_path / "G.Json").to_text() == lecture_graph().to_text()


def _x():
    b = gc.Builder("typed")
    return b, b.input("x", (2, 3))


# (op, operands (built from x), good attrs, attr, bad values): each bad value is refused
# when the node is built, with the node, op, attr and value in one line.
BAD_ATTRS = [
    ("sum", 1, {"axes": (1,), "keepdims": False}, "keepdims", ["open('PWNED','w') or True", 1, None]),
    ("sum", 1, {"axes": (1,), "keepdims": False}, "axes", ["(1,)", (1.5,), (True,), (99,), 1]),
    ("max", 1, {"axes": (1,), "keepdims": False}, "extra", [1]),
    ("leaky_relu", 1, {"alpha": 0.1}, "alpha", ["0.1", float("nan"), float("inf"), True, [0.1]]),
    ("softmax", 1, {"axis": 1}, "axis", ["1", 1.0, False, 2**40]),
    ("transpose", 1, {"perm": (1, 0)}, "perm", ["(1, 0)", (1, "0"), None]),
    ("reshape", 1, {"shape": (3, 2)}, "shape", ["(3, 2)", (3, "N; import os"), (-1, 6), (2**31, 1), (2**20, 2**20)]),
    ("cast", 1, {"dtype": "float32"}, "dtype", ["object", "float64'); import os; ('", np.float64]),
    ("const", 0, {"value": np.float64(1.0)}, "value", ["1.0", np.array(["a"]), np.array([object()]), 10**30]),
    ("const", 0, {"value": np.float64(1.0)}, "exact", ["9**9**9**9", "__import__('os')", 1, "1+" * 150 + "1",
                                                       "99999**999", "2**(1+1)"]),
    ("input", 0, {"shape": (2,), "dtype": "float64"}, "shape", [(2**31,), ("a b",), (2**30, 2**30), (1,) * 33]),
    ("param", 0, {"shape": (2,), "dtype": "float64"}, "role", ["owner", 1]),
    ("add", 2, {}, "note", ["a b", object(), {"k": 1}]),  # an op outside the table: plain literals only
]


@pytest.mark.parametrize("op, arity, good, key, bad", BAD_ATTRS, ids=[f"{r[0]}-{r[3]}" for r in BAD_ATTRS])
def test_attrs_are_typed_when_a_node_is_built(op, arity, good, key, bad):
    from graphc.ir.ops.attrs import AttrError
    b, x = _x()
    b.graph.add(op, [x.node] * arity, dict(good))  # the good attrs pass
    for value in bad:
        with pytest.raises(AttrError) as e:
            b.graph.add(op, [x.node] * arity, {**good, key: value}, name="victim")
        message = str(e.value)
        assert message.startswith(f"node 'victim' ({op}): ") and f"'{key}'" in message and "\n" not in message
    assert not b.graph.has_name("victim")  # nothing half-added


def test_exact_constants_within_the_limits_still_load():
    from graphc.ir.ops.attrs import exact_problem
    for text in ("1/4", "2/sqrt(pi)", "-3**2", "2**-1", "9**(1/2)", "E**2", "log(2)/3", "1e-3", "2**64"):
        assert exact_problem(text) is None, text


def test_attrs_are_typed_again_by_validate():
    graph = gc.trace(lambda x: gc.sum(x, axis=1), gc.Input((2, 3)))
    graph.node(graph.find("sum_1"))["attrs"]["keepdims"] = "True"  # a hand edit past Graph.add
    with pytest.raises(GraphcError, match="node 'sum_1' \\(sum\\): attr 'keepdims' must be true or false"):
        graph.validate()
