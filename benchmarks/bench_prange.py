"""Where does prange start to pay?  A fused elementwise loop, serial vs prange.

graphc's numba backend runs a loop under prange only when it has at least
PARALLEL_MIN_ELEMENTS elements (graphc/backends/numba_cpu/emit.py).  This measures
the crossover on this machine with the threading layer graphc selects
(workqueue), in float32: median of interleaved rounds.

    .venv/bin/python benchmarks/bench_prange.py [--write-docs]
"""
import argparse
import os
import statistics
import time

import numba
import numpy as np
from numba import njit, prange

numba.config.THREADING_LAYER = os.environ.get("NUMBA_THREADING_LAYER") or "workqueue"


@njit(error_model="numpy", nogil=True)
def serial(x, g, out):
    for i in range(x.shape[0]):
        out[i] = g[i] * (x[i] > 0) + np.float32(0.01) * x[i]


@njit(error_model="numpy", nogil=True, parallel=True)
def parallel(x, g, out):
    for i in prange(x.shape[0]):
        out[i] = g[i] * (x[i] > 0) + np.float32(0.01) * x[i]


def time_it(fn, args, reps):
    t = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    return (time.perf_counter() - t) / reps


def measure(size, rounds=7):
    rng = np.random.default_rng(0)
    args = (rng.standard_normal(size).astype(np.float32), rng.standard_normal(size).astype(np.float32),
            np.empty(size, np.float32))
    reps = max(3, int(2e6 // size))
    serial(*args), parallel(*args)
    s, p = [], []
    for _ in range(rounds):  # interleaved, so drift hits both alike
        s.append(time_it(serial, args, reps))
        p.append(time_it(parallel, args, reps))
    return statistics.median(s), statistics.median(p)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-docs", action="store_true", help="print the Markdown table for docs/performance.md")
    parser.parse_args()
    rows = []
    for power in range(10, 23, 2):
        size = 1 << power
        s, p = measure(size)
        rows.append((size, s, p))
        print(f"{size:>9,} elements  serial {s * 1e6:9.1f} us  prange {p * 1e6:9.1f} us  speed-up {s / p:4.2f}x",
              flush=True)
    print(f"\nthreads: {numba.get_num_threads()}, layer: {numba.threading_layer()}")
    print("\n| elements | serial | prange | speed-up |\n|---:|---:|---:|---:|")
    for size, s, p in rows:
        print(f"| {size:,} | {s * 1e6:.1f} µs | {p * 1e6:.1f} µs | {s / p:.2f}× |")


if __name__ == "__main__":
    main()
