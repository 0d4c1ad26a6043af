"""How graphc.grad scales: differentiate chain graphs of n nodes, n = 1000 .. 20000.

    python benchmarks/bench_autodiff.py                # print the table
    python benchmarks/bench_autodiff.py --write-docs   # also update docs/performance.md
    python benchmarks/bench_autodiff.py --sizes 1000 2000 --repeats 5

The chain is x -> tanh -> *0.5 -> +x -> square -> tanh -> ...: elementwise ops
on a float64 vector of 8, cycling through four kinds so the backward pass has
fan-out (x feeds every `+x`, each square uses its operand twice) and the
optimizer has common subexpressions to merge.  For each n, a fresh Python
process builds a fresh graph per repeat and times

  build     building and validating the forward graph (gc.Builder ... output()),
  backward  graphc.grad(graph, optimize=False): the reverse sweep,
  optimize  graphc.transform.rewrite.optimize on that result (constant folding, CSE, DCE),

and reports the median of the repeats, in CPU time of the child process
(time.process_time; the wall-clock time of grad is shown as well).  grad = backward + optimize is exactly
what graphc.grad(graph) does.  Linear scaling shows as a flat us/node column and
t(20000) / t(10000) close to 2.  Benchmarks are not part of the test suite.
"""
import argparse
import gc as pygc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench_autodiff:begin -->", "<!-- bench_autodiff:end -->"
SIZES = (1000, 2000, 5000, 10000, 20000)
# CPU time of this process: on a shared machine it is far less noisy than wall
# time, and graphc's autodiff is single-threaded.  Wall time is reported too.
CLOCK = time.process_time


def build_chain(n):
    """A validated forward graph of at least n nodes (leaves and constants included)."""
    import graphc as gc
    b = gc.Builder(f"chain{n}")
    x = b.input("x", (8,))
    v, k = x, 0
    while len(b.graph) < n - 1:  # the final sum makes n
        v = _step(gc, v, x, k)
        k += 1
    return b.output(loss=gc.sum(v))


def _step(gc, v, x, k):
    r = k % 4
    if r == 0:
        return gc.tanh(v)
    if r == 1:
        return v * 0.5  # two nodes: the constant and the mul
    if r == 2:
        return v + x
    return v * v


def measure(n, repeats):
    """Runs in the child process: median seconds of each phase over `repeats` fresh graphs."""
    import graphc as gc
    from graphc.transform import rewrite as rewrite
    times = {"build": [], "backward": [], "optimize": [], "grad": [], "grad_wall": []}
    sizes = {}
    gc.grad(build_chain(200))  # warm-up: first-call costs (imports, caches) are not per-node costs
    for _ in range(repeats):
        pygc.collect()
        t0 = CLOCK()
        graph = build_chain(n)
        t1, w1 = CLOCK(), time.perf_counter()
        raw = gc.grad(graph, optimize=False)
        t2 = CLOCK()
        opt = rewrite.optimize(raw)
        t3, w3 = CLOCK(), time.perf_counter()
        times["build"].append(t1 - t0)
        times["backward"].append(t2 - t1)
        times["optimize"].append(t3 - t2)
        times["grad"].append(t3 - t1)
        times["grad_wall"].append(w3 - w1)
        sizes = {"forward_nodes": len(graph), "grad_nodes": len(opt)}
    return {"n": n, **sizes, **{k: statistics.median(v) for k, v in times.items()}}


def run_child(n, repeats):
    out = subprocess.run([sys.executable, __file__, "--child", str(n), "--repeats", str(repeats)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine():
    import networkx
    import numpy
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return (f"{os.cpu_count()} cores (nproc), CPU: {cpu}; {platform.system()} {platform.machine()}; "
            f"Python {platform.python_version()}, NumPy {numpy.__version__}, networkx {networkx.__version__}")


def slope(rows, key):
    """Least-squares exponent p in t ~ n^p (1 = linear, 2 = quadratic)."""
    import numpy as np
    xs = np.log([r["n"] for r in rows])
    ys = np.log([r[key] for r in rows])
    return float(np.polyfit(xs, ys, 1)[0])


def table(rows, repeats):
    lines = [f"Machine: {machine()}.",
             f"Median of {repeats} runs per size, each size in a fresh process; CPU time "
             "(time.process_time) except the last column.", "",
             "| n (forward nodes) | grad-graph nodes | build ms | build us/node | backward ms | optimize ms "
             "| grad ms | grad us/node | grad wall ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        n = r["forward_nodes"]
        lines.append(f"| {n} | {r['grad_nodes']} | {r['build'] * 1e3:.0f} | {r['build'] / n * 1e6:.1f} "
                     f"| {r['backward'] * 1e3:.0f} | {r['optimize'] * 1e3:.0f} | {r['grad'] * 1e3:.0f} "
                     f"| {r['grad'] / n * 1e6:.1f} | {r['grad_wall'] * 1e3:.0f} |")
    lines.append("")
    by_n = {r["n"]: r for r in rows}
    if 10000 in by_n and 20000 in by_n:
        a, b = by_n[10000], by_n[20000]
        lines.append(f"t(20000) / t(10000): build {b['build'] / a['build']:.2f}, "
                     f"grad {b['grad'] / a['grad']:.2f} (2.00 is linear, 4.00 quadratic).")
    if len(rows) >= 2:
        lines.append(f"Fitted exponent p in t ~ n^p: build {slope(rows, 'build'):.2f}, "
                     f"grad {slope(rows, 'grad'):.2f} (1 is linear).")
    return "\n".join(lines)


def write_docs(text):
    section = f"{BEGIN}\n{text}\n{END}"
    old = DOC.read_text() if DOC.exists() else "# Performance\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(new)
    print(f"\nwrote the results into {DOC.relative_to(ROOT)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--write-docs", action="store_true", help=f"replace the results section of {DOC.relative_to(ROOT)}")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.repeats)))
        return
    rows = []
    for n in args.sizes:
        r = run_child(n, args.repeats)
        rows.append(r)
        print(f"n={n:>6}: build {r['build']:.3f}s  grad {r['grad']:.3f}s "
              f"({r['grad'] / r['forward_nodes'] * 1e6:.1f} us/node)", file=sys.stderr)
    text = table(rows, args.repeats)
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
