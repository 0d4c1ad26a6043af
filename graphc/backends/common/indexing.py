"""Index arithmetic that both compiled backends write the same way: where a
broadcast operand is read, where a reduction writes, and where `run` reads the
size of each symbolic dim."""


def broadcast_index(operand_shape, shape, idx):
    """The index parts of a broadcast operand at index `idx` of `shape`
    (right-aligned, as NumPy: a size-1 axis against a larger one reads 0)."""
    offset = len(shape) - len(operand_shape)
    return ["0" if d == 1 and shape[offset + k] != 1 else idx[offset + k] for k, d in enumerate(operand_shape)]


def reduce_attrs(graph, n):
    """(operand, sorted axes, keepdims) of a reduction node n."""
    attrs = graph.node(n)["attrs"]
    return graph.operands(n)[0], tuple(sorted(attrs["axes"])), attrs.get("keepdims", False)


def out_index(xv, axes, keepdims):
    """The index parts of a reduction's output at operand index `xv`: a reduced axis
    is 0 where kept, and gone where not."""
    if keepdims:
        return ["0" if k in axes else v for k, v in enumerate(xv)]
    return [v for k, v in enumerate(xv) if k not in axes]


def symbolic_dims(graph, leaves):
    """[(dim, leaf, axis)]: each symbolic dim of the leaves' shapes, in order of first
    appearance, with the first leaf and axis that carry it (where `run` reads its size)."""
    found = {}
    for n in leaves:
        for axis, d in enumerate(graph.shape(n)):
            if isinstance(d, str) and d not in found:
                found[d] = (d, n, axis)
    return list(found.values())
