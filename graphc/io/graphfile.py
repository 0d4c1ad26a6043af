"""Graphs as JSON files: networkx node-link data plus a format name and version.

    {"format": "graphc-graph", "version": 1, "directed": true, "multigraph": true,
     "graph": {"name": ..., "outputs": {name: id}, "grads": {name: id},
               "edge_grads": [{"src", "dst", "pos", "upstream", "local", "downstream"}],
               "updates": {param id: node id}},
     "nodes": [{"id", "op", "attrs", "shape", "dtype", "name", "phase"}],
     "edges": [{"source", "target", "key", "pos"}]}

JSON has no tuples or arrays, so attr values are tagged: {"tuple": [...]},
{"array": {"dtype", "shape", "data"}} (non-finite floats as "nan", "inf",
"-inf"), {"scalar": {"dtype", "value"}}, {"float": "nan"}, {"dict": {...}}.

Loading never runs code.  It checks, in order: the file name (`.json`, any
case), the file size, that the text is JSON (integers of at most 19 digits, no
nesting deeper than MAX_DEPTH), the node count, the JSON Schema
(graphc/io/schema.py: every name an identifier), that every op is in the op
table, that edges and records name existing nodes, every node's attrs by the
op's attr types (graphc.ir.ops.attrs: exact constants are plain arithmetic within
a size limit, shapes within the tensor limit); then it builds the Graph and
runs graph.validate() (cycles, arity, shapes, dtypes).  Every failure is one
GraphcError line that starts with the file name.  docs/security.md lists the limits.
"""
import json
import math
import os
from functools import lru_cache
from pathlib import Path

import networkx as nx
import numpy as np

from graphc.errors import GraphcError, UnknownOpError
from graphc.ir.graph import Graph
from graphc.ir.ops import attrs as attr_types
from graphc.ir.ops.registry import OPS

FORMAT, VERSION = "graphc-graph", 1
MAX_BYTES = 64 * 2**20  # a file bigger than this is refused before it is parsed
MAX_NODES = 200_000
MAX_DEPTH = 32  # nesting of JSON arrays and objects
MAX_INT_DIGITS = 19  # a JSON integer (2**63 has 19 digits)
SUFFIX = ".json"
ROLES = ("upstream", "local", "downstream")
NONFINITE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


class GraphFileError(GraphcError):
    """A graph file that cannot be read: too big, not JSON, or not a graph."""


# ----- encoding attr values ----------------------------------------------------------
def encode(v):
    if isinstance(v, np.ndarray):
        return {"array": {"dtype": v.dtype.name, "shape": list(v.shape), "data": [_finite(x) for x in v.ravel().tolist()]}}
    if isinstance(v, np.generic):
        return {"scalar": {"dtype": v.dtype.name, "value": _finite(v.item())}}
    if isinstance(v, tuple):
        return {"tuple": [encode(x) for x in v]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, dict):
        return {"dict": {str(k): encode(x) for k, x in v.items()}}
    if isinstance(v, float):
        return _finite(v) if np.isfinite(v) else {"float": _finite(v)}
    if v is None or isinstance(v, (bool, int, str)):
        return v
    raise GraphFileError(f"cannot save a {type(v).__name__} attr value ({v!r:.60})")


def _finite(x):
    if isinstance(x, float) and not np.isfinite(x):
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, complex):
        raise GraphFileError("cannot save complex values")
    return x


def decode(v):
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    (tag, body), = v.items()  # the schema allows exactly one key
    if tag == "tuple":
        return tuple(decode(x) for x in body)
    if tag == "dict":
        return {k: decode(x) for k, x in body.items()}
    if tag == "float":
        return float(NONFINITE[body])
    if tag == "scalar":
        return np.asarray(NONFINITE.get(body["value"], body["value"]), dtype=body["dtype"])[()]
    return _decode_array(body)


def _decode_array(body):
    shape, data = tuple(body["shape"]), body["data"]
    size = math.prod(shape)  # exact: np.prod would wrap around on absurd shapes
    if size > attr_types.MAX_ELEMENTS:
        raise GraphFileError(f"array of shape {shape} is over the limit of {attr_types.MAX_ELEMENTS:,} entries")
    if size != len(data):
        raise GraphFileError(f"array of shape {shape} has {len(data)} entries")
    data = [NONFINITE.get(x, x) if isinstance(x, str) else x for x in data]
    try:
        return np.asarray(data, dtype=body["dtype"]).reshape(shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise GraphFileError(f"array of dtype {body['dtype']}: {e}") from None


# ----- saving --------------------------------------------------------------------------
def _node_link_kwargs():
    """networkx >= 3.4 names the edge list with `edges=`; older versions with `link=`."""
    import inspect
    params = inspect.signature(nx.node_link_data).parameters
    return {"edges": "edges"} if "edges" in params else {"link": "edges"}


def to_data(graph):
    """The graph as a JSON-ready dict."""
    data = nx.node_link_data(graph.nx, **_node_link_kwargs())
    for node in data["nodes"]:
        node["attrs"] = {k: encode(v) for k, v in node["attrs"].items()}
        node["shape"] = list(node["shape"])
    data["graph"] = {"name": graph.name, "outputs": dict(graph.outputs), "grads": dict(graph.grads),
                     "edge_grads": [{"src": s, "dst": d, "pos": p, **{r: rec[r] for r in ROLES}}
                                    for (s, d, p), rec in graph.edge_grads.items()],
                     "updates": {str(k): v for k, v in getattr(graph, "updates", {}).items()}}
    return {"format": FORMAT, "version": VERSION, **data}


def dumps(graph):
    return json.dumps(to_data(graph), indent=1, allow_nan=False)


def save(graph, path):
    if not _json_name(str(path)):
        raise GraphFileError(f"cannot write {path}: graph files end in .json (load refuses any other name)")
    text = dumps(graph)
    try:
        Path(path).write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        raise GraphFileError(f"cannot write {path}: {e.strerror}") from None


# ----- loading ---------------------------------------------------------------------------
def load(path, max_bytes=MAX_BYTES, max_nodes=MAX_NODES):
    """Read and check a graph file; returns a validated Graph.  Never runs code from the file."""
    path = str(path)
    check_suffix(path)
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise GraphFileError(f"{path}: file is {size:,} bytes, over the limit of {max_bytes:,}")
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read: {e.strerror}") from None
    return loads(raw, source=path, max_bytes=max_bytes, max_nodes=max_nodes)


def _json_name(path):
    name = os.path.basename(path).lower()
    return name.endswith(SUFFIX) and name != SUFFIX


def check_suffix(path):
    """Graph files are named *.json (any case); anything else is refused, never guessed at."""
    if not _json_name(path):
        raise GraphFileError(f"{path}: not a graph file name: graph files end in .json "
                             "(a Python model needs --python, which runs it)")


def loads(text, source="<string>", max_bytes=MAX_BYTES, max_nodes=MAX_NODES):
    if len(text) > max_bytes:
        raise GraphFileError(f"{source}: {len(text):,} bytes, over the limit of {max_bytes:,}")
    try:
        return from_data(_parse(text), max_nodes)
    except GraphcError as e:
        raise type(e)(f"{source}: {e}") from None


def _parse(text):
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_int, parse_float=_float)
    except UnicodeDecodeError:
        raise GraphFileError("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        where = "ends too early (truncated?)" if _unclosed(e.doc) else "is not valid JSON"
        raise GraphFileError(f"{where}: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise GraphFileError(f"JSON nested deeper than the limit of {MAX_DEPTH} levels") from None
    _check_depth(data)
    return data


def _int(text):
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise GraphFileError(f"integer {text[:20]}... has more than {MAX_INT_DIGITS} digits (the limit)")
    return int(text)


def _float(text):
    value = float(text)
    if not math.isfinite(value):
        raise GraphFileError(f"number {text[:20]} is too large for a float (write \"inf\" inside a tagged array)")
    return value


def _check_depth(data):
    """Refuse nesting deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if level > MAX_DEPTH:
            raise GraphFileError(f"JSON nested deeper than the limit of {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))


def _unclosed(text):
    """True when the text stops inside a string or an open bracket: a cut-off file."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = ch == "\\", ch != '"'
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_string or depth > 0


def _no_constant(name):
    raise GraphFileError(f"not valid JSON: {name} is not a JSON number (write \"nan\" inside a tagged array)")


def from_data(data, max_nodes=MAX_NODES):
    """Check a parsed file and build the Graph (errors are one line, without the file name)."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list) and len(data["nodes"]) > max_nodes:
        raise GraphFileError(f"{len(data['nodes']):,} nodes, over the limit of {max_nodes:,}")
    _check_schema(data)
    _check_references(data)
    graph = Graph.from_nx(_build_nx(data), data["graph"]["name"])
    meta = data["graph"]
    graph.outputs, graph.grads = dict(meta["outputs"]), dict(meta["grads"])
    graph.edge_grads = {(r["src"], r["dst"], r["pos"]): {k: r[k] for k in ROLES}
                        for r in meta["edge_grads"]}
    graph.updates = {int(k): v for k, v in meta.get("updates", {}).items()}
    _validate(graph)
    return graph


def _build_nx(data):
    g = nx.MultiDiGraph()
    for node in data["nodes"]:
        label = f"node {node['id']} '{node['name']}' ({node['op']})"
        try:
            attrs = {k: decode(v) for k, v in node["attrs"].items()}
        except GraphFileError as e:
            raise GraphFileError(f"{label}: {e}") from None
        reason = attr_types.problem(node["op"], attrs) or attr_types.shape_problem(node["shape"])
        if reason:
            raise GraphFileError(f"{label}: {reason}")
        g.add_node(node["id"], op=node["op"], attrs=attrs, shape=tuple(node["shape"]), dtype=node["dtype"],
                   name=node["name"], phase=node["phase"])
    for edge in data["edges"]:
        g.add_edge(edge["source"], edge["target"], key=edge["pos"], pos=edge["pos"])
    return g


def _validate(graph):
    """graph.validate(), with attrs that an op cannot read reported as a file error."""
    try:
        graph.validate()
    except GraphcError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        bad = _first_bad_node(graph)
        raise GraphFileError(f"{bad}: attrs the op cannot use ({type(e).__name__}: {e})") from None


def _first_bad_node(graph):
    for n in graph.toposort():
        try:
            graph.validate_node(n)
        except Exception:  # noqa: BLE001 - looking for which node fails, whatever the error
            return f"node {n} '{graph.name_of(n)}' ({graph.op(n)})"
    return "a node"


def _check_references(data):
    ids = [node["id"] for node in data["nodes"]]
    known = set(ids)
    if len(known) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise GraphFileError(f"node id {dup} is used twice")
    for node in data["nodes"]:
        if node["op"] not in OPS:
            raise UnknownOpError(f"node {node['id']} '{node['name']}': unknown op {node['op']!r} "
                                 "(`graphc ops` lists the known ops; a user-defined op must be defined before loading)")
    for edge in data["edges"]:
        for end in ("source", "target"):
            if edge[end] not in known:
                raise GraphFileError(f"edge {edge['source']} -> {edge['target']}: no node with id {edge[end]}")
    meta = data["graph"]
    refs = [("output", k, v) for k, v in meta["outputs"].items()] + [("grad", k, v) for k, v in meta["grads"].items()]
    refs += [("edge_grads record", f"{r['src']}->{r['dst']}", r[k]) for r in meta["edge_grads"]
             for k in ("src", "dst", "upstream", "local", "downstream") if r[k] is not None]
    refs += [("update", k, v) for k, v in meta.get("updates", {}).items()] + \
            [("update", k, int(k)) for k in meta.get("updates", {})]
    for what, label, n in refs:
        if n not in known:
            raise GraphFileError(f"{what} {label!r} names node {n}, which does not exist")


# ----- the schema ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _validator():
    import jsonschema
    from graphc.io.schema import SCHEMA
    return jsonschema.Draft202012Validator(SCHEMA)


def _check_schema(data):
    import jsonschema
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraphFileError(f"not a graphc graph file (no \"format\": \"{FORMAT}\" at the top level)")
    if isinstance(data.get("version"), int) and data["version"] > VERSION:
        raise GraphFileError(f"format version {data['version']} is newer than this graphc reads ({VERSION}); upgrade graphc")
    validator = _validator()
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path) or "top level"
    raise GraphFileError(f"not a graphc graph file: at {where}: {_short(error)}")


def _short(error):
    if error.validator == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__}"
    if error.validator in ("const", "enum"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"{json.dumps(error.instance)[:60]} is not one of {', '.join(map(json.dumps, allowed))}"
    if error.validator == "pattern":
        return f"{json.dumps(error.instance)[:80]} is not a valid name (an identifier: letters, digits, '_' and '.')"
    if error.validator in ("anyOf", "oneOf"):
        return f"{json.dumps(error.instance)[:60]} is not a valid value here"
    text = " ".join(error.message.split())
    return text if len(text) <= 160 else text[:157] + "..."
