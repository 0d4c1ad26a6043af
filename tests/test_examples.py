"""The examples are what the README demo runs: each must run and print the lecture's numbers."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, tmp_path):
    env = {"GRAPHC_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_lecture_demo_prints_the_lecture_gradients(tmp_path):
    out = run_example("lecture_graph.py", tmp_path)
    # The lecture's hand calculation: f = 25 and (3, 3, 9, -1).
    assert "25" in out
    for line in ("x1", "x2", "x3", "x4"):
        assert line in out
    assert "def run(x1, x2, x3, x4):" in out  # the emitted source is shown


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_runs(name, tmp_path):
    run_example(name, tmp_path)
