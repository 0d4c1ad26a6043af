"""The backward pass as a table, one row per edge, in the order backprop visits them.

This is the lecture's step-by-step walk-through: for f = b - x4 it reads
"x4 -> f: L = -1, U = 1, U·L = -1", then "b -> f", then the edges into b, and
so on back to the inputs.  Nodes come in reverse topological order and, within
a node, operands from last to first, as on the slides.
"""
from dataclasses import dataclass

from graphc.errors import GraphcError
from graphc.view.format import fmt_short
from graphc.view.labels import edge_texts, forward_nodes

INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "**"}
HEADER = ("step", "node", "edge", "value", "upstream U", "local L", "downstream U·L")


@dataclass
class Row:
    step: int
    node: str  # the node being differentiated, as an expression: "f = b - x4"
    edge: str  # "x4 -> f"
    value: str  # the edge source's forward value
    upstream: str  # dL/d(node)
    local: str  # d(node)/d(source); "VJP" where the op gives a whole vector-Jacobian product
    downstream: str  # U·L: this edge's contribution to dL/d(source)

    def cells(self):
        return (str(self.step), self.node, self.edge, self.value, self.upstream, self.local, self.downstream)


def expression(graph, n):
    """The node as the slides write it: `a = x1 + x2`, `h = relu(z)`."""
    args = [graph.name_of(o) for o in graph.operands(n)]
    op = graph.op(n)
    rhs = f" {INFIX[op]} ".join(args) if op in INFIX and len(args) == 2 else f"{op}({', '.join(args)})"
    return f"{graph.name_of(n)} = {rhs}"


def backprop_rows(ann):
    """Rows for every edge the backward pass differentiated through (`ann`: an annotation
    from graphc.check.annotate)."""
    g = ann.graph
    if not g.edge_grads:
        raise GraphcError(f"graph {g.name!r} has no gradients to trace ({ann.note or 'not differentiated'})")
    if ann.values is None:
        raise GraphcError("the backprop trace needs values: pass feeds")
    by_dst = {}
    for key in g.edge_grads:
        by_dst.setdefault(key[1], []).append(key)
    rows = []
    for n in reversed(forward_nodes(g)):
        for key in sorted(by_dst.get(n, ()), key=lambda k: -k[2]):
            rows.append(Row(len(rows) + 1, expression(g, n), f"{g.name_of(key[0])} -> {g.name_of(n)}",
                            fmt_short(ann.value(key[0])), *edge_texts(ann, key)))
    return rows


def gradient_lines(ann):
    """dL/dw for each differentiated leaf: the sums of the rows' contributions."""
    g = ann.graph
    loss = next((g.name_of(n) for n in g.outputs.values() if g.node(n)["phase"] == "forward"), "L")
    return [f"d{loss}/d{name} = {fmt_short(ann.value(node))}" for name, node in g.grads.items()]


def format_text(ann):
    rows = [HEADER] + [r.cells() for r in backprop_rows(ann)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + gradient_lines(ann)) + "\n"


def format_markdown(ann):
    def md(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    rows = [md(HEADER), "|" + "---|" * len(HEADER)]
    rows += [md(r.cells()) for r in backprop_rows(ann)]
    grads = [f"- {line}" for line in gradient_lines(ann)]
    return "\n".join(rows + [""] + grads) + "\n"
