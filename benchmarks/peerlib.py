"""What every peer script shares: arguments, the correctness check, the timing
loop, and the line protocol the harness (run.py) speaks to it.

A peer module defines `make(spec, X, y, params)` returning an object with

    step()            one training step (forward + backward + SGD update);
                      returns something `loss_value` turns into a float.
                      The step must be finished when it returns (JAX blocks).
    loss_value(h)     the loss of that step as a Python float
    params()          current parameters by name, as NumPy arrays
    version, info     library version string and a dict of settings (threads ...)
    probes            optional {name: callable}: other ways to run the same step,
                      timed after the step in every round (graphc: its kernel alone)

and calls `peerlib.main(make, name)`.  Run alone, a peer sets up, checks,
times `--rounds` rounds and prints one JSON object.  With `--serve` (what the
harness uses) it prints a JSON "ready" line after setup and the check, then
answers each line {"steps": k} on stdin with the times of one round of k steps,
so that the harness can interleave rounds of several peers, each in its own
process.  Only protocol lines go to stdout; everything else goes to stderr.
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np

import workloads as W

CHECK_STEPS = 3


def parse(argv, name):
    p = argparse.ArgumentParser(prog=f"peer_{name}.py", description=f"{name}: time one training step of a workload")
    p.add_argument("--workload", choices=sorted(W.WORKLOADS), help="a named workload of the issue")
    p.add_argument("--layers", help="widths D,H,...,K for a custom MLP (with --batch)")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--rounds", type=int, help="timing rounds when run alone (default: the workload's)")
    p.add_argument("--steps", type=int, help="steps per round (default: enough for --round-s)")
    p.add_argument("--round-s", type=float, default=0.25, help="target seconds per round")
    p.add_argument("--serve", action="store_true", help="speak the harness's line protocol on stdin/stdout")
    args = p.parse_args(argv)
    spec = W.spec_from_args(args.workload, args.layers, args.batch, args.lr)
    if args.lr is not None and args.workload:
        spec = W.Spec.from_dict({**spec.as_dict(), "lr": args.lr})
    return args, spec


def steps_for(est_s, target_s, lo=1, hi=5000):
    return int(min(hi, max(lo, round(target_s / max(est_s, 1e-7)))))


def timed(step, k):
    """Seconds of each of k calls of step()."""
    pc = time.perf_counter
    out = [0.0] * k
    for i in range(k):
        t = pc()
        step()
        out[i] = pc() - t
    return out


def summary(times):
    return {"median_s": statistics.median(times), "mean_s": sum(times) / len(times),
            "min_s": min(times), "steps": len(times)}


def calibrate(peer, budget_s=0.15, most=2000):
    """Median step time over about budget_s of warm-up steps (at least two)."""
    times, end = [], time.perf_counter() + budget_s
    while len(times) < 2 or (time.perf_counter() < end and len(times) < most):
        times += timed(peer.step, 1)
    return statistics.median(times)


def one_round(peer, k):
    r = summary(timed(peer.step, k))
    probes = getattr(peer, "probes", None) or {}
    if probes:
        r["probes"] = {name: summary(timed(fn, k))["median_s"] for name, fn in probes.items()}
    return r


def check(peer, init):
    """CHECK_STEPS steps from the initial parameters: the losses, the time of each
    step, and how far each parameter moved (the L2 norm of its update)."""
    losses, times = [], []
    for _ in range(CHECK_STEPS):
        t = time.perf_counter()
        h = peer.step()
        times.append(time.perf_counter() - t)
        losses.append(peer.loss_value(h))
    now = peer.params()
    moved = {k: float(np.linalg.norm(np.asarray(now[k], dtype=np.float64) - init[k].astype(np.float64)))
             for k in init}
    return {"losses": losses, "update_norms": moved}, times


def main(make, name, argv=None):
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # protocol lines only
    sys.stdout = sys.stderr                              # stray prints must not corrupt them
    args, spec = parse(argv, name)

    def emit(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    X, y = W.make_data(spec)
    init = W.init_params(spec)
    t0 = time.perf_counter()
    try:
        peer = make(spec, X, y, {k: v.copy() for k, v in init.items()})
    except ImportError as e:
        emit({"peer": name, "workload": spec.name, "error": f"not installed: {e}"})
        return 0
    setup_s = time.perf_counter() - t0
    chk, check_times = check(peer, init)
    est = calibrate(peer)
    ready = {"peer": name, "workload": spec.name, "spec": spec.as_dict(), "version": peer.version,
             "info": peer.info, "setup_s": setup_s, "first_step_s": check_times[0],
             "est_step_s": est, "check": chk}
    if args.serve:
        emit({"ready": True, **ready})
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd.get("quit"):
                break
            emit(one_round(peer, int(cmd["steps"])))
        return 0
    k = args.steps or steps_for(est, args.round_s)
    one_round(peer, k)  # warm-up round
    rounds = [one_round(peer, k) for _ in range(args.rounds or spec.rounds)]
    medians = [r["median_s"] for r in rounds]
    result = {**ready, "steps_per_round": k, "rounds": rounds, "median_s": statistics.median(medians)}
    if rounds[0].get("probes"):
        result["probes"] = {p: statistics.median(r["probes"][p] for r in rounds) for p in rounds[0]["probes"]}
    emit(result)
    return 0


# ----- settings worth reporting -------------------------------------------------------
def openblas_libs():
    """{library file: threads} for every OpenBLAS loaded in this process (NumPy and
    SciPy each bundle their own; numba's np.dot calls SciPy's)."""
    out = {}
    try:
        maps = open("/proc/self/maps").read().split("\n")
    except OSError:
        return out
    paths = sorted({parts[-1] for parts in (line.split() for line in maps)
                    if len(parts) >= 6 and "openblas" in parts[-1].lower() and ".so" in parts[-1]})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        threads = None
        for sym in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                    "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                threads = int(fn())
                break
        cfg = None
        for sym in ("scipy_openblas_get_config64_", "scipy_openblas_get_config",
                    "openblas_get_config64_", "openblas_get_config"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                cfg = fn().decode()
                break
        out[os.path.basename(path)] = {"threads": threads, "config": cfg}
    return out
