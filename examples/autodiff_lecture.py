"""The micrograd-style example: z = x * y, w = z + y, o = relu(w) at x = 3, y = 2.

o = relu(3 * 2 + 2) = 8, and since w > 0 the ReLU passes the gradient through:
do/dx = y = 2 and do/dy = x + 1 = 4 (y is used twice, so its two
contributions are summed).

    python examples/autodiff_lecture.py
"""
import graphc as gc

FEEDS = {"x": 3.0, "y": 2.0}  # `graphc render --python examples/autodiff_lecture.py --trace` uses these


def o(x, y):
    z = x * y
    w = z + y
    o = gc.relu(w)
    return o


def build():
    return gc.trace(o, (), ())


def main():
    graph = build()
    print(graph.to_text())
    grads = gc.grad(graph)
    ev = gc.evaluate(grads, x=3.0, y=2.0)
    print(f"\no = {ev['o']:g}   (z = {ev['z']:g}, w = {ev['w']:g})")
    print(f"x.grad = {ev.grad('x'):g}")
    print(f"y.grad = {ev.grad('y'):g}")
    assert (float(ev.grad("x")), float(ev.grad("y"))) == (2.0, 4.0)
    print("\ny fans out to z and w; its two contributions:")
    for dst in ("z", "w"):
        e = ev.edge("y", dst)
        print(f"  y -> {dst}: U = {e['upstream']:g}, L = {e['local']:g}, U*L = {e['downstream']:g}")
    print("\n" + gc.compile(grads).source)


if __name__ == "__main__":
    main()
