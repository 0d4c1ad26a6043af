"""The import paths of graphc 0.1's flat layout still work (graphc/_old_paths.py),
each in a fresh interpreter, since this process has imported the new modules already."""
import json
import subprocess
import sys

import pytest

from graphc._old_paths import OLD_PATHS

# What the docs and examples of 0.1 imported, by old path: (code, the new object it must be).
DOCUMENTED = [
    ("from graphc.verify import prove_op", "graphc.check.verify", "prove_op"),
    ("from graphc.gradcheck import gradcheck", "graphc.check.gradcheck", "gradcheck"),
    ("from graphc.graphfile import load", "graphc.io.graphfile", "load"),
    ("from graphc.rewrite import optimize", "graphc.transform.rewrite", "optimize"),
    ("from graphc.ops import table", "graphc.ir.ops", "table"),
    ("from graphc.ops.user import define_elementwise", "graphc.frontend.user_ops", "define_elementwise"),
    ("from graphc.shapes import fmt", "graphc.ir.shapes", "fmt"),
    ("from graphc.codegen import pyref", "graphc.backends.python.pyref", None),  # a submodule
    ("from graphc.codegen import coverage_table", "graphc.backends", "coverage_table"),
    ("from graphc.backprop_table import format_markdown", "graphc.view.backprop_table", "format_markdown"),
    ("from graphc.autodiff import grad", "graphc.transform.autodiff", "grad"),
    ("from graphc.functional import gelu", "graphc.frontend.functional", "gelu"),
    ("from graphc.interpreter import evaluate", "graphc.check.interpreter", "evaluate"),
    ("from graphc.dsl import Input, Param, trace", "graphc.frontend.dsl", "Input"),
]


def _run(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("code, new_module, name", DOCUMENTED, ids=[c for c, _, _ in DOCUMENTED])
def test_documented_old_import_gives_the_new_object(code, new_module, name):
    imported = code.split(" import ")[1].split(",")[0].strip()
    new = f"importlib.import_module({new_module!r})" + (f".{name}" if name else "")
    probe = f"{code}\nimport importlib\nnew = {new}\nprint({imported} is new)"
    assert _run(probe).strip() == "True"


def test_every_old_path_imports_and_lists_its_new_names():
    probe = ("import importlib, json\nout = {}\nfor old, new in __import__('graphc._old_paths').\\\n"
             "_old_paths.OLD_PATHS.items():\n    m = importlib.import_module(old)\n"
             "    out[old] = sorted(n for n in dir(importlib.import_module(new)) if not n.startswith('_'))"
             " == sorted(n for n in dir(m) if not n.startswith('_'))\nprint(json.dumps(out))")
    assert json.loads(_run(probe).strip().splitlines()[-1]) == {old: True for old in OLD_PATHS}


def test_naming_an_old_path_imports_nothing_heavy_until_used():
    out = _run("import sys, graphc.verify\nprint('sympy' in sys.modules)\n"
               "graphc.verify.prove_op\nprint('sympy' in sys.modules)")
    assert out.split() == ["False", "True"]


def test_an_unknown_name_on_an_old_path_says_where_it_looked():
    probe = "import graphc.verify\ntry:\n    graphc.verify.no_such_thing\nexcept AttributeError as e:\n    print(e)"
    assert "graphc.check.verify" in _run(probe)


def test_old_paths_do_not_shadow_real_modules():
    probe = "import graphc.ir, graphc.runtime, graphc.cli\nprint(type(graphc.ir).__name__, graphc.ir.__file__ is not None)"
    assert _run(probe).split() == ["module", "True"]


def test_star_import_from_an_old_path_gives_the_new_modules_exports():
    out = _run("from graphc.ops import *\nfrom graphc.ir.ops import __all__ as new\n"
               "names = dir()\nprint(all(n in names for n in new), len(new) > 0)")
    assert out.split() == ["True", "True"]
