"""graphc's start-up costs, measured in this (new) process: import, building the
model graph, compile_step, and the first step call -- where numba compiles, or
loads the compiled code from the disk cache.

    GRAPHC_CACHE_DIR=$(mktemp -d) .venv/bin/python benchmarks/graphc_startup.py --workload spiral   # cold
    # run it again with the same GRAPHC_CACHE_DIR: a warm start (cache hit)

Prints JSON with seconds of each phase; `compile_first_s` = compile_step +
first call, the time a user waits between having a graph and having the first
step's loss; `since_start_s` = wall time from --t0 (time.time() taken by the
caller just before it started this process) to the first result, so it
includes starting Python and importing NumPy, numba and graphc.
`cache_hits`/`cache_misses` are numba's counters for the step function.
"""
import argparse
import json
import sys
import time

T_ENTER = time.time()
P_ENTER = time.perf_counter()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload")
    p.add_argument("--layers")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--t0", type=float, help="time.time() just before this process was started")
    args = p.parse_args(argv)

    t = time.perf_counter()
    import numpy as np  # noqa: F401
    import graphc  # noqa: F401
    from graphc.train import SGD, compile_step
    import workloads as W
    from peer_graphc import build_model
    t_import = time.perf_counter() - t

    spec = W.spec_from_args(args.workload, args.layers, args.batch, args.lr)
    X, y = W.make_data(spec)
    params = W.init_params(spec)
    t = time.perf_counter()
    graph = build_model(spec)
    t_build = time.perf_counter() - t

    t = time.perf_counter()
    step = compile_step(graph, params, SGD(lr=spec.lr), backend="numba")
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    out = step(X=X, y=y)
    float(out["loss"])
    t_first = time.perf_counter() - t
    t_result = time.time()
    t = time.perf_counter()
    step(X=X, y=y)
    t_second = time.perf_counter() - t

    res = {"workload": spec.name, "nodes": len(graph), "step_nodes": len(step.graph),
           "source_lines": step.compiled.source.count("\n"),
           "import_s": t_import, "build_s": t_build, "compile_step_s": t_compile, "first_call_s": t_first,
           "compile_first_s": t_compile + t_first, "second_call_s": t_second,
           "in_process_s": time.perf_counter() - P_ENTER - t_second}
    if args.t0:
        res["since_start_s"] = t_result - args.t0
        res["interpreter_start_s"] = T_ENTER - args.t0
    stats = getattr(getattr(step.compiled.module, "run", None), "stats", None)
    if stats is not None:
        res["cache_hits"] = sum(stats.cache_hits.values())
        res["cache_misses"] = sum(stats.cache_misses.values())
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
