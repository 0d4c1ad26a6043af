"""The `graphc` command line: list the op table, emit code for a model, prove derivatives.

Exit codes: 0 success, 1 a check failed, 2 a usage or input error.  Errors are
one line on stderr; pass --debug for the full traceback.
"""
import argparse
import os
import runpy
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BACKENDS = {"python": "graphc.codegen.python"}  # numba-cpu / numba-cuda are planned (issue 3)


class UsageError(Exception):
    """Bad input from the user (missing file, no graph in the model, unknown op)."""


def _fmt(description, examples):
    return {"description": description, "epilog": "examples:\n" + "\n".join(f"  {e}" for e in examples),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


# ----- graphc ops ------------------------------------------------------------------
def cmd_ops(args):
    from graphc.ops import table
    rows = [op for op in table() if args.kind is None or op.kind == args.kind]
    if not rows:
        raise UsageError(f"no ops of kind {args.kind!r}")
    width = max(len(op.name) for op in rows)
    kinds = max(len("kind"), *(len(op.kind) for op in rows))
    print(f"{'op':<{width}}  arity  {'kind':<{kinds}}  doc")
    for op in rows:
        print(f"{op.name:<{width}}  {op.arity:>5}  {op.kind:<{kinds}}  {op.doc}")
    return EXIT_OK


# ----- graphc emit -----------------------------------------------------------------
def load_graph(path):
    """Run the Python file at `path` and return its module-level `graph` or `build()` result.

    This executes the file's code (as `import` would), with __name__ set to
    "graphc_model", so an `if __name__ == "__main__":` block does not run.
    """
    from graphc.ir import Graph
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the model may import its neighbours
    try:
        namespace = runpy.run_path(path, run_name="graphc_model")
    finally:
        sys.path.remove(folder)
    if isinstance(namespace.get("graph"), Graph):
        graph = namespace["graph"]
    elif callable(namespace.get("build")):
        graph = namespace["build"]()
    else:
        raise UsageError(f"{path} defines neither a module-level `graph` (a graphc.Graph) nor a function `build()`")
    if not isinstance(graph, Graph):
        raise UsageError(f"{path}: build() returned {type(graph).__name__}, not a graphc.Graph")
    return graph


def cmd_emit(args):
    import importlib

    import graphc
    graph = load_graph(args.model)
    graph.validate()
    if args.grad:
        wrt = args.wrt.split(",") if args.wrt else None
        graph = graphc.grad(graph, loss=args.loss, wrt=wrt)
    backend = importlib.import_module(BACKENDS[args.backend])
    sys.stdout.write(backend.emit(graph))
    return EXIT_OK


# ----- graphc verify ---------------------------------------------------------------
def cmd_verify(args):
    try:
        from graphc import verify
    except ImportError as e:
        raise UsageError(f"graphc.verify is not available in this installation ({e})") from None
    if args.op:
        from graphc.ops.registry import OPS
        if args.op not in OPS:
            raise UsageError(f"unknown op {args.op!r}; `graphc ops` lists them")
        results = [verify.prove_op(args.op)]
    else:
        results = verify.prove_all()
    width = max((len(r.op) for r in results), default=0)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.op:<{width}}  {r.status:<18}  {r.detail}".rstrip())
    failed = [r.op for r in results if not r.ok]
    print(f"{len(results) - len(failed)} ok, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return EXIT_FAILED if failed else EXIT_OK


# ----- entry point -----------------------------------------------------------------
def make_parser():
    p = argparse.ArgumentParser(prog="graphc", **_fmt(
        "graphc: a symbolic computation-graph compiler for neural networks.",
        ["graphc ops", "graphc emit examples/lecture_graph.py --grad", "graphc verify tanh",
         "graphc SUBCOMMAND --help"]))
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    common = argparse.ArgumentParser(add_help=False)  # so --debug also works after the subcommand
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND")
    sub.required = True

    ops = sub.add_parser("ops", help="list the op table", parents=[common], **_fmt(
        "List every op in the op table: name, arity (operand count), kind and doc.",
        ["graphc ops", "graphc ops --kind elementwise"]))
    ops.add_argument("--kind", help="only ops of this kind (leaf, elementwise, compare, reduce, array, nn)")
    ops.set_defaults(fn=cmd_ops)

    emit = sub.add_parser("emit", help="print the code emitted for a model file", parents=[common], **_fmt(
        "Print the source a backend emits for a model.\n\n"
        "MODEL.py is a Python file that defines a module-level `graph` (a graphc.Graph)\n"
        "or a function `build()` returning one.  WARNING: this RUNS the file's code,\n"
        "as `import` would (with __name__ == 'graphc_model', so a `__main__` block is skipped).",
        ["graphc emit examples/lecture_graph.py",
         "graphc emit examples/lecture_graph.py --grad",
         "graphc emit examples/spiral_gradients.py --grad --wrt W1,W2 > step.py"]))
    emit.add_argument("model", metavar="MODEL.py", help="Python file defining `graph` or `build()`")
    emit.add_argument("--grad", action="store_true", help="emit the gradient graph (graphc.grad) instead")
    emit.add_argument("--loss", help="with --grad: the output to differentiate (default: the only output)")
    emit.add_argument("--wrt", help="with --grad: comma-separated names (default: params, else float inputs)")
    emit.add_argument("--backend", choices=sorted(BACKENDS), default="python", help="code generator (default: python)")
    emit.set_defaults(fn=cmd_emit)

    ver = sub.add_parser("verify", help="prove op derivatives with SymPy", parents=[common], **_fmt(
        "Prove each op's derivative rule symbolically (graphc.verify).  Exit code 1 if any proof fails.",
        ["graphc verify", "graphc verify softmax"]))
    ver.add_argument("op", nargs="?", help="one op to prove (default: every op)")
    ver.set_defaults(fn=cmd_verify)
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)  # usage errors exit 2 here
    try:
        return args.fn(args)
    except BrokenPipeError:  # e.g. `graphc ops | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except UsageError as e:
        if args.debug:
            raise
        print(f"graphc {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # e.g. a model file that fails to build: an input error
        if args.debug:
            raise
        detail = " ".join(str(e).split())
        print(f"graphc {args.command}: error: {type(e).__name__}: {detail} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
