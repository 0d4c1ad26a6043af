"""The collapse view for the stepper: each box of `graphc render --collapse` steps as one unit.

A box (`gc-u<i>`) gets one forward step (the value of its output, its last
block's output) and one gradient step; the edges between drawn elements are
bundled as in the static picture (`gc-b-<a>-<b>`) and each bundle is one
backward step listing the U, L and U·L of the edges in it.  The inside of
every box is laid out separately, so a click on the box can show it.
"""
from graphc.view.collapse import bundles, draw_collapsed, exit_node, find_units, unit_head
from graphc.view.format import fmt_short
from graphc.view.labels import forward_nodes, new_dot, title
from graphc.view.stepper.svg import GRAPH_NAME, laid_out, member_dot
from graphc.view.stepper.tape import backward_steps, edge_step, element_info, loss_node, value_step


class CollapsedView:
    def __init__(self, ann, rankdir="LR"):
        self.ann, self.rankdir = ann, rankdir
        g = ann.graph
        self.nodes = forward_nodes(g)
        self.units = find_units(g, self.nodes)
        self.box = {m: f"u{i}" for i, u in enumerate(self.units) for m in u.members}
        self.bundles, self._keys = bundles(g, self.nodes, self.box), {}

    def drawn(self, n):
        """The DOT name that draws node n: its box, or itself."""
        return self.box.get(n, f"n{n}")

    def ident(self, name):
        return f"gc-{name}"

    def bundle_id(self, a, b):
        return f"gc-b-{a}-{b}"

    # ----- picture ------------------------------------------------------------------------
    def dot(self):
        """The static collapse picture, with ids gc-u<i>, gc-n<node> and gc-b-<a>-<b>."""
        dot = new_dot(self.rankdir, title(self.ann), GRAPH_NAME)
        draw_collapsed(dot, self.ann, ids="gc", units=self.units)
        return dot

    def expansions(self):
        """[(box id, heading, SVG of its inside)] for every box."""
        out = []
        for i, u in enumerate(self.units):
            members = [n for n in self.nodes if n in u.members]
            head = ", ".join(u.names) or unit_head(u)
            out.append((self.ident(f"u{i}"), head, laid_out(member_dot(self.ann, members, f"gc-x{i}", self.rankdir), f"gc-x{i}")))
        return out

    # ----- tape -------------------------------------------------------------------------------
    def order(self):
        """Drawn elements in forward order, each with the node whose value it shows."""
        seen, out = set(), []
        exits = {self.drawn(exit_node(self.ann.graph, u)): exit_node(self.ann.graph, u) for u in self.units}
        for n in self.nodes:
            name = self.drawn(n)
            rep = exits.get(name, n)
            if name not in seen and (name not in exits or n == rep):
                seen.add(name)
                out.append((name, rep))
        return out

    def tape(self):
        ann = self.ann
        order = self.order()
        elements = {}
        for name, rep in order:
            info = element_info(ann, rep, self.ident(name))
            if name.startswith("u"):
                info["unit"] = True
            elements[self.ident(name)] = info
        if ann.values is None:
            return elements, []
        steps = [self._value(name, rep) for name, rep in order]
        if not ann.graph.edge_grads:
            return elements, steps
        incoming = {}
        for (a, b), keys in self.bundles.items():
            recorded = [k for k in keys if k in ann.graph.edge_grads]
            if recorded:
                incoming.setdefault(self.ident(b), []).append((self.ident(a), self._bundle(a, b, recorded)))
        for edges in incoming.values():  # last operand first, as backprop visits them
            edges.sort(key=lambda e: -max(k[2] for k in self._keys[e[1]["target"]]))
        order = [(self.ident(name), rep) for name, rep in order]
        return elements, steps + backward_steps(ann, order, incoming, loss_node(ann, self.nodes))

    def _value(self, name, rep):
        step = value_step(self.ann, rep, self.ident(name))
        if name.startswith("u"):
            head = unit_head(self.units[int(name[1:])], gap=" ")
            step["title"] = f"forward: box {head}, one unit; out {step['title'][len('forward: '):]}"
        return step

    def _bundle(self, a, b, keys):
        self._keys[self.bundle_id(a, b)] = keys
        if len(keys) == 1:
            return edge_step(self.ann, keys[0], self.bundle_id(a, b))
        g = self.ann.graph
        parts = []
        for k in keys:
            u, loc, down = self.ann.edge(k)
            parts.append(f"{g.name_of(k[0])} -> {g.name_of(k[1])}: U·L = {fmt_short(down)}")
        first = edge_step(self.ann, keys[0], self.bundle_id(a, b))
        first["title"] = f"backward: {len(keys)} edges, " + "; ".join(parts)
        first["formula"] = "; ".join(self.ann.formula(k) for k in keys)
        return first
