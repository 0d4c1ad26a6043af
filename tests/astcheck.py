"""Static checks of emitted modules with `ast`: every name a module loads is bound.

`unbound_loads(source)` lists the loads that would raise NameError or
UnboundLocalError: names bound nowhere (module assignments, imports, defs,
builtins, parameters, locals, loop targets, comprehension variables), and
function locals read before their first assignment.  The order check is
positional and treats a store inside a loop as visible anywhere in that loop
(a loop-carried value), so it never flags correct straight-line emitted code;
it would miss a read-before-write hidden behind a branch, which emitted code
does not have.

`identifiers(source)` collects every identifier a module defines or uses: the
adversarial name pool of tests/test_random_dags.py is built from it.
"""
import ast
import builtins

BUILTINS = frozenset(dir(builtins))
# Globals the loader (graphc.runtime) hands a module before running it, e.g. array constants.
LOADER_GLOBALS = frozenset({"CONSTANTS"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


def identifiers(source):
    """Every identifier in `source`: names, defs, parameters, imports, attribute names."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
    return out


def unbound_loads(source):
    """[(name, line, scope)] for each load of a name that is not bound there, and for
    each function parameter or local that shadows a module import or function
    (a chunk parameter named `math` hides the module from that chunk)."""
    tree = ast.parse(source)
    module_names = _bound_in(tree.body, module=True) | BUILTINS | LOADER_GLOBALS
    problems = [(name, line, scope + " (shadows a module import or def)") for name, line, scope in _shadowing(tree)]
    _check_body(tree.body, module_names, set(), "<module>", problems, module=True)
    for fn in _nested_scopes(tree.body):
        _check_function(fn, module_names, problems)
    return problems


def _shadowing(tree):
    protected = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            protected |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            protected.add(node.name)
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local = (_bound_in(fn.body) | _params(fn)) - _declared_global(fn)
            out += [(name, fn.lineno, fn.name) for name in sorted(local & protected)]
    return out


def _nested_scopes(body):
    """Functions and lambdas defined directly in this scope (not inside another function)."""
    return [n for n in _direct_children(body) if isinstance(n, _SCOPES)] + \
        [n for c in _direct_children(body) if isinstance(c, ast.ClassDef) for n in _nested_scopes(c.body)]


def _direct_children(body):
    """All nodes of `body` that belong to this scope: a nested function, lambda,
    class or comprehension is yielded (its name binds here) but not entered,
    except for the parts evaluated here (decorators, defaults)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(node.decorator_list)
        if isinstance(node, _SCOPES):
            stack.extend(d for d in node.args.defaults + node.args.kw_defaults if d is not None)
        elif not isinstance(node, _COMPS + (ast.ClassDef,)):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _bound_in(body, module=False):
    names = set()
    for node in _direct_children(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)) and not module:
            names.difference_update(node.names)
    return names


def _params(fn):
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return set(names)


def _declared_global(fn):
    out = set()
    for node in _direct_children(fn.body if isinstance(fn.body, list) else [fn.body]):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
    return out


def _check_function(fn, outer, problems):
    body = fn.body if isinstance(fn.body, list) else [fn.body]
    local = (_bound_in(body) | _params(fn)) - _declared_global(fn)
    scope = getattr(fn, "name", "<lambda>")
    _check_body(body, outer, local, scope, problems, params=_params(fn))
    for inner in _nested_scopes(body):  # closures see this function's locals
        _check_function(inner, outer | local, problems)


def _check_body(body, outer, local, scope, problems, module=False, params=frozenset()):
    stores = _store_positions(body)
    loops = [n for n in _direct_children(body) if isinstance(n, _LOOPS)]
    for node in _direct_children(body):
        if isinstance(node, _COMPS):
            _check_comprehension(node, outer | local, scope, problems)
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        name = node.id
        if name in local or (module and name in outer and name in stores):
            if name in params or _stored_before(node, stores.get(name, ()), loops):
                continue
            problems.append((name, node.lineno, scope))
        elif name not in outer:
            problems.append((name, node.lineno, scope))


def _store_positions(body):
    """name -> [position after which the store is visible]."""
    out = {}
    for stmt in _direct_children(body):
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.comprehension)):
            for t in ast.walk(stmt.target):
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append((t.lineno, t.col_offset))
        elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.With, ast.Import, ast.ImportFrom,
                               ast.FunctionDef, ast.ClassDef, ast.ExceptHandler, ast.NamedExpr)):
            end = (stmt.end_lineno, stmt.end_col_offset)
            for name in _names_stored_by(stmt):
                out.setdefault(name, []).append(end)
    return out


def _names_stored_by(stmt):
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    if isinstance(stmt, ast.ExceptHandler):
        return [stmt.name] if stmt.name else []
    targets = {ast.Assign: lambda s: s.targets, ast.AugAssign: lambda s: [s.target],
               ast.AnnAssign: lambda s: [s.target], ast.NamedExpr: lambda s: [s.target],
               ast.With: lambda s: [i.optional_vars for i in s.items if i.optional_vars is not None]}[type(stmt)](stmt)
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def _stored_before(load, positions, loops):
    here = (load.lineno, load.col_offset)
    if any(p <= here for p in positions):
        return True
    # A value carried around a loop: stored later in the same loop body.
    for loop in loops:
        if _inside(load, loop) and any(_inside_pos(p, loop) for p in positions):
            return True
    return False


def _inside(node, outer):
    return _inside_pos((node.lineno, node.col_offset), outer)


def _inside_pos(pos, outer):
    return (outer.lineno, outer.col_offset) <= pos <= (outer.end_lineno, outer.end_col_offset)


def _check_comprehension(comp, visible, scope, problems):
    bound = {n.id for g in comp.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
    for node in ast.walk(comp):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound | visible:
            problems.append((node.id, node.lineno, scope))
