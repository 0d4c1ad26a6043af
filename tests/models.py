"""Small models shared by the render, graph-file and trace tests."""
import graphc as gc


def deep_mlp(depth=4, width=6, named=True):
    """x -> depth x tanh(h @ W + b) -> mean(h @ w_out): a stack of identical layers.

    named=True names layer i's nodes `layer<i>.W`, `layer<i>.b`, `layer<i>.h`
    (collapse groups them by prefix); named=False uses W<i>, b<i>, h<i>, so only
    the repeated structure can tell the layers apart.
    """
    b = gc.Builder("deep")
    x = b.input("x", ("N", width))
    h = x
    for i in range(1, depth + 1):
        prefix = f"layer{i}." if named else ""
        W = b.param(f"{prefix}W{'' if named else i}", (width, width))
        c = b.param(f"{prefix}b{'' if named else i}", (1, width))
        h = gc.tanh(h @ W + c, name=f"{prefix}h{'' if named else i}")
    w_out = b.param("head.w" if named else "w_out", (width, 1))
    return b.output(loss=gc.mean(h @ w_out))


def fan_out(x, y):
    """The autodiff lecture's example: y feeds two nodes, so its gradient is a sum."""
    z = x * y
    w = z + y
    o = gc.relu(w)
    return o
