"""What the command line feeds a model: --feed values, --feeds files, and defaults.

Precedence, per input or param: `--feed NAME=VALUE`, then `--feeds FILE.npz`,
then the model file's module-level `FEEDS` dict, then seeded random values:
floats are standard normal rounded to 2 decimals, integer labels are uniform in
[0, classes) where a consumer (softmax_cross_entropy, one_hot, gather) tells
the class count (else [0, 2)), bools are fair coin flips.  A symbolic dimension
is bound by the fed arrays, by `--dim N=4`, or else set to 4.
"""
import json
import os
import runpy
import sys

import numpy as np

from graphc.ir import shapes as S
from graphc.errors import GraphcError
from graphc.ir.ops.registry import FLOATS

DEFAULT_DIM = 4


class UsageError(Exception):
    """Bad input from the user (missing file, no graph in the model, unknown op)."""


# ----- models -----------------------------------------------------------------------
def load_model(path, python=False):
    """(graph, default feeds) from a graph file (*.json, only read, never run), or, only
    when the caller asked with `python=True` (the CLI's --python), from a Python model
    file (*.py) that is RUN.  Any other name is refused: the suffix is never guessed at."""
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    is_py = path.lower().endswith(".py")
    if python:
        if not is_py:
            raise UsageError(f"--python runs a Python model file (*.py); {path} is not one")
        namespace = run_model_file(path)
        return graph_from_namespace(path, namespace), dict(namespace.get("FEEDS") or {})
    if is_py:
        raise UsageError(f"{path} is a Python file; graphc runs a Python model only when asked, with --python "
                         "(that executes its code); graph files (.json) are only read")
    from graphc.io.graphfile import load
    return load(path), {}


def run_model_file(path):
    """Run the Python file at `path` as `import` would, with __name__ == "graphc_model"
    (so an `if __name__ == "__main__":` block does not run); returns its globals."""
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the model may import its neighbours
    try:
        return runpy.run_path(path, run_name="graphc_model")
    finally:
        sys.path.remove(folder)


def graph_from_namespace(path, namespace):
    from graphc.ir.graph import Graph
    if isinstance(namespace.get("graph"), Graph):
        graph = namespace["graph"]
    elif callable(namespace.get("build")):
        graph = namespace["build"]()
    else:
        raise UsageError(f"{path} defines neither a module-level `graph` (a graphc.Graph) nor a function `build()`")
    if not isinstance(graph, Graph):
        raise UsageError(f"{path}: build() returned {type(graph).__name__}, not a graphc.Graph")
    return graph


# ----- parsing ---------------------------------------------------------------------------
def parse_assignment(text, what):
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"{what} must look like NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def parse_value(text):
    """A scalar stays text ("0.1", "1/3": exact mode reads it exactly); a JSON list
    becomes an array of texts, e.g. "[[1, 2], [3, 4]]"."""
    if text.startswith("["):
        try:
            return np.asarray(json.loads(text, parse_float=str, parse_int=str), dtype=str)
        except (json.JSONDecodeError, ValueError) as e:
            raise UsageError(f"cannot read {text!r} as a JSON list ({e})") from None
    return text


def parse_dims(items):
    dims = {}
    for item in items or ():
        name, value = parse_assignment(item, "--dim")
        if not value.isdigit():
            raise UsageError(f"--dim {name}: size must be a whole number, got {value!r}")
        dims[name] = int(value)
    return dims


def read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:  # no pickles: loading must not run code
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read feeds from {path}: {e}") from None


# ----- completing the feeds ------------------------------------------------------------
def prepare_feeds(graph, feed_args=(), npz=None, model_feeds=None, dims=None, seed=0, keep_text=False):
    """Every leaf's value, the names that got random values, and the symbolic dims
    set to the default size (the last two are for telling the user)."""
    leaves = {graph.name_of(n): n for n in graph.nodes_with_op("input", "param")}
    given = dict(model_feeds or {})
    given.update(read_npz(npz) if npz else {})
    given.update(parse_assignment(a, "--feed") for a in feed_args)
    unknown = sorted(set(given) - set(leaves))
    if unknown:
        raise UsageError(f"no input or param named {', '.join(unknown)}; the graph takes {', '.join(leaves) or 'nothing'}")
    feeds = {}
    for name, n in leaves.items():
        if name in given:
            feeds[name] = _convert(graph, n, given[name], keep_text)
    dims, defaulted = _bind_dims(graph, leaves, feeds, dict(dims or {}))
    rng = np.random.default_rng(seed)
    randomized = [name for name in leaves if name not in feeds]
    for name in randomized:
        feeds[name] = random_value(graph, leaves[name], dims, rng)
    return feeds, randomized, defaulted


def _convert(graph, n, value, keep_text):
    value = parse_value(value) if isinstance(value, str) else value
    dtype = graph.dtype(n)
    arr = np.asarray(value)
    if arr.dtype.kind not in "US":
        return value
    if dtype in FLOATS and keep_text:
        return value
    try:
        if dtype in FLOATS:
            from graphc.check.exact import numeric
            return numeric(arr).astype(dtype)
        if dtype == "bool":
            return np.vectorize(_bool, otypes=[bool])(arr)
        return np.vectorize(int, otypes=[dtype])(arr)
    except (ValueError, GraphcError) as e:
        raise UsageError(f"--feed {graph.name_of(n)}: {e}") from None


def _bool(text):
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _bind_dims(graph, leaves, feeds, dims):
    """Every symbolic dim's size: from --dim, then the fed arrays (through shapes.unify,
    as a call binds them), else DEFAULT_DIM.  Returns (dims, the ones defaulted)."""
    for name, value in feeds.items():
        reason = S.unify(graph.shape(leaves[name]), np.shape(value), dims)
        if reason:
            raise UsageError(f"--feed {name}: {reason}")
    defaulted = {d: DEFAULT_DIM for n in leaves.values() for d in graph.shape(n)
                 if isinstance(d, str) and d not in dims}
    return {**dims, **defaulted}, defaulted


def random_value(graph, n, dims, rng):
    shape, dtype = S.bind(graph.shape(n), dims), graph.dtype(n)
    if dtype in FLOATS:
        return np.round(rng.standard_normal(shape), 2).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(0, label_bound(graph, n, dims), size=shape).astype(dtype)


def label_bound(graph, n, dims):
    """How many classes an integer input indexes, read from the ops that consume it."""
    bounds = []
    for dst, pos in graph.users(n):
        op, operands = graph.op(dst), graph.operands(dst)
        if op in ("softmax_cross_entropy", "gather") and pos == 1:
            bounds.append(S.bind(graph.shape(operands[0]), dims)[-1])
        elif op == "one_hot":
            bounds.append(graph.node(dst)["attrs"]["depth"])
    concrete = [b for b in bounds if isinstance(b, int)]
    return min(concrete) if concrete else 2
