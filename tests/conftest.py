"""Shared test fixtures: a private cache directory per test, and the lecture graph."""
import os

# The CUDA backend's tests run on numba-cuda's simulator unless GRAPHC_REAL_CUDA=1
# (on a machine with a GPU).  numba reads NUMBA_ENABLE_CUDASIM once, when it is
# first imported, so this must run before anything imports numba -- conftest.py
# is loaded before any test module.
if os.environ.get("GRAPHC_REAL_CUDA") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402

import graphc as gc


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    """Emitted modules go to a per-test directory, never the user's ~/.cache."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))


def lecture(x1, x2, x3, x4):
    """Seed 001's graph: f = (x1 + x2) * x3 - x4."""
    a = x1 + x2
    b = a * x3
    f = b - x4
    return f


def lecture_graph():
    return gc.trace(lecture, (), (), (), ())
