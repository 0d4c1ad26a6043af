"""Graphs and helpers shared by the stepper's tests (tests/test_stepper*.py)."""
import json
import re

import numpy as np
import pytest

import graphc as gc
from tests.conftest import lecture_graph

POINT = {"x1": 5.0, "x2": 4.0, "x3": 3.0, "x4": 2.0}
HOSTILE = '</script><script>window.pwned=1</script>\u2028<b>&amp;'


def tape_of(page_html):
    found = re.search(r'<script type="application/json" id="gc-tape">(.*?)</script>', page_html, re.S)
    return json.loads(found.group(1))


def hostile_graph():
    graph = gc.grad(lecture_graph())
    graph.name = HOSTILE
    graph.nx.nodes[graph.find("a")]["name"] = HOSTILE  # bypasses NAME_RE, as a hand-edited file could
    return graph


def _square_sum(x):
    y = x * x  # one value used twice by one op: two edges, two steps
    return gc.sum(y)


def _positive(x):
    return gc.gt(x, 0.0)  # a bool output: values only, no gradient steps


ODD = {  # name: (function, input shape, feed)
    "zero-size": (_square_sum, (0, 3), np.zeros((0, 3))),
    "nan-inf": (_square_sum, (2, 3), np.array([[np.nan, np.inf, -np.inf], [1.0, 2.0, 3.0]])),
    "no-grads": (_positive, (3,), np.array([1.0, -1.0, 2.0])),
    "0-d": (_square_sum, (), np.float64(-3.0)),
}


# ----- fixtures shared by both stepper test modules (they import them) -----

@pytest.fixture(scope="module")
def lecture():
    graph = gc.grad(lecture_graph())
    return graph, gc.evaluate(graph, POINT), gc.render_html(graph, POINT)


@pytest.fixture(scope="module")
def odd_pages():
    return {name: gc.render_html(gc.trace(fn, shape), {"x": feed}) for name, (fn, shape, feed) in ODD.items()}
