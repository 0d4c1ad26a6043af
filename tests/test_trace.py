"""The backprop trace: the lecture's step-by-step walk-through, as a table."""
import numpy as np
import pytest

import graphc as gc
from graphc import render
from graphc.view.backprop_table import HEADER, backprop_rows, format_markdown, format_text
from graphc.errors import GraphcError
from tests.conftest import lecture_graph
from tests.models import fan_out

POINT = {"x1": 5.0, "x2": 4.0, "x3": 3.0, "x4": 2.0}
# Seed 001's slides, in their order: f = b - x4 first (x4, then b), then b = a * x3, then a = x1 + x2.
SLIDES = [
    ("f = b - x4", "x4 -> f", "2", "1", "-1", "-1"),
    ("f = b - x4", "b -> f", "27", "1", "1", "1"),
    ("b = a * x3", "x3 -> b", "3", "1", "9", "9"),
    ("b = a * x3", "a -> b", "9", "1", "3", "3"),
    ("a = x1 + x2", "x2 -> a", "4", "3", "1", "3"),
    ("a = x1 + x2", "x1 -> a", "5", "3", "1", "3"),
]


def lecture_ann(**kw):
    return render.annotate(lecture_graph(), POINT, **kw)


def test_rows_follow_the_lecture_slides():
    rows = backprop_rows(lecture_ann())
    assert [r.step for r in rows] == list(range(1, 7))
    assert [(r.node, r.edge, r.value, r.upstream, r.local, r.downstream) for r in rows] == SLIDES


def test_text_table():
    text = format_text(lecture_ann())
    lines = text.splitlines()
    assert lines[0].split("  ")[0] == "step" and "upstream U" in lines[0] and "downstream U·L" in lines[0]
    assert set(lines[1]) <= {"-", " "}
    for line, expected in zip(lines[2:8], SLIDES):
        cells = [c.strip() for c in line.split("  ") if c.strip()]
        assert cells[1:] == list(expected), line
    assert lines[-4:] == ["df/dx1 = 3", "df/dx2 = 3", "df/dx3 = 9", "df/dx4 = -1"]


def test_markdown_table():
    md = format_markdown(lecture_ann())
    lines = md.splitlines()
    assert lines[0] == "| " + " | ".join(HEADER) + " |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    table = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:8]]
    assert [tuple(r[1:]) for r in table] == SLIDES
    assert "- df/dx3 = 9" in lines


def test_fan_out_rows_sum_to_the_gradient():
    """z = x * y, w = z + y, o = relu(w) at x = 3, y = 2: y gets 1 (via w) + 3 (via z) = 4."""
    ann = render.annotate(gc.trace(fan_out, (), ()), {"x": 3.0, "y": 2.0})
    rows = {r.edge: r for r in backprop_rows(ann)}
    assert rows["y -> w"].downstream == "1" and rows["y -> z"].downstream == "3"
    assert rows["x -> z"].local == "2" and rows["x -> z"].downstream == "2"
    assert "do/dy = 4" in format_text(ann) and "do/dx = 2" in format_text(ann)


def test_vjp_ops_and_tensors():
    def model(x, W):
        return gc.sum(x @ W)
    graph = gc.trace(model, gc.Input((2, 2)), gc.Param((2, 2)))
    x, W = np.array([[1.0, 2.0], [3.0, 4.0]]), np.eye(2)
    rows = backprop_rows(render.annotate(graph, {"x": x, "W": W}))
    matmul = next(r for r in rows if r.edge == "W -> matmul_1")
    assert matmul.local == "VJP"
    assert matmul.downstream == "(2, 2) max|·| 6"  # d sum(xW)/dW = x^T 1: columns of sums 4 and 6
    assert np.abs(x.T @ np.ones((2, 2))).max() == 6
    assert "\\|" in format_markdown(render.annotate(graph, {"x": x, "W": W}))  # pipes escaped in cells


def test_exact_trace():
    rows = backprop_rows(render.annotate(lecture_graph(), {**POINT, "x1": "1/3"}, exact=True))
    assert rows[2].local == "13/3" and rows[2].downstream == "13/3"  # x3's gradient is a = 1/3 + 4


def test_no_gradients_or_no_values_is_an_error():
    scalar_free = gc.trace(lambda x: gc.tanh(x), gc.Input((2,)))
    with pytest.raises(GraphcError, match="no gradients to trace.*not a scalar"):
        backprop_rows(render.annotate(scalar_free, {"x": np.zeros(2)}))
    with pytest.raises(GraphcError, match="needs values"):
        backprop_rows(render.annotate(lecture_graph()))
