"""Annotated renders: the lecture's numbers must be in the DOT and in the laid-out SVG.

The oracle is the lecture's hand calculation for f = (x1 + x2) * x3 - x4 at
(5, 4, 3, 2) (seed 001), and the reference interpreter for tensors.
"""
import html
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
import pytest

import graphc as gc
from graphc import render
from graphc.view import format as fmt
from graphc.errors import GraphcError
from graphc.view.engines import LayoutUnavailable
from tests.conftest import lecture_graph

POINT = {"x1": 5.0, "x2": 4.0, "x3": 3.0, "x4": 2.0}
VALUES = {"x1": 5, "x2": 4, "x3": 3, "x4": 2, "a": 9, "b": 27, "f": 25}
GRADS = {"x1": 3, "x2": 3, "x3": 9, "x4": -1, "a": 3, "b": 1, "f": 1}
# The slide, edge by edge: (U, L, U*L).
EDGES = {("x4", "f"): (1, -1, -1), ("b", "f"): (1, 1, 1), ("x3", "b"): (1, 9, 9),
         ("a", "b"): (1, 3, 3), ("x1", "a"): (3, 1, 3), ("x2", "a"): (3, 1, 3)}
SVG = "{http://www.w3.org/2000/svg}"


def lecture_dot(**options):
    return render.annotate(lecture_graph(), POINT).to_dot(**options).source


def parse_dot(source):
    """{name: [label texts]} for nodes and {(src, dst): [texts]} for edges, from DOT text."""
    def texts(label):  # strip the markup first, then unescape: a name may contain "<b>"
        return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in re.findall(r"<TD>(.*?)</TD>", label)]
    ids, nodes, edges = {}, {}, {}
    for nid, label in re.findall(r"^\s*(n\d+) \[label=<(<TABLE.*?</TABLE>)>", source, re.M):
        rows = texts(label)
        name = rows[0].rsplit(" ", 1)[0].strip()  # "name  op"
        ids[nid], nodes[name] = name, rows
    for src, dst, label in re.findall(r"^\s*(n\d+) -> (n\d+)(?: \[label=<(<TABLE.*?</TABLE>)>\])?$", source, re.M):
        edges[(ids[src], ids[dst])] = texts(label)
    return nodes, edges


def parse_svg(svg):
    """The same mapping, read from the laid-out SVG: each node's and edge's <text> lines."""
    root = ET.fromstring(svg)
    titles, nodes, edges = {}, {}, {}
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") in ("node", "edge")]
    for g in groups:
        if g.get("class") == "node":
            texts = [t.text for t in g.iter(f"{SVG}text")]
            titles[g.find(f"{SVG}title").text] = texts
    for nid, texts in titles.items():
        nodes[" ".join(texts).split()[0]] = texts
    names = {nid: " ".join(t).split()[0] for nid, t in titles.items()}
    for g in groups:
        if g.get("class") == "edge":
            src, dst = g.find(f"{SVG}title").text.split("->")
            edges[(names[src], names[dst])] = [t.text for t in g.iter(f"{SVG}text")]
    return nodes, edges


def joined(rows):
    return " ".join(" ".join(rows).split())


def check_lecture(nodes, edges):
    assert set(nodes) == set(VALUES)
    for name, rows in nodes.items():
        text = joined(rows)
        assert f"value {VALUES[name]}" in text, (name, rows)
        assert f"grad {GRADS[name]}" in text, (name, rows)
    assert set(edges) == set(EDGES)
    for edge, (u, loc, down) in EDGES.items():
        assert joined(edges[edge]) == f"U = {u} L = {loc} U·L = {down}", (edge, edges[edge])


def test_dot_holds_the_lecture_numbers():
    check_lecture(*parse_dot(lecture_dot()))


def test_svg_holds_the_lecture_numbers(tmp_path):
    out = tmp_path / "lecture.svg"
    render.render(render.annotate(lecture_graph(), POINT), out)
    check_lecture(*parse_svg(out.read_text()))


def test_the_shipped_example_svg_is_the_lecture_slide():
    from pathlib import Path
    svg = Path(__file__).resolve().parents[1] / "examples" / "lecture_graph.svg"
    check_lecture(*parse_svg(svg.read_text()))


def test_png_decodes_at_a_sensible_size(tmp_path):
    out = tmp_path / "lecture.png"
    render.render(render.annotate(lecture_graph(), POINT), out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 300 <= width <= 3000 and 150 <= height <= 2000, (width, height)
    assert width > height  # rankdir LR: the graph runs left to right
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"


def test_pdf_and_dot_formats(tmp_path):
    ann = render.annotate(lecture_graph(), POINT)
    assert render.render(ann, tmp_path / "g.pdf") in ("dot", "pygraphviz")
    assert (tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"
    render.render(ann, tmp_path / "g.dot")
    check_lecture(*parse_dot((tmp_path / "g.dot").read_text()))
    with pytest.raises(GraphcError, match="format 'jpg'"):
        render.render(ann, tmp_path / "g.jpg")


def test_forward_only_has_values_but_no_gradients():
    nodes, edges = parse_dot(lecture_dot(forward_only=True))
    assert joined(nodes["b"]) == "b mul value 27"
    assert all(rows == [] for rows in edges.values())


def test_backward_graph_draws_the_gradient_nodes():
    nodes, edges = parse_dot(lecture_dot(backward_graph=True))
    grads = gc.grad(lecture_graph())
    assert set(nodes) == {grads.name_of(n) for n in grads.nx.nodes}
    assert joined(nodes["g_x3"]) == "g_x3 mul value 9"
    assert joined(nodes["g_a"]) == "g_a mul output g_x1, g_x2 value 3"  # g_x1 and g_x2 are the node g_a
    assert ("g_f", "g_a") in edges and ("x3", "g_a") in edges


def test_rankdir():
    assert "rankdir=TB" in lecture_dot(rankdir="TB")
    with pytest.raises(GraphcError, match="rankdir"):
        lecture_dot(rankdir="sideways")


def test_exact_mode_matches_fractions():
    x1, x2, x3, x4 = Fraction(1, 3), Fraction(1, 10), Fraction(3), Fraction(2)  # the oracle
    ann = render.annotate(lecture_graph(), {"x1": "1/3", "x2": "0.1", "x3": 3, "x4": 2.0}, exact=True)
    nodes, edges = parse_dot(ann.to_dot().source)
    a = x1 + x2
    assert f"value {a}" in joined(nodes["a"]) and f"value {a * x3 - x4}" in joined(nodes["f"])
    assert f"grad {a}" in joined(nodes["x3"])
    assert joined(edges[("x3", "b")]) == f"U = 1 L = {a} U·L = {a}"


def test_exact_mode_agrees_with_the_interpreter_off_the_rationals():
    def model(x, y):
        h = gc.tanh(x * y)
        return gc.exp(h) + x
    graph = gc.trace(model, (), ())
    ann = render.annotate(graph, {"x": "1/2", "y": "3"}, exact=True)
    ev = gc.evaluate(gc.grad(graph), x=0.5, y=3.0)
    out = ann.graph.outputs
    assert float(ann.value(out["g_x"])) == pytest.approx(float(ev.outputs["g_x"]), rel=1e-12)
    assert "tanh(3/2)" in fmt.fmt_value(ann.value(ann.graph.find("h")))[0]


def test_tensors_show_values_when_small_and_statistics_when_big():
    def model(x, W):
        return gc.sum(gc.relu(x @ W))
    graph = gc.trace(model, gc.Input((2, 3)), gc.Param((3, 4)))
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    nodes, edges = parse_dot(render.annotate(graph, {"x": x, "W": W}).to_dot().source)
    assert nodes["x"][1] == "float64 (2, 3)"
    rows = ", ".join("[" + ", ".join(f"{v:.4g}" for v in row) + "]" for row in x)  # 6 entries: shown
    assert nodes["x"][2] == f"value [{rows}]"
    h = np.maximum(x @ W, 0)  # (2, 4): 8 entries, summarised
    relu = next(rows for name, rows in nodes.items() if rows[0].endswith("relu"))
    assert relu[2] == f"value mean {h.mean():.4g}  std {h.std():.4g}"
    assert relu[3] == f"min {fmt.num(h.min())}  max {fmt.num(h.max())}"
    g_W = x.T @ (x @ W > 0)
    assert f"grad mean {g_W.mean():.4g}" in joined(nodes["W"])
    matmul_edge = next(rows for (s, d), rows in edges.items() if s == "W")
    assert matmul_edge[1] == "L = VJP"  # matmul gives a whole VJP, not a local gradient


def test_small_tensor_prints_its_entries():
    assert fmt.fmt_value(np.array([[1.0, 2.5], [-3.0, 0.125]])) == ["[[1, 2.5], [-3, 0.125]]"]
    assert fmt.fmt_value(np.float64(-0.0)) == ["0"]


def test_labels_are_escaped(tmp_path):
    graph = gc.grad(lecture_graph())
    graph.name = 'lec"ture <1> & {x}'
    graph.nx.nodes[graph.find("a")]["name"] = 'a<b> "q" & c'  # bypasses NAME_RE, as a hand edit could
    ann = render.annotate(graph, POINT)
    source = ann.to_dot().source
    assert "a&lt;b&gt; &quot;q&quot; &amp; c" in source
    out = tmp_path / "escaped.svg"
    render.render(ann, out)
    texts = [t.text for t in ET.fromstring(out.read_text()).iter(f"{SVG}text")]
    assert any(t and 'a<b> "q" & c' in t for t in texts)


def test_collapse_by_name_prefix_and_by_structure():
    from tests.models import deep_mlp
    for named in (True, False):
        graph = deep_mlp(depth=5, named=named)
        feeds = deep_mlp_feeds(graph)
        ann = render.annotate(graph, feeds)
        full, _ = parse_dot(ann.to_dot().source)
        source = ann.to_dot(collapse=True).source
        assert "×5" in source and ("layer1 … layer5" in source) == named
        boxes = re.findall(r"^\s*(u\d+) \[label", source, re.M)
        assert len(boxes) == 1
        last = np.asarray(gc.evaluate(graph, feeds)["h5" if not named else "layer5.h"])
        assert f"value mean {fmt.num(last.mean())}" in html.unescape(source)
        drawn = re.findall(r"^\s*(n\d+) \[label", source, re.M)
        assert len(drawn) < len(full) - 20  # 5 layers of matmul, add, tanh, W, b went into the box


def deep_mlp_feeds(graph):
    rng = np.random.default_rng(0)
    shape = lambda n: tuple(3 if d == "N" else d for d in graph.shape(n))  # noqa: E731 - batch of 3
    return {graph.name_of(n): rng.standard_normal(shape(n)) for n in graph.nodes_with_op("input", "param")}


def test_collapse_leaves_unrepeated_graphs_alone():
    ann = render.annotate(lecture_graph(), POINT)
    check_lecture(*parse_dot(ann.to_dot(collapse=True).source))


def test_no_layout_engine_writes_dot_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_LAYOUT", "none")
    with pytest.raises(LayoutUnavailable, match="pip install 'pygraphviz>=2.0.1'") as e:
        render.render(render.annotate(lecture_graph(), POINT), tmp_path / "g.svg")
    assert "wrote" in str(e.value) and "\n" not in str(e.value)
    check_lecture(*parse_dot((tmp_path / "g.dot").read_text()))


def test_graph_without_a_scalar_loss_renders_values_only():
    graph = gc.trace(lambda x: gc.tanh(x), gc.Input((3,)))
    ann = render.annotate(graph, {"x": np.array([0.0, 1.0, 2.0])})
    assert not ann.has_grads and "not a scalar" in ann.note
    nodes, _ = parse_dot(ann.to_dot().source)
    assert joined(nodes["tanh_1"]).endswith(fmt.nested(np.tanh([0.0, 1.0, 2.0])))


def test_jupyter_bundles(monkeypatch):
    graph = gc.grad(lecture_graph())
    bundle = graph._repr_mimebundle_()
    assert bundle["text/plain"] == graph.to_text()
    names = {t.text.split()[0] for t in ET.fromstring(bundle["image/svg+xml"]).iter(f"{SVG}text") if t.text}
    assert {"g_a", "g_x3", "x1", "f"} <= names  # a gradient graph shows its backward nodes
    ann = render.annotate(lecture_graph(), POINT)
    bundle = ann._repr_mimebundle_()
    assert "x4 -> f" in bundle["text/plain"]  # the backprop trace
    check_lecture(*parse_svg(bundle["image/svg+xml"]))
    monkeypatch.setenv("GRAPHC_LAYOUT", "none")
    assert set(graph._repr_mimebundle_()) == {"text/plain"}


def test_the_view_draws_what_check_annotate_hands_it():
    """The CLI's path: a plain check.annotate.Annotation, drawn by view.render, gives the
    same DOT as the public graphc.render.annotate(...).to_dot()."""
    from graphc.check.annotate import Annotation, annotate
    from graphc.view import render as view
    ann = annotate(lecture_graph(), POINT)
    assert type(ann) is Annotation and not hasattr(ann, "to_dot")
    source = view.to_dot(ann).source
    assert source == lecture_dot()
    check_lecture(*parse_dot(source))


def test_a_bare_graph_through_the_public_render_is_annotated_first(tmp_path):
    """graphc.render.render(graph, path) differentiates a graph with a scalar loss, as it always
    did; the view itself, handed a bare graph, draws the structure it was given."""
    from graphc.view import render as view
    render.render(lecture_graph(), tmp_path / "public.dot")
    public = (tmp_path / "public.dot").read_text()
    assert "edges: U (upstream)" in public and "value" not in public
    view.render(lecture_graph(), tmp_path / "view.dot")
    bare = (tmp_path / "view.dot").read_text()
    assert "edges: U" not in bare and "g_" not in bare
    assert set(parse_dot(bare)[0]) == set(parse_dot(public)[0]) == set(VALUES)


def test_importing_the_ir_does_not_import_the_renderer():
    code = "import graphc, sys; print('graphc.view.render' in sys.modules, 'graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ----- hostile names and exact limits (issue 13) ----------------------------------------------
INJECTION = '<a>{ evil [label="INJECTED" URL="javascript:alert(1)"] } digraph <b>'


@pytest.mark.parametrize("name", [INJECTION, "ends in backslash\\", 'quote " and \\" and \\\\ and \\N \\G'])
@pytest.mark.parametrize("options", [{}, {"collapse": True}, {"backward_graph": True}])
def test_a_hostile_graph_name_renders_as_text(name, options, tmp_path):
    """The name is set past the constructor (as a hand edit could); it must stay text."""
    graph = gc.grad(lecture_graph())
    graph.name = name
    ann = render.annotate(graph, POINT)
    out = tmp_path / "g.svg"
    render.render(ann, out, **options)
    svg = out.read_text()
    root = ET.fromstring(svg)  # well-formed
    links = [el for el in root.iter() if el.tag == f"{SVG}a" or any("href" in k.lower() or "javascript" in v
                                                                     for k, v in el.attrib.items())]
    assert links == [] and svg.count("javascript:") == name.count("javascript:")  # as text in the title
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text")).replace("\u200b", "")  # see render.esc
    assert f"graph {name}" in texts
    drawn = len(graph) if options.get("backward_graph") else 7
    assert sum(1 for g in root.iter(f"{SVG}g") if g.get("class") == "node") == drawn  # nothing injected or lost


def test_the_constructor_refuses_names_that_are_not_identifiers():
    for name in (INJECTION, "a\\", "a\x00b", "x\n", "", 7, "a" * 201, 'a"b', "a\tb", "<b>"):
        with pytest.raises(GraphcError, match="graph name"):
            gc.Graph(name)
    for name in ("<lambda>", "mlp.v2-final", "odd names"):
        assert gc.Graph(name).name == name


def test_exact_mode_on_small_tensors():
    """Entries of an exact tensor are SymPy numbers; they used to crash ('One' has no ndim)."""
    graph = gc.trace(lambda x: gc.sum(x * x), gc.Input((3,)))
    ann = render.annotate(graph, {"x": np.array(["1", "1/2", "3"])}, exact=True)
    nodes, _ = parse_dot(ann.to_dot().source)
    assert "value [1, 1/2, 3]" in joined(nodes["x"]) and "grad [2, 1, 6]" in joined(nodes["x"])


@pytest.mark.parametrize("text", ["1e999999999", "9**9**9", "1" * 101, "1/0"])
def test_exact_feeds_that_would_not_finish_are_refused(text):
    graph = gc.trace(lambda x: x * x, gc.Input(()))
    with pytest.raises(GraphcError, match="limit|not a number"):
        render.annotate(graph, {"x": text}, exact=True)


def test_exact_power_over_the_digit_limit_is_refused():
    from graphc.frontend.dsl import constant
    b = gc.Builder("powbomb")
    x = b.input("x", ())
    c = constant(b.graph, 9.0, "float64", exact="9**99")
    p = gc.Value(b.graph, b.graph.add("pow", [c.node, c.node]))  # past the DSL's constant folding
    graph = b.output(y=x * p)
    with pytest.raises(GraphcError, match="more than 2000 digits"):
        render.annotate(graph, {"x": "2"}, exact=True, differentiate=False)  # grad would fold the consts
