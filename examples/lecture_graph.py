"""The lecture's computation graph f = (x1 + x2) * x3 - x4 at (5, 4, 3, 2).

Traces the graph, differentiates it, prints every edge's upstream gradient U,
local gradient L and their product U * L (the gradient passed downstream),
then compiles the gradient graph with the Python backend and runs it.

    python examples/lecture_graph.py

`graphc emit --python examples/lecture_graph.py --grad` uses build() below, and
`graphc render --python examples/lecture_graph.py` draws it at FEEDS (the lecture's point).
"""
import numpy as np

import graphc as gc

POINT = {"x1": 5.0, "x2": 4.0, "x3": 3.0, "x4": 2.0}
FEEDS = POINT  # `graphc render` and `graphc check` feed these unless told otherwise


def f(x1, x2, x3, x4):
    a = x1 + x2  # local variable names become node names
    b = a * x3
    f = b - x4
    return f


def build():
    """The forward graph (scalar float64 inputs x1..x4, output f)."""
    return gc.trace(f, (), (), (), ())


def edge_node_names(graph, src, dst):
    """Which gradient-graph nodes hold U, L and U*L for the edge src -> dst."""
    s, d = graph.find(src), graph.find(dst)
    rec = next(r for (a, b, _), r in graph.edge_grads.items() if (a, b) == (s, d))
    return {role: graph.name_of(n) for role, n in rec.items()}


def main():
    graph = build()
    print("== forward graph ==")
    print(graph.to_text())

    grads = gc.grad(graph)  # a new graph: forward + backward nodes
    ev = gc.evaluate(grads, POINT)
    print(f"\nf(5, 4, 3, 2) = {ev['f']:g}")

    print("\n== gradients ==")
    for name in ("x1", "x2", "x3", "x4"):
        print(f"df/d{name} = {ev.grad(name):g}")
    assert [float(ev.grad(k)) for k in ("x1", "x2", "x3", "x4")] == [3.0, 3.0, 9.0, -1.0]

    print("\n== per edge: U (upstream), L (local), U*L (downstream) ==")
    for src, dst in [("b", "f"), ("x4", "f"), ("a", "b"), ("x3", "b"), ("x1", "a"), ("x2", "a")]:
        e = ev.edge(src, dst)
        names = edge_node_names(grads, src, dst)
        print(f"{src:>2} -> {dst}:  U = {names['upstream']:<4} = {e['upstream']:>2g}   "
              f"L = {names['local']:<8} = {e['local']:>2g}   U*L = {names['downstream']:<4} = {e['downstream']:>2g}")
        assert np.isclose(e["upstream"] * e["local"], e["downstream"])

    print("\n== gradient graph ==")
    print(grads.to_text())

    compiled = gc.compile(grads, backend="python")
    print("\n== emitted Python source ==")
    print(compiled.source)
    print(f"(loaded from {compiled.path})")
    out = compiled(POINT)
    print("\n== compiled run ==")
    print({k: float(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
