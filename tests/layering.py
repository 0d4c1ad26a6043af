"""The import graph of a package, read with `ast` (nothing is imported), and the
layer rules it must keep.  tests/test_layout.py applies it to graphc; it is kept
apart so that the test can also run it on small made-up packages that break the
rules on purpose, and see it fail.

An edge is any import in a module: top-level or inside a function (a lazy import
is for start-up speed, not a licence for a cycle), `from pkg import submodule`,
and any string constant that names one of the package's modules, since a
registry that imports by name (`importlib.import_module(TABLE[key])`) depends on
what it names as surely as an import statement does.
"""
import ast
from pathlib import Path

import networkx as nx


def modules(root, package):
    """{dotted module name: path} for every .py file of `package` under `root`."""
    found = {}
    for path in sorted((Path(root) / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _owner(name, known):
    """The module that defines `name` (a module, or an attribute of one)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _from_target(module, path, node):
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _named(node, module, path, known):
    """The dotted names a syntax node makes `module` depend on."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _from_target(module, path, node)
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
            and node.value in known:
        return [node.value]  # imported by name through a registry (the bare package name is just a word)
    return []


def import_graph(root, package):
    """A networkx DiGraph: module -> module it imports; edge attribute `line`."""
    known = modules(root, package)
    graph = nx.DiGraph()
    for module, path in known.items():
        graph.add_node(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for name in _named(node, module, path, known):
                target = _owner(name, known)
                if target and target != module and not graph.has_edge(module, target):
                    graph.add_edge(module, target, line=node.lineno)
    return graph


def layer_of(module, layers):
    """The layer a module belongs to: its first folder (or file) under the package;
    "api" for the package's __init__ and the top-level modules listed as "api"."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in layers["api"]:
        return "api"
    return parts[1] if parts[1] in layers else None


def upward_edges(graph, layers):
    """[(module, imported, line)] for every import that a layer's rule does not allow.

    `layers` maps a layer (a folder or module under the package) to the set of
    layers it may import; a layer may always import itself.  The "api" entry
    names the top-level modules (the public API and its shims) that may import
    anything, and that no layer may import.
    """
    bad = []
    for a, b, data in graph.edges(data=True):
        la, lb = layer_of(a, layers), layer_of(b, layers)
        if la == "api" or la == lb:
            continue
        if lb == "api" or lb not in layers.get(la, ()):
            bad.append((a, b, data["line"]))
    return sorted(bad)


def cycles(graph, limit=20):
    """Up to `limit` import cycles, each a list of modules."""
    found = []
    for cycle in nx.simple_cycles(graph):
        found.append(cycle)
        if len(found) >= limit:
            break
    return found
