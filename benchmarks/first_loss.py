"""Process start -> first loss, for every peer, each in a new process (issue 15's start-up table).

    .venv/bin/python benchmarks/first_loss.py                      # spiral and mnist, 3 interleaved rounds
    .venv/bin/python benchmarks/first_loss.py --workloads spiral --rounds 5

A round starts one new Python process per peer, one after the other (so no two
overlap), each with an empty GRAPHC_CACHE_DIR for the cold graphc rows; the
"graphc numba, warm" row reuses the cache its cold run just filled.  A child
reports, from time.time() taken by this driver just before it started the child:
interpreter start, imports (NumPy + the library), data, setup (graph building and
compile_step; JAX's jit and PyTorch's tensors), and the first step with its loss
as a float.  The table shows medians over rounds.

Peers: NumPy by hand, PyTorch eager, JAX jit, graphc on numba (today's default for
compile_step), and graphc on its python backend (NumPy code it emits: what a
NumPy first tier would give, before any numba).  PyTorch and JAX come from the
`bench` extra; a peer that is not installed is reported as missing.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_ENTER = time.time()
HERE = Path(__file__).resolve().parent
PEERS = ["numpy", "torch", "jax", "graphc-numba", "graphc-numba-warm", "graphc-python"]
LIBRARY = {"numpy": "numpy", "torch": "torch", "jax": "jax", "graphc-numba": "graphc", "graphc-python": "graphc"}


def _graphc_step(backend):
    def make(spec, X, y, params):
        import graphc  # noqa: F401
        from graphc.train import SGD, compile_step
        from peer_graphc import build_model
        step = compile_step(build_model(spec), params, SGD(lr=spec.lr), backend=backend)
        return lambda: float(step(X=X, y=y)["loss"])
    return make


def _peer_step(module):
    def make(spec, X, y, params):
        peer = __import__(module).make(spec, X, y, params)
        return lambda: peer.loss_value(peer.step())
    return make


MAKERS = {"numpy": _peer_step("peer_numpy"), "torch": _peer_step("peer_torch"), "jax": _peer_step("peer_jax"),
          "graphc-numba": _graphc_step("numba"), "graphc-python": _graphc_step("python")}


def child(peer, workload, t0):
    """In the new process: time each phase up to the first loss; print one JSON line."""
    sys.path.insert(0, str(HERE))
    marks = {"interpreter": T_ENTER - t0}
    t = time.time()
    import numpy as np  # noqa: F401
    import workloads as W
    __import__(LIBRARY[peer])
    if peer == "graphc-numba":
        import numba  # noqa: F401  (the numba peer needs it; the python tier never imports it)
    marks["imports"] = time.time() - t
    t = time.time()
    spec = W.WORKLOADS[workload]
    X, y = W.make_data(spec)
    params = W.init_params(spec)
    marks["data"] = time.time() - t
    t = time.time()
    first = MAKERS[peer](spec, X, y, params)
    marks["setup"] = time.time() - t
    t = time.time()
    loss = first()
    marks["first_step"] = time.time() - t
    marks["since_start"] = time.time() - t0
    print(json.dumps({"peer": peer, "workload": workload, "loss": loss, **marks}))


def run_child(peer, workload, cache):
    env = {**os.environ, "GRAPHC_CACHE_DIR": cache}
    name = "graphc-numba" if peer == "graphc-numba-warm" else peer
    t0 = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", name, "--workload", workload, "--t0", repr(t0)],
                          capture_output=True, text=True, env=env, cwd=HERE, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"peer": peer, "error": last}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peer": peer}


def drive(workloads, rounds, peers):
    rows = {}
    for w in workloads:
        for r in range(rounds):
            cache = tempfile.mkdtemp(prefix="graphc-first-loss-")
            for peer in peers:  # graphc-numba-warm follows graphc-numba in PEERS: it finds that cache filled
                res = run_child(peer, w, cache)
                rows.setdefault((w, peer), []).append(res)
                print(f"[{time.strftime('%H:%M:%S')}] {w} round {r + 1}: {peer} "
                      f"{res.get('since_start', float('nan')):.2f} s {res.get('error', '')}", file=sys.stderr)
    return rows


def table(rows):
    keys = ["interpreter", "imports", "data", "setup", "first_step", "since_start"]
    out = ["| workload | peer | " + " | ".join(k.replace("_", " ") for k in keys) + " | rounds |",
           "|---|---|" + "---:|" * (len(keys) + 1)]
    for (w, peer), results in rows.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            out.append(f"| {w} | {peer} | missing: {results[0]['error'][:80]} |" + " |" * len(keys))
            continue
        cells = [f"{statistics.median(r[k] for r in ok):.2f} s" for k in keys]
        cells[-1] = f"**{cells[-1]}**"
        out.append(f"| {w} | {peer} | " + " | ".join(cells) + f" | {len(ok)} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", nargs="+", default=["spiral", "mnist"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--peers", nargs="+", choices=PEERS, default=PEERS)
    p.add_argument("--child", choices=sorted(MAKERS), help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.workload, args.t0)
        return 0
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.1f} at start, medians of {args.rounds} rounds\n")
    print(table(drive(args.workloads, args.rounds, args.peers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
