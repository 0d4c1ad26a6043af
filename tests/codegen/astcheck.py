"""Static checks of an emitted module, by parsing it with `ast` (never running it).

`check_bound(source)` asserts that every name the module loads is bound where it
is read: a module global (import, assignment, def), a builtin, the CONSTANTS
dict the loader hands over, or a parameter or local of the enclosing function
assigned no later than its first read.  It also asserts that no function
parameter or local shadows an import or a module-level function (a chunk
parameter called `math` would hide the module).

`identifiers(source)` is every identifier a module binds or reads, and
`emitter_identifier_pool()` their union over the zoo graph on every emitter: the
pool adversarial name tests draw from ("every identifier any emitter generates").
"""
import ast
import builtins
import functools

LOADER_GLOBALS = {"CONSTANTS", "__file__", "__name__"}


def _module_bindings(tree):
    bound, protected = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                bound.add(name)
                protected.add(name)
        elif isinstance(node, ast.FunctionDef):
            bound.add(node.name)
            protected.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                bound |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return bound, protected


def _first_positions(fn):
    """name -> (first store line, first load line) inside fn (comprehension vars bound at once)."""
    stores, loads, comp_vars = {}, {}, set()
    for node in ast.walk(fn):
        if isinstance(node, ast.comprehension):
            comp_vars |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        if isinstance(node, ast.Name):
            table = stores if isinstance(node.ctx, (ast.Store, ast.Del)) else loads
            table[node.id] = min(table.get(node.id, node.lineno), node.lineno)
    return stores, loads, comp_vars


def check_bound(source, where="emitted module"):
    tree = ast.parse(source)
    module, protected = _module_bindings(tree)
    globals_ = module | set(dir(builtins)) | LOADER_GLOBALS
    problems = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            problems += _check_function(node, globals_, protected)
        else:
            for n in ast.walk(node):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in globals_:
                    problems.append(f"line {n.lineno}: module level reads unbound {n.id!r}")
    assert not problems, f"{where}:\n" + "\n".join(problems[:20])


def _check_function(fn, globals_, protected):
    params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
    stores, loads, comp_vars = _first_positions(fn)
    problems = [f"{fn.name}: parameter or local {name!r} shadows a module name"
                for name in sorted((params | set(stores)) & protected)]
    for name, line in sorted(loads.items()):
        if name in params or name in comp_vars:
            continue
        if name in stores:
            if stores[name] > line:
                problems.append(f"{fn.name}: {name!r} read on line {line} before it is assigned (line {stores[name]})")
        elif name not in globals_:
            problems.append(f"{fn.name}: line {line} reads unbound {name!r}")
    return problems


def identifiers(source):
    """Every identifier a module binds or reads (names, parameters, function names)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.FunctionDef):
            out.add(node.name)
    return out


@functools.cache
def emitter_identifier_pool():
    """Every identifier the three emitters write for the zoo graph (every op, with
    gradients): python, numba (serial and parallel) and cuda.  Emitting only, no
    compile; the pool adversarial-name tests draw from."""
    from graphc.backends.numba_cpu import emit as numba_cpu
    from graphc.backends.cuda import emit as numba_cuda
    from graphc.backends.python import emit as python
    from tests.codegen.zoo import build_zoo
    graph, _ = build_zoo("float64")
    sources = [python.emit(graph), numba_cpu.emit(graph, parallel=False), numba_cpu.emit(graph, parallel=True),
               numba_cuda.emit(graph)]
    return frozenset().union(*(identifiers(s) for s in sources))
