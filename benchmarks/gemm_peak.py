"""float32 GEMM peak of this machine, and the GEMMs of a workload's step timed alone.

    .venv/bin/python benchmarks/gemm_peak.py                 # peak, and the wide step's GEMMs
    .venv/bin/python benchmarks/gemm_peak.py --size 4096 --workload mnist

Peak: the best of --repeats timed `A @ B` (NumPy, float32, square, --size) after
warm-up, as GFLOP/s = 2 n^3 / t; also np.dot inside @njit (what graphc's matmul
runs: SciPy's OpenBLAS, a separate copy from NumPy's) and, if installed, torch.mm
(MKL in PyTorch's CPU wheel).  Workload GEMMs: each matmul of
one training step (forward X @ W, backward X.T @ G and G @ W.T) timed alone
with NumPy, best of --repeats; their sum is what a step costs if it does
nothing but its GEMMs at the rates BLAS reaches on those shapes.  Prints JSON.
"""
import argparse
import json
import sys
import time

import numpy as np

import peerlib
import workloads as W


def best_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak(size, repeats):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size), dtype=np.float32)
    B = rng.standard_normal((size, size), dtype=np.float32)
    C = np.empty_like(A)
    flops = 2.0 * size ** 3
    t_np = best_time(lambda: np.matmul(A, B, out=C), repeats)
    out = {"size": size, "numpy_s": t_np, "numpy_gflops": flops / t_np / 1e9}
    try:  # what graphc's matmul calls: np.dot inside @njit goes to SciPy's OpenBLAS
        from numba import njit

        @njit
        def dot(a, b, c):
            np.dot(a, b, c)
        t_nb = best_time(lambda: dot(A, B, C), repeats)
        out.update(numba_s=t_nb, numba_gflops=flops / t_nb / 1e9)
    except ImportError:
        pass
    try:  # PyTorch's CPU wheel calls MKL; last, so its OpenMP threads do not disturb the others
        import torch
        tA, tB, tC = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C)
        t_th = best_time(lambda: torch.mm(tA, tB, out=tC), repeats)
        out.update(torch_s=t_th, torch_gflops=flops / t_th / 1e9)
    except ImportError:
        pass
    return out


def gemm_fns(spec):
    """(m, k, n, how, fn) for each matmul of one step of spec, on random operands."""
    rng = np.random.default_rng(0)
    out = []
    for m, k, n, how in W.step_gemms(spec):
        if how == "X @ W":
            a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
            fn = lambda a=a, b=b: a @ b  # noqa: E731
        elif how == "X.T @ G":  # (m, k) = (D, N): the stored activation is (N, D)
            a, b = rng.standard_normal((k, m), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
            fn = lambda a=a, b=b: a.T @ b  # noqa: E731
        else:  # G @ W.T: G (N, out), W (in, out)
            a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((n, k), dtype=np.float32)
            fn = lambda a=a, b=b: a @ b.T  # noqa: E731
        out.append((m, k, n, how, fn))
    return out


def workload_gemms(spec, repeats):
    rows, total = [], 0.0
    for m, k, n, how, fn in gemm_fns(spec):
        t = best_time(fn, repeats)
        total += t
        rows.append({"m": m, "k": k, "n": n, "how": how, "s": t, "gflops": 2.0 * m * k * n / t / 1e9})
    return {"workload": spec.name, "gemms": rows, "total_s": total, "flops": W.step_flops(spec)}


def serve(size, workload=None):
    """The peers' protocol (peerlib.py), so the harness can interleave rounds of
    the GEMM peak (or of a workload's GEMMs alone, one "step" = all of them)
    with rounds of a workload: same conditions for both."""
    if workload:
        spec = W.WORKLOADS[workload]
        fns = [f[-1] for f in gemm_fns(spec)]

        def step():
            for fn in fns:
                fn()
        flops, info = W.step_flops(spec), {"workload": workload}
    else:
        rng = np.random.default_rng(0)
        A = rng.standard_normal((size, size), dtype=np.float32)
        B = rng.standard_normal((size, size), dtype=np.float32)
        C = np.empty_like(A)
        step = lambda: np.matmul(A, B, out=C)  # noqa: E731
        flops, info = 2.0 * size ** 3, {"size": size}
    times = peerlib.timed(step, 3)
    print(json.dumps({"ready": True, "peer": "gemm", "version": np.__version__, "flops": flops,
                      "info": info, "setup_s": 0.0, "first_step_s": times[0],
                      "est_step_s": min(times[1:]), "check": None}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        print(json.dumps(peerlib.summary(peerlib.timed(step, int(cmd["steps"])))), flush=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--workload", default="wide", choices=sorted(W.WORKLOADS))
    p.add_argument("--serve", action="store_true",
                   help="speak the harness's line protocol: each round times k square GEMMs of --size")
    p.add_argument("--gemms-of", choices=sorted(W.WORKLOADS),
                   help="with --serve: a step is the GEMMs of this workload's step instead of one square GEMM")
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.size, args.gemms_of)
    out = {"peak": peak(args.size, args.repeats),
           "workload_gemms": workload_gemms(W.WORKLOADS[args.workload], max(3, args.repeats // 2)),
           "openblas": peerlib.openblas_libs()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
