"""The graph IR: a thin, validated wrapper over a public networkx.MultiDiGraph.

Nodes are ints.  Node attributes: op, attrs, shape, dtype, name, phase.
Edges run operand -> user and carry `pos`, the operand position; a
MultiDiGraph is needed so that `x * x` keeps both of its operand edges.
"""
import re

import networkx as nx
import numpy as np

from graphc.ir import shapes as S
from graphc.errors import (ArityError, DisconnectedOutputError, DTypeError,
                           DuplicateNameError, GraphCycleError, GraphcError,
                           ShapeError, where)
from graphc.ir.ops import attrs as attr_types
from graphc.ir.ops import registry as registry

LEAF_OPS = ("input", "param", "const")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")  # fullmatch: "x\n" is refused
# A graph's name: letters, digits, '_', '.', '-' and spaces ("odd names"), or what
# Python names a lambda (`<lambda>`); at most 200 characters.  Emitters and renders still treat it as untrusted text.
GRAPH_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_. -]{0,199}|<lambda>")
SHORT_DTYPE = {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32", "bool": "bool"}


class Graph:
    def __init__(self, name="graph"):
        if not isinstance(name, str) or not GRAPH_NAME_RE.fullmatch(name):
            raise GraphcError(f"graph name {name!r:.80} is not an identifier "
                              "(letters, digits, '_', '.', '-' and spaces, at most 200 characters)")
        self.name = name
        self.nx = nx.MultiDiGraph()
        self.outputs = {}  # output name -> node id, in declaration order
        self.grads = {}  # wrt name -> gradient node id (filled by autodiff)
        self.edge_grads = {}  # (src, dst, pos) -> {"upstream", "local", "downstream"} node ids
        # A training step's state changes: param leaf -> node holding its value
        # after the step.  Backends write each value back into the leaf's array.
        self.updates = {}
        self._next_id = 0
        self._by_name = {}
        self._auto_counts = {}

    @classmethod
    def from_nx(cls, nx_graph, name="graph"):
        """A Graph over an existing MultiDiGraph (e.g. one read from a file) whose int
        nodes carry op, attrs, shape, dtype, name and phase.  Outputs, grads and
        updates start empty; set them, then call `validate()`: nothing is checked here
        but that node names are unique (the name index needs that)."""
        graph = cls(name)
        for n, node_name in nx_graph.nodes(data="name"):
            if node_name in graph._by_name:
                raise DuplicateNameError(f"node name {node_name!r} is used by nodes {graph._by_name[node_name]} and {n}")
            graph._by_name[node_name] = n
        graph.nx = nx_graph
        graph._next_id = max(nx_graph.nodes, default=-1) + 1
        return graph

    # ----- building -------------------------------------------------------
    def add(self, op, operands=(), attrs=None, name=None, phase="forward"):
        """Add a node after checking op, arity, shapes and dtypes; returns its id."""
        opdef = registry.get(op)
        attrs = dict(attrs or {})
        operands = list(operands)
        if len(operands) != opdef.arity:
            label = name or _describe_new(self, op, [o for o in operands if o in self.nx])
            raise ArityError(where(label, op, f"takes {opdef.arity} operand(s), got {len(operands)}"))
        reason = attr_types.problem(op, attrs)  # typed attrs: nothing but data reaches code
        if reason:
            label = name if isinstance(name, str) else _describe_new(self, op, [o for o in operands if o in self.nx])
            raise attr_types.AttrError(where(label, op, reason))
        shape, dtype = self._infer(name, opdef, operands, attrs)
        name = self._claim_name(name, op)
        node = self._next_id
        self._next_id += 1
        self.nx.add_node(node, op=op, attrs=attrs, shape=shape, dtype=dtype, name=name, phase=phase)
        for pos, src in enumerate(operands):
            self.nx.add_edge(src, node, key=pos, pos=pos)
        return node

    def _infer(self, name, opdef, operands, attrs):
        """Shape and dtype from the op's rules; an error names the node (or, for a
        new unnamed node, its expression and the user's source line: built only
        on error, because walking the stack for every node is slow)."""
        in_shapes = [self.shape(o) for o in operands]
        in_dtypes = [self.dtype(o) for o in operands]
        try:
            return tuple(opdef.shape_rule(in_shapes, attrs)), opdef.dtype_rule(in_dtypes, attrs)
        except (ShapeError, DTypeError) as e:
            label = name or _describe_new(self, opdef.name, operands)
            raise type(e)(where(label, opdef.name, str(e))) from None

    def _claim_name(self, name, op):
        if name is None:
            while True:
                k = self._auto_counts.get(op, 0) + 1
                self._auto_counts[op] = k
                name = f"{op}_{k}"
                if name not in self._by_name:
                    break
        elif not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise GraphcError(f"node name {name!r:.80} is not an identifier (letters, digits, '_' and '.', "
                              "at most 200 characters)")
        elif name in self._by_name:
            raise DuplicateNameError(f"node name {name!r} is used twice (nodes {self._by_name[name]} and new {name})")
        self._by_name[name] = self._next_id
        return name

    def rename(self, node, name):
        """Give a node a readable name, e.g. the Python variable it was bound to."""
        if name in self._by_name:
            raise DuplicateNameError(f"node name {name!r} is already used by node {self._by_name[name]}")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise GraphcError(f"node name {name!r:.80} is not an identifier")
        del self._by_name[self.nx.nodes[node]["name"]]
        self._by_name[name] = node
        self.nx.nodes[node]["name"] = name

    def remove_node(self, n):
        """Drop node n and its edges (a rewrite's job: it has already pointed n's
        users, outputs and gradient records elsewhere, or is dropping those too)."""
        del self._by_name[self.name_of(n)]
        self.nx.remove_node(n)

    def set_output(self, node, name=None):
        name = name or self.nx.nodes[node]["name"]
        self.outputs[name] = node

    def set_update(self, leaf, value):
        """After a step, param leaf `leaf` takes the value of node `value` (same shape and dtype)."""
        if self.op(leaf) != "param":
            raise GraphcError(where(self.name_of(leaf), self.op(leaf), "only params hold state across steps"))
        if (self.shape(leaf), self.dtype(leaf)) != (self.shape(value), self.dtype(value)):
            raise ShapeError(where(self.name_of(value), self.op(value),
                                   f"update of '{self.name_of(leaf)}' {S.fmt(self.shape(leaf))} {self.dtype(leaf)} "
                                   f"has {S.fmt(self.shape(value))} {self.dtype(value)}"))
        self.updates[leaf] = value

    # ----- queries ----------------------------------------------------------
    # These run for every node in every pass, so they read networkx's storage
    # (`_node`, `_pred`: the dicts behind the `nodes` and `pred` views) directly;
    # the views cost several times more per lookup.
    def node(self, n):
        return self.nx._node[n]

    def op(self, n):
        return self.nx._node[n]["op"]

    def shape(self, n):
        return self.nx._node[n]["shape"]

    def dtype(self, n):
        return self.nx._node[n]["dtype"]

    def name_of(self, n):
        return self.nx._node[n]["name"]

    def find(self, name):
        """Node id by name."""
        try:
            return self._by_name[name]
        except KeyError:
            raise GraphcError(f"no node named {name!r} in graph {self.name!r}") from None

    def has_name(self, name):
        """Whether a node is called `name` (what `find` would return)."""
        return name in self._by_name

    def select_outputs(self, outputs=None):
        """{output name: node} for `outputs` (names, in the order given), or every output."""
        if outputs is None:
            return dict(self.outputs)
        missing = [k for k in outputs if k not in self.outputs]
        if missing:
            raise GraphcError(f"graph {self.name!r} has no output {missing[0]!r}; its outputs: {', '.join(self.outputs)}")
        return {k: self.outputs[k] for k in outputs}

    def operands(self, n):
        """Operand node ids of n, in operand order."""
        # Read the adjacency directly: networkx's edge views cost ~10x more on this hot path.
        pairs = [(d["pos"], src) for src, keyed in self.nx._pred[n].items() for d in keyed.values()]
        pairs.sort()
        return [src for _, src in pairs]

    def users(self, n):
        return [(dst, pos) for _, dst, pos in self.nx.out_edges(n, data="pos")]

    def nodes_with_op(self, *ops):
        return [n for n, op in self.nx.nodes(data="op") if op in ops]

    @property
    def inputs(self):
        return self.nodes_with_op("input")

    @property
    def params(self):
        return self.nodes_with_op("param")

    def toposort(self):
        """Nodes in a deterministic topological order; raises on a cycle."""
        # Builders add operands before users, so ids usually are an order already;
        # checking that is linear, where the general sort carries a heap.
        if all(src < dst for src, dst in self.nx.edges()):
            return sorted(self.nx.nodes)
        try:
            return list(nx.lexicographical_topological_sort(self.nx))
        except nx.NetworkXUnfeasible:
            self._raise_cycle()

    def _raise_cycle(self):
        cycle = nx.find_cycle(self.nx)
        path = [self.name_of(src) for src, *_ in cycle] + [self.name_of(cycle[0][0])]
        first = cycle[0][1]
        raise GraphCycleError(where(self.name_of(first), self.op(first), "the graph has a cycle: " + " -> ".join(path)))

    # ----- validation -------------------------------------------------------
    def validate(self, outputs_need_inputs=True):
        """Check a graph that may have been built or edited by hand; raise on the first fault.

        `outputs_need_inputs=False` skips the check that each output depends on
        an input: constant folding may rightly turn e.g. a count into a constant.
        """
        self.toposort()
        names = {}
        for n, data in self.nx.nodes(data=True):
            if data["name"] in names:
                raise DuplicateNameError(f"node name {data['name']!r} is used by nodes {names[data['name']]} and {n}")
            names[data["name"]] = n
        for n in self.toposort():
            self.validate_node(n)
        self.check_dims_bound()
        for leaf, value in self.updates.items():
            self.set_update(leaf, value)  # re-checks op, shape and dtype
        if outputs_need_inputs:
            self._validate_outputs()
        elif not self.outputs:
            raise GraphcError(f"graph {self.name!r} has no outputs")
        return self

    def check_dims_bound(self):
        """Every symbolic dim must be in an input's or param's shape: only a fed array
        gives it a size.  A dim that only an attr names (broadcast_to(x, ("D",)))
        has none.  Checked here, not when the node is added: an input of shape D
        may still be added after it."""
        bound = {d for n in self.nodes_with_op("input", "param") for d in self.shape(n) if isinstance(d, str)}
        for n in self.toposort():
            data = self.nx.nodes[n]
            attr_shape = data["attrs"].get("shape")
            dims = [*self.shape(n), *(attr_shape if isinstance(attr_shape, (tuple, list)) else ())]
            free = [d for d in dims if isinstance(d, str) and d not in bound]
            if free:
                raise ShapeError(where(data["name"], data["op"], f"dim {free[0]!r} of shape {S.fmt(self.shape(n))} is "
                                       f"not in the shape of any input or param, so nothing gives it a size"))

    def validate_node(self, n):
        """Check one node's op, attrs, operand positions, shape and dtype; raise on a fault."""
        data = self.nx.nodes[n]
        opdef = registry.get(data["op"])
        attr_types.check(data["op"], data["attrs"], data["name"])
        positions = sorted(pos for _, _, pos in self.nx.in_edges(n, data="pos"))
        if positions != list(range(opdef.arity)):
            raise ArityError(where(data["name"], data["op"], f"takes {opdef.arity} operand(s), has edges at positions {positions}"))
        shape, dtype = self._infer(data["name"], opdef, self.operands(n), data["attrs"])
        if tuple(data["shape"]) != shape:
            raise ShapeError(where(data["name"], data["op"], f"declared shape {S.fmt(data['shape'])} but operands give {S.fmt(shape)}"))
        if data["dtype"] != dtype:
            raise DTypeError(where(data["name"], data["op"], f"declared dtype {data['dtype']} but operands give {dtype}"))

    def _validate_outputs(self):
        if not self.outputs:
            raise GraphcError(f"graph {self.name!r} has no outputs")
        leaves = set(self.nodes_with_op("input", "param"))
        for name, n in self.outputs.items():
            if self.node(n)["phase"] == "backward":
                continue  # a gradient may rightly be constant, e.g. d(3x)/dx
            if n not in leaves and not (nx.ancestors(self.nx, n) & leaves):
                raise DisconnectedOutputError(where(name, self.op(n), "output does not depend on any input or parameter"))

    # ----- text form --------------------------------------------------------
    def node_text(self, n):
        d = self.nx.nodes[n]
        ty = f"{SHORT_DTYPE.get(d['dtype'], d['dtype'])}[{','.join(str(s) for s in d['shape'])}]"
        args = " ".join(self.name_of(o) for o in self.operands(n))
        attrs = format_attrs(d["attrs"])
        return f"{d['name']}:{ty} = {d['op']}{attrs}{(' ' + args) if args else ''}"

    def to_text(self):
        order = self.toposort()
        leaves = [n for n in order if self.op(n) in ("input", "param")]
        head = ", ".join(self.node_text(n).split(" = ")[0] for n in leaves)
        body = [f"  {self.node_text(n)}" for n in order if self.op(n) not in ("input", "param")]
        outs = ", ".join(k if self.name_of(n) == k else f"{k}={self.name_of(n)}" for k, n in self.outputs.items())
        upd = [f"  {self.name_of(p)} <- {self.name_of(v)}" for p, v in self.updates.items()]
        return "\n".join([f"{{ lambda {head} .", *body, f"  in ({outs})", *upd, "}"]) if upd else \
            "\n".join([f"{{ lambda {head} .", *body, f"  in ({outs}) }}"])

    def __repr__(self):
        return self.to_text()

    # Drawing lives in view/, a layer above the IR, so `import graphc` installs it here
    # (graphc/__init__.py); a bare IR shows its text form.
    mimebundle_hook = None

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter shows the drawing (SVG) when Graphviz is available, else the text form."""
        if Graph.mimebundle_hook is None:
            return {"text/plain": self.to_text()}
        return Graph.mimebundle_hook(self)

    def __len__(self):
        return self.nx.number_of_nodes()

    def copy(self):
        new = Graph(self.name)
        new.nx = self.nx.copy()
        for n in new.nx.nodes:
            new.nx.nodes[n]["attrs"] = dict(new.nx.nodes[n]["attrs"])
        new.outputs = dict(self.outputs)
        new.grads = dict(self.grads)
        new.edge_grads = {k: dict(v) for k, v in self.edge_grads.items()}
        new.updates = dict(self.updates)
        new._next_id = self._next_id
        new._by_name = dict(self._by_name)
        new._auto_counts = dict(self._auto_counts)
        return new


def _describe_new(graph, op, operands):
    """Label an unnamed new node by its expression and the user's line that built it."""
    args = ", ".join(graph.name_of(o) for o in operands)
    return f"{op}({args})" + _user_line()


def _user_line():
    import traceback
    package = __file__.rsplit("/", 1)[0]
    for frame in reversed(traceback.extract_stack()[:-3]):
        if not frame.filename.startswith(package):
            return f" at {frame.filename}:{frame.lineno}"
    return ""


def format_attrs(attrs):
    if not attrs:
        return ""
    parts = []
    for k, v in sorted(attrs.items()):
        if isinstance(v, np.ndarray):
            v = v.item() if v.size == 1 else f"array{S.fmt(v.shape)}"
        parts.append(f"{k}={v}")
    return "[" + " ".join(parts) + "]"
