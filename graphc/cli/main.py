"""The `graphc` command line: list the op table, emit code, prove derivatives, render
annotated graphs, check gradients, save graph files.

MODEL arguments are graph files (*.json, any case), which are only read; a Python
model file runs only when the command says --python (docs/security.md).

Exit codes: 0 success, 1 a check failed, 2 a usage or input error.  Errors are
one line on stderr; pass --debug for the full traceback.
"""
import argparse
import os
import sys

from graphc.cli import cache
from graphc.cli.inputs import UsageError, load_model

from graphc.backends import BACKENDS  # python, numba, cuda

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _fmt(description, examples):
    return {"description": description, "epilog": "examples:\n" + "\n".join(f"  {e}" for e in examples),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


# ----- graphc ops ------------------------------------------------------------------
def cmd_ops(args):
    from graphc.ir.ops import table
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
def load_graph(path, python=False):
    """The graph of a model file: a .json graph file (read, never run), or with
    python=True (--python) a Python file that is RUN (as `import` would, with
    __name__ == "graphc_model") and must define a module-level `graph` or a function `build()`."""
    return load_model(path, python)[0]


def cmd_emit(args):
    from graphc.backends import emit_source
    from graphc.transform.autodiff import grad
    graph = load_graph(args.model, args.python)
    graph.validate()
    wrt = args.wrt.split(",") if args.wrt else None
    if args.step:
        from graphc.train import SGD, build_step
        graph = build_step(graph, SGD(lr=0.01), loss=args.loss, params=wrt)
    elif args.grad:
        graph = grad(graph, loss=args.loss, wrt=wrt)
    sys.stdout.write(emit_source(graph, args.backend))
    return EXIT_OK


# ----- graphc verify ---------------------------------------------------------------
def cmd_verify(args):
    try:
        from graphc.check import verify as verify
    except ImportError as e:
        raise UsageError(f"graphc.check.verify is not available in this installation ({e})") from None
    if args.op:
        from graphc.ir.ops.registry import OPS
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


# ----- graphc render / check / save ------------------------------------------------
def _model_and_feeds(args, keep_text=False):
    from graphc.cli.inputs import parse_dims, prepare_feeds
    graph, model_feeds = load_model(args.model, args.python)
    feeds, randomized, defaulted = prepare_feeds(graph, args.feed, args.feeds, model_feeds, parse_dims(args.dim),
                                                 args.seed, keep_text=keep_text)
    if randomized:  # told once the command has run: a refusal stays one line
        sizes = f" with {', '.join(f'{d}={v}' for d, v in defaulted.items())} (set with --dim)" if defaulted else ""
        args.notes.append(f"graphc {args.command}: note: random values (seed {args.seed}) for {', '.join(randomized)}"
                          f"{sizes}; choose them with --feed NAME=VALUE or --feeds FILE.npz")
    return graph, feeds


def _wrt(args):
    return args.wrt.split(",") if args.wrt else None


def cmd_render(args):
    from graphc.check.annotate import annotate
    from graphc.view import render as render
    from graphc.view.backprop_table import format_markdown, format_text
    graph, feeds = _model_and_feeds(args, keep_text=args.exact)
    ann = annotate(graph, feeds, loss=args.loss, wrt=_wrt(args), exact=args.exact)
    if args.trace:
        sys.stdout.write((format_markdown if args.markdown else format_text)(ann))
        if not args.output:
            return EXIT_OK
    if args.html:
        return _render_html(args, ann)
    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + ".svg"
    engine = render.render(ann, out, forward_only=args.forward_only, backward_graph=args.backward_graph,
                           rankdir=args.rankdir, collapse=args.collapse)
    laid = "" if engine == "none" else f", laid out with {engine}"
    print(f"wrote {out}{laid}", file=sys.stderr if args.trace else sys.stdout)
    return EXIT_OK


def _render_html(args, ann):
    from graphc.view.stepper.page import render_html
    if args.forward_only or args.backward_graph:
        raise UsageError("--html steps through the forward graph's backprop; drop --forward-only/--backward-graph")
    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + ".html"
    render_html(ann, collapse=args.collapse, rankdir=args.rankdir, quiz=args.quiz).save(out)
    print(f"wrote {out} (open it in a browser: backprop step by step)", file=sys.stderr if args.trace else sys.stdout)
    return EXIT_OK


def cmd_check(args):
    from graphc.check.gradcheck import gradcheck
    graph, feeds = _model_and_feeds(args)
    loss = args.loss or _forward_loss(graph)
    result = gradcheck(graph, feeds, wrt=_wrt(args), loss=loss, eps=args.eps, projections=args.projections,
                       rtol=args.rtol, rng=args.seed)
    print(f"{'direction':>9}  {'analytic':>22}  {'numeric':>22}  error/tolerance")
    for i, (_, analytic, numeric, err) in enumerate(result.checks, 1):
        print(f"{i:>9}  {analytic:>22.15g}  {numeric:>22.15g}  {err:.3g}")
    verdict = "ok" if result.ok else "FAIL"
    print(f"{verdict}: gradients of {loss!r} match central differences" if result.ok else
          f"{verdict}: gradients of {loss!r} differ from central differences (worst {result.max_error:.3g} x tolerance)")
    return EXIT_OK if result.ok else EXIT_FAILED


def _forward_loss(graph):
    """The loss of a forward graph, or of a saved gradient graph (its one forward output)."""
    if len(graph.outputs) == 1:
        return next(iter(graph.outputs))
    names = [k for k, n in graph.outputs.items() if graph.node(n)["phase"] == "forward"]
    if len(names) == 1:
        return names[0]
    raise UsageError(f"graph {graph.name!r} has outputs {', '.join(graph.outputs)}; say which is the loss with --loss")


def cmd_save(args):
    from graphc.io.graphfile import save
    from graphc.transform.autodiff import grad
    graph = load_graph(args.model, args.python)
    graph.validate()
    if args.grad:
        graph = grad(graph, loss=args.loss, wrt=_wrt(args))
    save(graph, args.output)
    print(f"wrote {args.output} ({len(graph)} nodes)")
    return EXIT_OK


# ----- entry point -----------------------------------------------------------------
def make_parser():
    p = argparse.ArgumentParser(prog="graphc", **_fmt(
        "graphc: a symbolic computation-graph compiler for neural networks.",
        ["graphc ops", "graphc emit --python examples/lecture_graph.py --grad", "graphc verify tanh",
         "graphc render --python examples/lecture_graph.py -o lecture.svg",
         "graphc check --python examples/lecture_graph.py",
         "graphc save --python examples/lecture_graph.py -o lecture.json", "graphc render lecture.json",
         "graphc cache info",
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
        "Print the source a backend emits for a model, forward only or with gradients (--grad).\n\n"
        + MODEL_HELP,
        ["graphc emit --python examples/lecture_graph.py",
         "graphc emit --python examples/lecture_graph.py --grad",
         "graphc emit --python examples/lecture_graph.py --grad --backend numba",
         "graphc emit model.json --grad",
         "graphc emit --python examples/spiral_gradients.py --step --backend numba   # forward+backward+SGD in one @njit",
         "graphc emit --python examples/spiral_gradients.py --grad --wrt W1,W2 > step.py"]))
    _add_model(emit)
    emit.add_argument("--grad", action="store_true", help="emit the gradient graph (graphc.grad) instead")
    emit.add_argument("--step", action="store_true",
                      help="emit the whole SGD training step: forward, backward and update in one function")
    emit.add_argument("--loss", help="with --grad: the output to differentiate (default: the only output)")
    emit.add_argument("--wrt", help="with --grad: comma-separated names (default: params, else float inputs)")
    emit.add_argument("--backend", choices=sorted(BACKENDS), default="python", help="code generator (default: python)")
    emit.set_defaults(fn=cmd_emit)

    ver = sub.add_parser("verify", help="prove op derivatives with SymPy", parents=[common], **_fmt(
        "Prove each op's derivative rule symbolically (graphc.check.verify).  Exit code 1 if any proof fails.",
        ["graphc verify", "graphc verify softmax"]))
    ver.add_argument("op", nargs="?", help="one op to prove (default: every op)")
    ver.set_defaults(fn=cmd_verify)
    _add_render(sub, common)
    _add_check(sub, common)
    _add_save(sub, common)
    return p


MODEL_HELP = (
    "MODEL is a graph file (.json, written by `graphc save`), which is only read and\n"
    "checked, never run; or, with --python, a Python file (.py) that defines a\n"
    "module-level `graph` (a graphc.Graph) or a function `build()` returning one.\n"
    "WARNING: with --python graphc RUNS the file's code, as `import` would (with\n"
    "__name__ == 'graphc_model', so an `if __name__ == '__main__':` block is skipped).\n"
    "Without --python a .py file is refused, and so is any name not ending in .json.")


def _add_model(p):
    p.add_argument("model", metavar="MODEL", help="a .json graph file (only read), or with --python a .py model (run)")
    p.add_argument("--python", action="store_true",
                   help="MODEL is a Python file: RUN it to build the graph (only for code you trust)")

INPUTS_HELP = (
    "Inputs: --feed NAME=VALUE (a number such as 5, -0.25 or 1/3, or a JSON list),\n"
    "then --feeds FILE.npz, then the .py model's module-level FEEDS dict; any input or\n"
    "param still missing gets seeded random values (floats: standard normal rounded to\n"
    "2 decimals; integer labels: 0 .. classes-1; bools: coin flips), and graphc says\n"
    "which.  A symbolic dimension (e.g. the batch size N) is bound by the fed arrays,\n"
    "by --dim N=SIZE, or else set to 4.")


def _add_inputs(p):
    _add_model(p)
    p.add_argument("--feed", action="append", default=[], metavar="NAME=VALUE", help="value of one input or param")
    p.add_argument("--feeds", metavar="FILE.npz", help="values of inputs and params, by name (numpy .npz)")
    p.add_argument("--dim", action="append", default=[], metavar="N=SIZE", help="size of a symbolic dimension")
    p.add_argument("--seed", type=int, default=0, help="seed of the random default inputs (default: 0)")
    p.add_argument("--loss", help="the output to differentiate (default: the only output)")
    p.add_argument("--wrt", help="comma-separated names to differentiate with respect to (default: params, else float inputs)")


def _add_render(sub, common):
    r = sub.add_parser("render", help="draw a graph with values, gradients and U/L on every edge", parents=[common], **_fmt(
        "Draw the graph evaluated at given inputs: every node shows its op, name, value\n"
        "and gradient; every edge shows the upstream gradient U, the local gradient L and\n"
        "U·L, as on the lecture's backprop slide.  Scalars show their number, tensors their\n"
        "shape and statistics (or values, when small).  The format comes from -o's suffix:\n"
        "svg, png, pdf or dot.  Layout uses the Graphviz `dot` program if installed, else\n"
        "pygraphviz (pip, bundles Graphviz); with neither, the .dot file is written.\n"
        "--trace prints the backward pass as a table instead (plus the picture if -o is given).\n"
        "--collapse draws each block of nodes named with a common prefix (layer1.W,\n"
        "layer1.h, ...) and each run of structurally identical blocks as one box.\n\n"
        + MODEL_HELP + "\n\n" + INPUTS_HELP,
        ["graphc render --python examples/lecture_graph.py -o lecture.svg",
         "graphc render --python examples/lecture_graph.py --feed x1=1/2 --exact -o exact.png",
         "graphc render --python examples/lecture_graph.py --trace --markdown",
         "graphc render model.json --feeds batch.npz --collapse -o model.pdf",
         "graphc render --python examples/spiral_gradients.py --dim N=8 --backward-graph --rankdir TB -o g.svg"]))
    _add_inputs(r)
    r.add_argument("-o", "--output", metavar="OUT", help="output file: .svg, .png, .pdf or .dot (default: MODEL's name + .svg)")
    r.add_argument("--forward-only", action="store_true", help="values only: no gradients, no U/L")
    r.add_argument("--backward-graph", action="store_true", help="draw the gradient graph itself: forward and backward nodes")
    r.add_argument("--rankdir", choices=("LR", "TB", "RL", "BT"), default="LR", help="layout direction (default: LR)")
    r.add_argument("--collapse", action="store_true", help="draw repeated blocks as one box each")
    r.add_argument("--exact", action="store_true", help="SymPy rationals: 1/3 stays 1/3, as in a hand calculation")
    r.add_argument("--trace", action="store_true", help="print the backward pass as a table (node, value, U, L, U·L)")
    r.add_argument("--markdown", action="store_true", help="with --trace: a Markdown table")
    r.add_argument("--html", action="store_true",
                   help="write one self-contained HTML page that steps through backprop (default OUT: MODEL's name + .html)")
    r.add_argument("--quiz", action="store_true", help="with --html: start in quiz mode (each new value hidden until revealed)")
    r.set_defaults(fn=cmd_render)


def _add_check(sub, common):
    c = sub.add_parser("check", help="finite-difference gradient check of a model", parents=[common], **_fmt(
        "Compare reverse-mode gradients with central differences along random directions\n"
        "(graphc.check.gradcheck); the graph must be float64.  Exit code 1 if they differ.\n\n"
        + MODEL_HELP + "\n\n" + INPUTS_HELP,
        ["graphc check --python examples/lecture_graph.py",
         "graphc check --python examples/spiral_gradients.py --dim N=16 --projections 8",
         "graphc check model.json --feeds batch.npz --wrt W1,b1"]))
    _add_inputs(c)
    c.add_argument("--projections", type=int, default=4, help="random directions to check (default: 4)")
    c.add_argument("--eps", type=float, default=1e-6, help="finite-difference step (default: 1e-6)")
    c.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (default: 1e-6)")
    c.set_defaults(fn=cmd_check)


def _add_save(sub, common):
    s = sub.add_parser("save", help="write a model's graph as a JSON graph file", parents=[common], **_fmt(
        "Write the graph of MODEL as a JSON graph file (networkx node-link data plus a\n"
        "format version; see docs/render.md).  Loading it later never runs code.\n\n" + MODEL_HELP,
        ["graphc save --python examples/lecture_graph.py -o lecture.json",
         "graphc save --python examples/lecture_graph.py --grad -o lecture_grad.json",
         "graphc render lecture.json --feed x1=5 --feed x2=4 --feed x3=3 --feed x4=2"]))
    _add_model(s)
    s.add_argument("-o", "--output", required=True, metavar="OUT.json", help="the file to write")
    s.add_argument("--grad", action="store_true", help="save the gradient graph (graphc.grad) instead")
    s.add_argument("--loss", help="with --grad: the output to differentiate (default: the only output)")
    s.add_argument("--wrt", help="with --grad: comma-separated names (default: params, else float inputs)")
    s.set_defaults(fn=cmd_save)

    cache.add_parser(sub, common, _fmt)


def main(argv=None):
    args = make_parser().parse_args(argv)  # usage errors exit 2 here
    args.notes = []
    try:
        code = args.fn(args)
    except BrokenPipeError:  # e.g. `graphc ops | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except UsageError as e:
        if args.debug:
            raise
        print(one_line(f"graphc {args.command}: error: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # e.g. a model file that fails to build: an input error
        if args.debug:
            raise
        print(one_line(f"graphc {args.command}: error: {type(e).__name__}: {e} (rerun with --debug for the traceback)"),
              file=sys.stderr)
        return EXIT_USAGE
    for note in args.notes:
        print(note, file=sys.stderr)
    return code


def one_line(text):
    """One printable line: whitespace runs become one space, and control characters
    (a terminal escape in a file name, say) are shown escaped, never sent to the terminal."""
    text = " ".join(str(text).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())
