"""What importing graphc loads.  SymPy, scipy.special and numba are imported only where
they are used (verify, exact renders, user ops, special functions; a numba or CUDA
function being built), so neither `import graphc` nor a training step of built-in ops
on the python backend pays for them (emitting numba source does not need numba).  Each check
runs in a fresh interpreter, since this test process has imported both already."""
import json
import subprocess
import sys

import pytest

LAZY = ("sympy", "scipy.special", "numba")  # numba: only when a numba or CUDA function is built


def _loaded_after(code):
    """Of LAZY, the modules in sys.modules after running `code` in a new interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {LAZY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_graphc_loads_no_lazy_module():
    assert _loaded_after("import graphc, graphc.train, graphc.backends.numba_cpu.emit") == []


STEP = """
import numpy as np
import graphc as gc
from graphc.backends import emit_source
from graphc.train import SGD, build_step, compile_step

b = gc.Builder("mlp", dtype="float64")
x, y = b.input("x", ("N", 3)), b.input("y", ("N",), "int64")
h = gc.tanh(x @ b.param("W1", (3, 4)) + b.param("b1", (1, 4)))
h = gc.relu(h) + 0.5 * gc.exp(-h) - gc.sqrt(h * h + 1.0) + gc.maximum(h, 0.0)
loss = gc.cross_entropy(h @ b.param("W2", (4, 2)), y)
graph = b.output(loss=loss)
params = {"W1": np.full((3, 4), 0.1), "b1": np.zeros((1, 4)), "W2": np.full((4, 2), 0.2)}
emit_source(build_step(graph, SGD(lr=0.1)), "numba")
step = compile_step(graph, params, SGD(lr=0.1), backend="python")
out = step(x=np.ones((5, 3)), y=np.array([0, 1, 0, 1, 1]))
assert np.isfinite(out["loss"])
"""


def test_training_step_of_builtin_ops_loads_no_lazy_module():
    """Build, differentiate, optimize, emit (numba source) and run (python backend) a step."""
    assert _loaded_after(STEP) == []


@pytest.mark.parametrize("code, loaded", [
    ("import graphc.check.verify; graphc.check.verify.prove_op('exp')", "sympy"),
    ("import numpy as np; from graphc.ir.ops import get; get('erf').numpy_impl(np.zeros(2))", "scipy.special"),
    ("import graphc as gc; gc.define_elementwise('sq', lambda x: x * x)", "sympy"),
    ("import numpy as np, graphc as gc; b = gc.Builder('g'); x = b.input('x', (2,)); "
     "gc.compile(b.output(y=x * 2.0), backend='numba')(x=np.ones(2))", "numba"),
])
def test_used_where_needed(code, loaded):
    assert loaded in _loaded_after(code)
