"""What a drawing shows, computed: a graph's values, gradients and every edge's U, L, U·L.

`annotate(graph, feeds)` differentiates the graph (when it has a scalar loss and
no gradients yet) and evaluates it with the one interpreter: NumPy values, or
exact SymPy values (`exact=True`, check/exact.py).  The `Annotation` it returns
is data with read accessors; graphc/view only formats and draws it, and never
computes (docs/architecture.md).
"""
from dataclasses import dataclass, field

from graphc.ir import shapes as S
from graphc.ir.ops.registry import FLOATS, get
from graphc.check.interpreter import bind_feeds, evaluate
from graphc.check.exact import exact_values, numeric
from graphc.transform.autodiff import grad


@dataclass(eq=False, repr=False)  # arrays have no single truth value; a repr of every value would flood a REPL
class Annotation:
    """A graph evaluated at given feeds: values of every node, U/L/U·L of every recorded edge.

    graph: the graph drawn (the gradient graph when annotate differentiated);
    values: {node: value}, or None for a drawing of the structure alone;
    dims: symbolic dim -> bound size; feeds: the feeds as given (text kept, for titles);
    note: why there are no gradients, if so; exact: values are SymPy numbers."""
    graph: object
    values: dict = None
    dims: dict = field(default_factory=dict)
    feeds: dict = field(default_factory=dict)
    note: str = ""
    exact: bool = False

    @property
    def has_grads(self):
        return bool(self.graph.edge_grads)

    def __repr__(self):
        what = "no values" if self.values is None else ("exact values" if self.exact else "values")
        return f"<{type(self).__name__} of graph {self.graph.name!r}: {what}{'' if self.has_grads else ', no gradients'}>"

    def value(self, n):
        return None if self.values is None else self.values.get(n)

    def grad(self, n):
        """dL/dn for a forward node n, or None where the backward pass never reached it."""
        if "_grad_nodes" not in self.__dict__:
            self._grad_nodes = grad_nodes(self.graph)
        node = self._grad_nodes.get(n)
        return None if node is None else self.value(node)

    def edge(self, key):
        """(U, L, U·L) values of the edge record `key` = (src, dst, pos); L is None for VJP ops."""
        rec = self.graph.edge_grads[key]
        return tuple(None if rec[r] is None else self.value(rec[r]) for r in ("upstream", "local", "downstream"))

    def formula(self, key):
        """The edge's local derivative as a formula in the graph's names ('∂b/∂a = x3')."""
        return local_formula(self.graph, key)


def grad_nodes(graph):
    """{forward node n: the node holding dL/dn}.  That is the upstream gradient recorded
    on n's operand edges (autodiff hands a node its summed cotangent), or for a
    differentiated leaf its entry in graph.grads."""
    found = {dst: rec["upstream"] for (_, dst, _), rec in graph.edge_grads.items()}
    for name, node in graph.grads.items():
        found.setdefault(graph.find(name), node)
    return found


def local_formula(graph, key):
    """'∂b/∂a = x3': the op table's SymPy form differentiated by the edge's operand, or
    a sentence for ops that only give a whole vector-Jacobian product."""
    import sympy
    src, dst, pos = key
    opdef = get(graph.op(dst))
    head = f"∂{graph.name_of(dst)}/∂{graph.name_of(src)}"
    if graph.edge_grads[key]["local"] is None or opdef.sympy_scalar is None:
        return f"{head}: {graph.op(dst)} gives the whole vector-Jacobian product U ↦ U·J, no elementwise L"
    operands = graph.operands(dst)
    dummies = [sympy.Symbol(f"_gc_operand{i}") for i in range(len(operands))]
    try:
        expr = _scalar_form(opdef, dummies, graph.node(dst)["attrs"])
        deriv = sympy.diff(expr, dummies[pos])
        named = deriv.subs({d: sympy.Symbol(graph.name_of(o)) for d, o in zip(dummies, operands)},
                           simultaneous=True)
        return f"{head} = {sympy.sstr(named)}"
    except Exception:  # noqa: BLE001 - an odd user op still steps, just without its formula
        return f"{head} ({graph.op(dst)})"


def _scalar_form(opdef, symbols, attrs):
    try:
        return opdef.sympy_scalar(*symbols)
    except TypeError:  # ops with attributes (leaky_relu's slope, cast's dtype)
        return opdef.sympy_scalar(*symbols, **attrs)


def annotate(graph, feeds=None, loss=None, wrt=None, exact=False, differentiate=True):
    """Differentiate (if the graph has a scalar loss and no gradients yet) and evaluate.

    `feeds` maps every input and param name to a value.  With `exact=True`
    the graph is evaluated with SymPy: float feeds become rationals (a string
    such as "0.1" becomes exactly 1/10), so the numbers match a hand calculation.
    `feeds=None` annotates the structure alone, without values.
    """
    g, note = graph, ""
    if differentiate and not graph.edge_grads:
        why = why_no_grad(graph, loss)
        if why:
            note = f"no gradients: {why}"
        else:
            g = grad(graph, loss=loss, wrt=wrt)
    if feeds is None:
        return Annotation(g, note=note)
    values, dims = (exact_values if exact else _float_values)(g, feeds)
    return Annotation(g, values, dims, dict(feeds), note, exact)


def why_no_grad(graph, loss):
    """Why this graph cannot be differentiated as it stands, or None."""
    if loss is None and len(graph.outputs) != 1:
        return f"{len(graph.outputs)} outputs ({', '.join(graph.outputs)}); pass a loss"
    name = loss or next(iter(graph.outputs))
    n = graph.outputs.get(name)
    n = graph.find(name) if n is None else n
    if graph.shape(n) != ():
        return f"output {name!r} has shape {S.fmt(graph.shape(n))}, not a scalar"
    if graph.dtype(n) not in FLOATS:
        return f"output {name!r} is {graph.dtype(n)}"
    if not any(graph.dtype(x) in FLOATS for x in graph.nodes_with_op("input", "param")):
        return "no float inputs or params"
    return None


def _float_values(g, feeds):
    feeds = {k: numeric(v) for k, v in feeds.items()}
    _, dims = bind_feeds(g, feeds)
    return evaluate(g, feeds).values, dims
