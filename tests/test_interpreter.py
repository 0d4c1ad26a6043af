"""The one graph walker (graphc.check.interpreter.walk) with its two value functions:
NumPy references (evaluate) and SymPy forms (exact renders, the VJP proofs)."""
import ast
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.check import exact, interpreter, verify
from graphc.check.interpreter import numpy_value, sympy_value, walk
from tests.conftest import lecture_graph

CHECK = Path(__file__).resolve().parent.parent / "graphc" / "check"


def _leaves(graph, feeds):
    return {graph.find(k): v for k, v in feeds.items()}


def _model(x, W):
    """Symbolic batch N, a reshape whose `shape` attr names N, transcendental ops."""
    h = gc.tanh(x @ W)
    return gc.sum(gc.exp(gc.reshape(h, ("N", 2))) * 0.5)


def test_sympy_values_are_the_hand_calculation():
    g = gc.grad(lecture_graph())
    third, tenth = sympy.Rational(1, 3), sympy.Rational(1, 10)
    feeds = {"x1": third, "x2": tenth, "x3": sympy.Integer(3), "x4": sympy.Integer(2)}
    values = walk(g, _leaves(g, {k: np.asarray(v, dtype=object) for k, v in feeds.items()}), sympy_value)
    x1, x2, x3, x4 = Fraction(1, 3), Fraction(1, 10), Fraction(3), Fraction(2)  # the oracle
    assert values[g.find("f")].item() == sympy.Rational((x1 + x2) * x3 - x4)
    assert values[g.grads["x3"]].item() == sympy.Rational(x1 + x2)
    assert values[g.grads["x1"]].item() == 3


def test_numpy_and_sympy_values_agree_with_symbolic_dims():
    g = gc.grad(gc.trace(_model, ("N", 3), (3, 2)), loss=None)
    rng = np.random.default_rng(0)
    x, W = rng.integers(-3, 4, (4, 3)) / 4, rng.integers(-3, 4, (3, 2)) / 4
    _, dims = interpreter.bind_feeds(g, {"x": x, "W": W})
    assert dims == {"N": 4}
    numeric = walk(g, _leaves(g, {"x": x, "W": W}), numpy_value, dims)
    rational = np.vectorize(lambda v: sympy.Rational(str(v)), otypes=[object])
    symbolic = walk(g, _leaves(g, {"x": rational(x), "W": rational(W)}), sympy_value, dims)
    assert numeric.keys() == symbolic.keys()
    for n, value in numeric.items():
        got = np.vectorize(lambda e: float(sympy.N(e, 30)), otypes=[float])(symbolic[n]) if symbolic[n].size else value
        np.testing.assert_allclose(got, value, rtol=1e-12, atol=1e-15, err_msg=g.name_of(n))


def test_evaluate_is_the_numpy_walk():
    g = gc.grad(gc.trace(_model, ("N", 3), (3, 2)))
    x, W = np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0, 1, 6).reshape(3, 2)
    ev = gc.evaluate(g, x=x, W=W)
    walked = walk(g, _leaves(g, {"x": x, "W": W}), numpy_value, {"N": 2})
    for n in g.toposort():
        np.testing.assert_array_equal(ev.values[n], walked[n])


def test_walk_keeps_the_bound_leaves_and_never_mutates_them():
    g = lecture_graph()
    leaves = _leaves(g, {"x1": np.float64(5), "x2": np.float64(4), "x3": np.float64(3), "x4": np.float64(2)})
    before = dict(leaves)
    values = walk(g, leaves, numpy_value)
    assert leaves == before and all(values[n] is v for n, v in leaves.items())
    assert float(values[g.find("f")]) == 25.0


def test_exact_render_and_proofs_walk_through_the_interpreter(monkeypatch):
    """check/exact.py and check/verify.py have no walker of their own."""
    calls = []
    real = interpreter.walk

    def spy(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)
    monkeypatch.setattr(exact, "walk", spy)
    monkeypatch.setattr(verify, "walk", spy)
    exact.exact_values(lecture_graph(), {"x1": "1/3", "x2": 4, "x3": 3, "x4": 2})
    verify.sym_evaluate(lecture_graph(), {k: verify.symbols(k, ()) for k in ("x1", "x2", "x3", "x4")})
    assert len(calls) == 2 and calls[1] is sympy_value


@pytest.mark.parametrize("path", sorted(CHECK.glob("*.py")), ids=lambda p: p.name)
def test_only_the_interpreter_walks_a_graph(path):
    """A second walker is a loop over graph.toposort() outside interpreter.py."""
    calls = [n for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "toposort"]
    assert (calls != []) == (path.name == "interpreter.py"), f"{path.name} walks the graph itself"
