"""graphc's folders are its layers, and each may import only the layers below it
(docs/architecture.md opens with the same table).  Every import counts: top-level,
inside a function, and by name through a registry."""
import textwrap
from pathlib import Path

import pytest

from tests.layering import cycles, import_graph, layer_of, modules, upward_edges

ROOT = Path(__file__).resolve().parents[1]

BASE = {"errors", "_version"}
LAYERS = {
    "api": {"__init__", "__main__", "dsl", "render", "_old_paths"},  # the public API and the 0.1 paths
    "_version": set(),
    "errors": set(),
    "ir": BASE,
    "frontend": BASE | {"ir"},
    "transform": BASE | {"ir", "frontend"},
    "check": BASE | {"ir", "frontend", "transform"},
    "view": BASE | {"ir"},
    "io": BASE | {"ir"},
    "runtime": BASE | {"ir", "check"},
    "backends": BASE | {"ir", "frontend", "transform", "runtime"},
    "train": BASE | {"ir", "frontend", "transform", "check", "runtime", "backends", "io"},
    "distributed": BASE | {"ir", "frontend", "transform", "check", "runtime", "backends", "train"},
    "cli": BASE | {"ir", "frontend", "transform", "check", "view", "io", "runtime", "backends", "train"},
}


@pytest.fixture(scope="module")
def graphc_imports():
    return import_graph(ROOT, "graphc")


def test_every_module_is_in_a_layer(graphc_imports):
    loose = [m for m in graphc_imports if layer_of(m, LAYERS) is None]
    assert loose == [], f"modules outside every layer (add a folder rule or move them): {loose}"


def test_no_layer_imports_upward(graphc_imports):
    bad = upward_edges(graphc_imports, LAYERS)
    assert bad == [], "imports against the layer rules:\n" + "\n".join(
        f"  {a} (line {line}) imports {b}" for a, b, line in bad)


def test_no_import_cycle(graphc_imports):
    found = cycles(graphc_imports)
    assert found == [], "import cycles:\n" + "\n".join("  " + " -> ".join(c + c[:1]) for c in found)


def test_the_architecture_doc_states_each_rule():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for layer in LAYERS.keys() - {"api", "_version", "errors"}:
        assert f"{layer}/" in doc, f"docs/architecture.md does not describe {layer}/"


# The checker itself, on made-up packages that break the rules on purpose.

def _package(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return import_graph(tmp_path, "pkg")


RULES = {"api": {"__init__"}, "low": set(), "high": {"low"}}


def test_checker_sees_a_lazy_upward_import(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "", "low/__init__.py": "", "high/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high import b  # lazy, still an edge\n",
        "high/b.py": "from pkg.low import a\n",
    })
    assert upward_edges(graph, RULES) == [("pkg.low.a", "pkg.high.b", 2)]
    assert cycles(graph) == [["pkg.high.b", "pkg.low.a"]] or cycles(graph) == [["pkg.low.a", "pkg.high.b"]]


def test_checker_sees_a_cycle_through_a_registry_string(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "", "low/__init__.py": "",
        "low/registry.py": "import importlib\nTABLE = {'x': 'pkg.low.impl'}\n"
                           "def get(k):\n    return importlib.import_module(TABLE[k])\n",
        "low/impl.py": "from pkg.low.registry import get\n",
    })
    assert {frozenset(c) for c in cycles(graph)} == {frozenset({"pkg.low.registry", "pkg.low.impl"})}


def test_checker_sees_relative_and_from_package_imports(tmp_path):
    graph = _package(tmp_path, {
        "__init__.py": "", "low/__init__.py": "", "high/__init__.py": "",
        "low/a.py": "from ..high import b\nfrom pkg import low\n",
        "high/b.py": "",
    })
    assert ("pkg.low.a", "pkg.high.b") in graph.edges
    assert upward_edges(graph, RULES) == [("pkg.low.a", "pkg.high.b", 1)]
    assert modules(tmp_path, "pkg").keys() == {"pkg", "pkg.low", "pkg.high", "pkg.low.a", "pkg.high.b"}
