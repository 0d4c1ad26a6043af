"""Write the hostile graph-file corpus: `python tests/hostile/make_corpus.py` (from the repo root).

refused/   files every loader and every CLI command must refuse: exit 2, one stderr
           line, no file created, well within the time limit.  expected.json maps
           each file name to text its error must contain (the field or limit it names).
accepted/  near misses that are fine (an upper-case .JSON suffix, a `<lambda>` name):
           they must load, compile and run.
exact/     valid graphs whose exact (`render --exact`) evaluation would never finish.

Every payload tries to create PWNED in the current directory: the tests run with
cwd = an empty folder and fail if anything appears there.
"""
import copy
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import graphc as gc  # noqa: E402
from graphc.io import graphfile as graphfile  # noqa: E402
from graphc.frontend.dsl import constant  # noqa: E402

PWN = "open('PWNED','w')"
PY_PAYLOAD = "import pathlib\npathlib.Path('PWNED').write_text('ran')\ngraph = None\n"


def base_graph():
    """A small graph whose nodes carry every kind of attr: axes, keepdims, alpha, perm,
    shape (with a named dim), axis, depth, dtype, a const value and its exact text."""
    b = gc.Builder("base")
    x = b.input("x", ("N", 3))
    y = b.input("y", ("N",), dtype="int64")
    w = b.param("W", (3, 3))
    h = gc.leaky_relu(gc.matmul(x, w), alpha=0.1, name="h")
    t = gc.reshape(gc.transpose(h, (1, 0), name="ht"), (3, "N"), name="t")
    s = gc.sum(t, axis=(0,), keepdims=True, name="s")
    half = constant(b.graph, 0.5, "float64", exact="1/2", name="half")
    p = gc.softmax(h, axis=1, name="p")
    onehot = gc.one_hot(y, 3, "float64", name="onehot")
    ce = gc.sum(gc.mul(p, onehot), name="ce")
    loss = gc.add(gc.mul(gc.sum(s, name="ssum"), half), gc.cast(ce, "float64"), name="loss")
    return b.output(loss=loss)


def node(data, name):
    return next(n for n in data["nodes"] if n["name"] == name)


def edit(fn):
    def make(base):
        data = copy.deepcopy(base)
        fn(data)
        return json.dumps(data).encode()
    return make


def setter(path, value):
    """An edit that sets data[path...] = value, path given as keys and node names."""
    def fn(data):
        target = data
        for key in path[:-1]:
            target = node(data, key[1:]) if isinstance(key, str) and key.startswith("@") else target[key]
        target[path[-1]] = value
    return edit(fn)


def attr(name, key, value):
    return setter(("@" + name, "attrs", key), value)


def raw(content):
    return lambda base: content if isinstance(content, bytes) else content.encode()


def zip_bytes():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in (("x.npy", b"\x93NUMPY"), ("model.py", PY_PAYLOAD)):
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)  # fixed: reproducible
    return buf.getvalue()


def deep(levels):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


def many_nodes(base):
    data = copy.deepcopy(base)
    data["nodes"] = [0] * 200_001  # counted before anything else is read
    return json.dumps(data, separators=(",", ":")).encode()


def add_pow_bomb(data):
    """loss2 = loss * nine ** (nine * k), with const nine = 9.0 whose exact value is 9**99
    and a scalar input k: finite as floats at k = 1 (9.0 ** 9.0), but as exact rationals
    an integer of about 10**100 digits.  k keeps autodiff from folding the power away."""
    nid = max(n["id"] for n in data["nodes"]) + 1
    nine, k, e, bomb, loss2 = range(nid, nid + 5)

    def new(i, op, name, attrs=None, dtype="float64"):
        return {"id": i, "op": op, "attrs": attrs or {}, "shape": [], "dtype": dtype, "name": name,
                "phase": "forward"}
    data["nodes"] += [new(nine, "const", "nine", {"value": 9.0, "exact": "9**99"}),
                      new(k, "input", "k", {"shape": {"tuple": []}, "dtype": "float64"}),
                      new(e, "mul", "e"), new(bomb, "pow", "bomb"), new(loss2, "mul", "loss2")]
    edges = [(nine, e, 0), (k, e, 1), (nine, bomb, 0), (e, bomb, 1), (node(data, "loss")["id"], loss2, 0),
             (bomb, loss2, 1)]
    data["edges"] += [{"source": a, "target": b, "pos": p} for a, b, p in edges]
    data["graph"]["outputs"] = {"loss2": loss2}


def cycle(data):
    """Edge loss -> h replaces x@W -> h: a cycle through the graph."""
    h = node(data, "h")
    for e in data["edges"]:
        if e["target"] == h["id"]:
            e["source"] = node(data, "loss")["id"]


# name -> (maker, text the error must contain)
REFUSED = {
    # injection through every string field
    "graph_name_docstring.json": (setter(("graph", "name"), '""";import os;os.system("touch PWNED");"""'), "graph/name"),
    "graph_name_dot.json": (setter(("graph", "name"), '<a>{ evil [label="INJECTED" URL="javascript:alert(1)"] } '
                                   'digraph <b>'), "graph/name"),
    "graph_name_backslash.json": (setter(("graph", "name"), "g\\"), "graph/name"),
    "graph_name_nul.json": (setter(("graph", "name"), "g\x00x"), "graph/name"),
    "graph_name_newline.json": (setter(("graph", "name"), "g\n"), "graph/name"),
    "graph_name_too_long.json": (setter(("graph", "name"), "g" * 201), "graph/name"),
    "graph_name_number.json": (setter(("graph", "name"), 7), "graph/name"),
    "node_name_code.json": (setter(("@x", "name"), f'x");{PWN}#'), "nodes/0/name"),
    "node_name_nul.json": (setter(("@x", "name"), "x\x00"), "nodes/0/name"),
    "node_name_html.json": (setter(("@x", "name"), "<b>x</b>"), "nodes/0/name"),
    "node_name_escape.json": (setter(("@x", "name"), "x\x1b[2J"), "nodes/0/name"),
    "output_name_code.json": (setter(("graph", "outputs"), {f"f = {PWN}": 0}), "graph/outputs"),
    "grad_name_code.json": (setter(("graph", "grads"), {"x; import os": 0}), "graph/grads"),
    "update_key_code.json": (setter(("graph", "updates"), {"__import__('os')": 0}), "graph/updates"),
    "dim_name_code.json": (setter(("@x", "shape"), [f"N); {PWN}; (", 3]), "nodes/0/shape"),
    "attr_dim_name_code.json": (attr("t", "shape", {"tuple": [3, f"N');{PWN}#"]}), "attr 'shape'"),
    "attr_keepdims_code.json": (attr("s", "keepdims", f"{PWN} or True"), "attr 'keepdims' must be true or false"),
    "attr_axes_code.json": (attr("s", "axes", "__import__('os').system('touch PWNED')"), "attr 'axes'"),
    "attr_alpha_code.json": (attr("h", "alpha", f"0.1 if {PWN} else 0"), "attr 'alpha' must be a finite number"),
    "attr_alpha_nan.json": (attr("h", "alpha", {"float": "nan"}), "attr 'alpha' must be a finite number"),
    "attr_dtype_code.json": (attr("onehot", "dtype", f"float64'); {PWN}; ('"), "attr 'dtype'"),
    "attr_perm_code.json": (attr("ht", "perm", {"tuple": [PWN, 0]}), "attr 'perm'"),
    "attr_axis_bool.json": (attr("p", "axis", True), "attr 'axis'"),
    "attr_depth_string.json": (attr("onehot", "depth", "3"), "attr 'depth'"),
    "attr_unknown_key.json": (attr("s", "code", "print(1)"), "unknown attr 'code'"),
    "attr_key_code.json": (attr("s", "a;b", 1), "attrs"),
    "attr_role_code.json": (attr("W", "role", PWN), "attr 'role'"),
    "attr_missing.json": (edit(lambda d: node(d, "s")["attrs"].pop("keepdims")), "missing attr 'keepdims'"),
    "exact_code.json": (attr("half", "exact", "__import__('os').system('touch PWNED')"), "attr 'exact'"),
    "exact_tower.json": (attr("half", "exact", "9**9**9**9"), "attr 'exact'"),
    "exact_long.json": (attr("half", "exact", "1+" * 150 + "1"), "at most 200 characters"),
    "exact_digits.json": (attr("half", "exact", "99999**999"), "2000 digits"),
    "exact_lambda.json": (attr("half", "exact", "(lambda: 1)()"), "plain arithmetic"),
    "const_string_value.json": (attr("half", "value", PWN), "attr 'value'"),
    # wrong types
    "version_string.json": (setter(("version",), "1"), "version"),
    "nodes_object.json": (setter(("nodes",), {"0": {}}), "nodes"),
    "shape_float.json": (setter(("@x", "shape"), ["N", 3.5]), "nodes/0/shape"),
    "node_id_negative.json": (setter(("@x", "id"), -1), "nodes/0/id"),
    "node_id_huge.json": (raw(b'{"format": "graphc-graph", "version": 1, "nodes": [{"id": 1' + b"0" * 40 + b"}]}"),
                          "19 digits"),
    "dtype_object.json": (setter(("@x", "dtype"), "object"), "nodes/0/dtype"),
    "op_unknown.json": (setter(("@h", "op"), "system"), "unknown op 'system'"),
    "op_code.json": (setter(("@h", "op"), "sum; import os"), "/op"),
    "edge_to_nowhere.json": (edit(lambda d: d["edges"].append({"source": 0, "target": 999, "pos": 0})),
                             "no node with id 999"),
    "duplicate_ids.json": (edit(lambda d: d["nodes"].append(dict(d["nodes"][0], name="x2"))), "used twice"),
    "cycle.json": (edit(cycle), "cycle"),
    "top_level_list.json": (raw("[1, 2, 3]"), "not a graphc graph file"),
    # absurd sizes
    "dim_too_big.json": (setter(("@x", "shape"), ["N", 10**12]), "nodes/0/shape"),
    "shape_too_many_entries.json": (setter(("@W", "shape"), [2**30, 2**30]), "268,435,456 entries"),
    "rank_33.json": (setter(("@x", "shape"), [1] * 33), "nodes/0/shape"),
    "reshape_too_big.json": (attr("t", "shape", {"tuple": [2**31 - 1, 2**31 - 1]}), "attr 'shape'"),
    "one_hot_depth_huge.json": (attr("onehot", "depth", 10**15), "attr 'depth'"),
    "const_array_huge.json": (attr("half", "value", {"array": {"dtype": "float64", "shape": [2**30, 2**30],
                                                               "data": []}}), "over the limit"),
    "too_many_nodes.json": (many_nodes, "over the limit of 200,000"),
    "float_overflow.json": (raw('{"format": "graphc-graph", "x": 1e999}'), "too large for a float"),
    # deep nesting
    "deep_attr.json": (attr("s", "axes", deep(40)), "nested deeper than the limit of 32"),
    "deep_100k.json": (raw("[" * 100_000 + "]" * 100_000), "nested deeper than the limit of 32"),
    # NUL bytes and non-JSON
    "nul_byte.json": (lambda base: json.dumps(base).encode()[:20] + b"\x00" + json.dumps(base).encode()[20:],
                      "not valid JSON"),
    "op_nul.json": (setter(("@h", "op"), "sum\x00"), "/op"),
    "nan_literal.json": (raw('{"format": "graphc-graph", "x": NaN}'), "NaN is not a JSON number"),
    "empty.json": (raw(b""), "JSON"),
    "not_utf8.json": (raw(b'{"format": "\xff"}'), "UTF-8"),
    "truncated.json": (lambda base: json.dumps(base).encode()[:300], "ends too early"),
    # wrong suffixes and disguised files
    "graph.JSON": (raw(PY_PAYLOAD), "not valid JSON"),
    "model.graph": (lambda base: json.dumps(base).encode(), "not a graph file name"),
    "g.json.txt": (lambda base: json.dumps(base).encode(), "not a graph file name"),
    "weights.npz": (lambda base: zip_bytes(), "not a graph file name"),
    "model_py.json": (raw(PY_PAYLOAD), "not valid JSON"),
    "model.py": (raw(PY_PAYLOAD), "--python"),
    "zip.json": (lambda base: zip_bytes(), "UTF-8"),
}

ACCEPTED = {
    "GRAPH.JSON": lambda base: json.dumps(base).encode(),
    "lambda_name.json": setter(("graph", "name"), "<lambda>"),
    "dashed.name-v2.json": setter(("graph", "name"), "mlp.v2-final"),
}

EXACT = {"pow_bomb.json": edit(add_pow_bomb)}


def write(folder, makers, base):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, make in makers.items():
        (folder / name).write_bytes(make(base))


def main():
    base = graphfile.to_data(base_graph())
    write(HERE / "refused", {k: m for k, (m, _) in REFUSED.items()}, base)
    write(HERE / "accepted", ACCEPTED, base)
    write(HERE / "exact", EXACT, base)
    expected = {k: text for k, (_, text) in REFUSED.items()}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(REFUSED)} refused, {len(ACCEPTED)} accepted, {len(EXACT)} exact files under {HERE}")


if __name__ == "__main__":
    main()
