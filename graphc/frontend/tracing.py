"""Tracing: run a plain Python function on symbolic values and keep the graph.

Each parameter gets one spec (a `*args` parameter one per spare spec), and
local variables that hold values name their nodes, so `a = x1 + x2` becomes
node `a`.
"""
import inspect
import sys

from graphc.frontend.dsl import Builder, Input, Param, Value
from graphc.errors import GraphcError


def trace(fn, *specs, name=None, dtype="float64", **kw_specs):
    """Trace a Python function of symbolic values into a validated Graph.

    Each parameter gets a spec: Input(shape, dtype), Param(shape, dtype), or a
    shape tuple (an input).  Local variables that hold values name their nodes,
    so `a = x1 + x2` becomes node `a`.
    """
    builder = Builder(name or getattr(fn, "__name__", "graph"), dtype)
    leaf_names, star = _bind_specs(fn, specs, kw_specs)
    args = [_make_leaf(builder, leaf, spec) for leaf, spec in leaf_names]
    result, local_vars = _call_recording_locals(fn, args, star)
    _name_from_locals(builder.graph, local_vars)
    outs = result if isinstance(result, dict) else dict(enumerate(result if isinstance(result, (tuple, list)) else [result]))
    for key, v in outs.items():
        if not isinstance(v, Value):
            raise GraphcError(f"trace({fn.__name__}): output {key!r} is {type(v).__name__}, not a symbolic value")
        if v.graph is not builder.graph:  # misuse (issue 13): a value captured from another trace
            raise GraphcError(f"trace({fn.__name__}): output {key!r} belongs to graph {v.graph.name!r}, not to this "
                              "trace; build it from this function's arguments")
        builder.graph.set_output(v.node, key if isinstance(key, str) else None)
    return builder.graph.validate()


def _bind_specs(fn, specs, kw_specs):
    """Pair each parameter with one spec, refusing a count that does not match.

    Returns ([(leaf name, spec)] in call order, the keyword parameters' names
    that follow a *args parameter).  A `*args` parameter takes every spare
    positional spec, one leaf each, named `<args>_0`, `<args>_1`, ...
    """
    label = getattr(fn, "__name__", repr(fn))
    params = list(inspect.signature(fn).parameters.values())
    var = next((p for p in params if p.kind == p.VAR_POSITIONAL), None)
    fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw_only = [p for p in params if p.kind == p.KEYWORD_ONLY]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        raise GraphcError(f"trace({label}): a **kwargs parameter cannot be traced; name each parameter")
    bound = dict(zip((p.name for p in fixed), specs))
    extra = list(specs[len(fixed):])
    if extra and var is None:
        raise GraphcError(f"trace({label}): the function takes {len(fixed)} parameter(s) "
                          f"({', '.join(p.name for p in fixed) or 'none'}) but got {len(specs)} positional spec(s)")
    named = [p.name for p in fixed + kw_only]
    for key in kw_specs:
        if key not in named:
            raise GraphcError(f"trace({label}): no parameter {key!r} for a keyword spec; parameters: {', '.join(named) or 'none'}")
        if key in bound:
            raise GraphcError(f"trace({label}): parameter {key!r} has a positional and a keyword spec")
    bound |= kw_specs
    missing = [n for n in named if n not in bound]
    if missing:
        raise GraphcError(f"trace({label}): the function takes {len(named)} parameter(s) but got "
                          f"{len(specs) + len(kw_specs)} spec(s); no spec for parameter(s) {', '.join(missing)}")
    leaves = [(p.name, bound[p.name]) for p in fixed]
    leaves += [(f"{var.name}_{i}", spec) for i, spec in enumerate(extra)]
    leaves += [(p.name, bound[p.name]) for p in kw_only]
    return leaves, [p.name for p in kw_only]


def _make_leaf(builder, pname, spec):
    if isinstance(spec, (tuple, list)):
        spec = Input(tuple(spec))
    if not isinstance(spec, (Input, Param)):
        raise GraphcError(f"trace: parameter {pname!r} has spec {spec!r}; give a shape tuple, gc.Input(...) or gc.Param(...)")
    add_leaf = builder.input if spec.op == "input" else builder.param
    return add_leaf(pname, spec.shape, spec.dtype)


def _call_recording_locals(fn, args, keyword_names=()):
    """Run fn and capture its local variables at return (to name nodes after them).

    The last len(keyword_names) args are passed by keyword (keyword-only parameters)."""
    captured = {}
    code = getattr(fn, "__code__", None)

    def profiler(frame, event, arg):
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    old = sys.getprofile()
    sys.setprofile(profiler)
    try:
        split = len(args) - len(keyword_names)
        result = fn(*args[:split], **dict(zip(keyword_names, args[split:])))
    finally:
        sys.setprofile(old)
    return result, captured


def _name_from_locals(graph, local_vars):
    for var, v in local_vars.items():
        if isinstance(v, Value) and v.graph is graph and v.op not in ("input", "param"):
            auto = v.name.startswith(v.op + "_")
            if auto and not graph.has_name(var):
                graph.rename(v.node, var)
