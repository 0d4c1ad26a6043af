"""Benchmarks of graphc's one-call training step (numba CPU backend) against NumPy
by hand, PyTorch eager and JAX jit, plus graphc's compile and start-up costs.

    .venv/bin/python benchmarks/run.py                  # everything (about 10-12 min on 2 cores)
    .venv/bin/python benchmarks/run.py --write-docs     # ... and rewrite the results in docs/performance.md
    .venv/bin/python benchmarks/run.py --quick          # fewer rounds, sizes and depths (a few minutes)
    .venv/bin/python benchmarks/run.py --only workloads startup --peers graphc numpy jax
    .venv/bin/python benchmarks/run.py --from-json RESULTS.json --write-docs   # re-render saved results
    .venv/bin/python benchmarks/run.py --wait-quiet 600   # first wait (up to 600 s) for a quiet machine

PyTorch and JAX come from the `bench` extra: `pip install -e '.[bench]'` (use the
CPU wheel of torch); a peer that is not installed is reported as missing.

Sections (--only): gemm (float32 GEMM peak), workloads (spiral, mnist-like, wide:
all peers), startup (graphc cold compile and warm start, new processes), batch
(graphc and NumPy vs batch size), depth (compile time and step time vs depth).

Method: every peer runs in its own process (benchmarks/peer_*.py --serve), set
up one after the other, so no compile overlaps a measurement; the harness
first checks that every peer's losses and parameter updates after a few steps
match a float64 NumPy reference, then interleaves timing rounds (peer A, B, C,
D, A, B, ...).  A round is k steps, k chosen per peer so a round takes about
--round-s; its figure is the median step time; a peer's result is the median
over rounds.  Benchmarks are not part of the test suite.
"""
import argparse
import json
import os
import platform
import select
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:step:start -->", "<!-- bench:step:end -->"
sys.path.insert(0, str(HERE))

import peerlib  # noqa: E402
import workloads as W  # noqa: E402

PEERS = ("graphc", "numpy", "torch", "jax")
LABEL = {"graphc": "graphc (numba)", "numpy": "NumPy by hand", "torch": "PyTorch eager", "jax": "JAX jit",
         "gemm": "GEMM peak", "gemms": "the step's GEMMs alone"}
SECTIONS = ("gemm", "workloads", "startup", "batch", "depth")
LOSS_RTOL = 1e-4     # losses of the check steps vs the float64 reference
UPDATE_RTOL = 1e-2   # norm of each parameter's update after the check steps (float32 rounding of p_new - p_old)
PAUSE_S = 0.2        # between two peers' rounds: OpenBLAS's idle threads spin ~0.1 s after a call before sleeping

TARGETS = {  # the targets
    "spiral_speedup": 3.0,        # graphc at least 3x faster than the fastest peer
    "mnist_speedup": 1.0,         # no slower than the fastest peer
    "wide_gemm_fraction": 0.9,    # at least 0.9 of the GEMM-peak-bound time
    "cold_compile_s": 3.0,
    "warm_start_s": 0.5,
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----- peer processes --------------------------------------------------------------------
class PeerProc:
    """One peer in its own process, speaking peerlib's line protocol."""

    def __init__(self, name, argv, env, logdir, timeout):
        self.name, self.timeout = name, timeout
        self.stderr_path = Path(logdir) / f"{name}-{int(time.time() * 1e6)}.log"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, *argv, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env, cwd=ROOT, bufsize=0)
        self._buf = b""

    def read(self, timeout=None):
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no answer in {timeout or self.timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited (rc={self.proc.wait()}); its stderr:\n{self.tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def round(self, steps):
        self.send({"steps": steps})
        return self.read()

    def tail(self, n=15):
        self.stderr.flush()
        lines = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send({"quit": True})
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def peer_argv(name, spec):
    if name == "gemm":
        return [str(HERE / "gemm_peak.py"), "--size", str(spec)]
    if name == "gemms":
        return [str(HERE / "gemm_peak.py"), "--gemms-of", spec.name]
    args = [str(HERE / f"peer_{name}.py")]
    if spec.name in W.WORKLOADS and W.WORKLOADS[spec.name] == spec:
        return args + ["--workload", spec.name]
    return args + ["--layers", ",".join(map(str, spec.layers)), "--batch", str(spec.batch), "--lr", repr(spec.lr)]


# ----- correctness ---------------------------------------------------------------------
_reference_cache = {}


def reference(spec):
    """Losses and update norms of the check steps in float64 NumPy (peer_numpy's code)."""
    import numpy as np
    from peer_numpy import NumpyStep
    key = json.dumps(spec.as_dict(), sort_keys=True)
    if key not in _reference_cache:
        X, y = W.make_data(spec)
        init = W.init_params(spec)
        ref = NumpyStep(spec, X, y, init, dtype=np.float64)
        _reference_cache[key] = peerlib.check(ref, init)[0]
    return _reference_cache[key]


def verdict(check, ref):
    """Largest relative differences from the reference, and whether they are within tolerance."""
    loss_err = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(check["losses"], ref["losses"]))
    upd_err = max(abs(check["update_norms"][k] - v) / max(abs(v), 1e-12) for k, v in ref["update_norms"].items())
    return {"loss_rel_err": loss_err, "update_rel_err": upd_err,
            "ok": loss_err <= LOSS_RTOL and upd_err <= UPDATE_RTOL}


# ----- one comparison: several peers, one workload, interleaved rounds -----------------------------
def compare(spec, peers, rounds, round_s, env, logdir, min_steps=1, gemm_size=None, gemms=False, setup_timeout=900):
    """Set up `peers` (and the pseudo-peers: "gemm", a square GEMM of gemm_size, and
    "gemms", the step's GEMMs alone), check them, then time interleaved rounds."""
    out = {"spec": spec.as_dict(), "peers": {}, "rounds": rounds, "load": [os.getloadavg()[0]]}
    procs = {}
    names = list(peers) + (["gemm"] if gemm_size else []) + (["gemms"] if gemms else [])
    for name in names:
        log(f"  {spec.name}: starting {name}")
        pp = PeerProc(name, peer_argv(name, gemm_size if name == "gemm" else spec), env, logdir, setup_timeout)
        try:
            ready = pp.read()
        except (RuntimeError, TimeoutError) as e:
            pp.close()
            out["peers"][name] = {"error": str(e).splitlines()[0], "stderr": pp.tail()}
            log(f"  {name} failed: {e}")
            continue
        if "error" in ready:
            pp.close()
            out["peers"][name] = {"error": ready["error"]}
            log(f"  {name}: {ready['error']}")
            continue
        procs[name] = pp
        out["peers"][name] = ready
    try:
        ref = reference(spec)
        out["reference"] = ref
        for name in procs:
            chk = out["peers"][name].get("check")
            if chk is not None:
                out["peers"][name]["verdict"] = v = verdict(chk, ref)
                if not v["ok"]:
                    log(f"  WRONG: {name} disagrees with the float64 reference on {spec.name}: {v}")
        k = {n: peerlib.steps_for(out["peers"][n]["est_step_s"], round_s, lo=min_steps) for n in procs}
        per_round = {n: [] for n in procs}
        for r in range(-1, rounds):  # round -1 warms up and is not counted
            for name, pp in list(procs.items()):
                try:
                    rr = pp.round(k[name])
                except (RuntimeError, TimeoutError) as e:
                    log(f"  {name} failed in round {r}: {e}")
                    out["peers"][name]["error"] = str(e).splitlines()[0]
                    out["peers"][name]["stderr"] = pp.tail()
                    pp.close()
                    del procs[name], per_round[name]
                    continue
                if r >= 0:
                    per_round[name].append(rr)
                time.sleep(PAUSE_S)
        for name, rr in per_round.items():
            med = [x["median_s"] for x in rr]
            res = out["peers"][name]
            res.update(steps_per_round=k[name], round_medians=med, median_s=statistics.median(med),
                       min_s=min(x["min_s"] for x in rr))
            if rr and "probes" in rr[0]:
                res["probes"] = {p: statistics.median(x["probes"][p] for x in rr) for p in rr[0]["probes"]}
        out["load"].append(os.getloadavg()[0])
        summary = ", ".join(f"{n} {fmt_t(out['peers'][n]['median_s'])}" for n in procs)
        log(f"  {spec.name}: {summary}")
    finally:
        for pp in procs.values():
            pp.close()
    return out


# ----- sections ----------------------------------------------------------------------------
def run_json(argv, env, timeout):
    t0 = time.time()
    p = subprocess.run([sys.executable, *argv, "--t0", repr(t0)] if "graphc_startup" in argv[0] else
                       [sys.executable, *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (rc={p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def section_gemm(cfg, env):
    log("GEMM peak (float32, NumPy)")
    return run_json([str(HERE / "gemm_peak.py"), "--size", str(cfg.gemm_size), "--repeats", str(cfg.gemm_repeats)],
                    env, 600)


def section_workloads(cfg, env, logdir):
    out = {}
    for name in cfg.workloads:
        spec = W.WORKLOADS[name]
        rounds = cfg.rounds_wide if name == "wide" else cfg.rounds
        log(f"workload {name}: {rounds} rounds")
        out[name] = compare(spec, cfg.peers, rounds, cfg.round_s_wide if name == "wide" else cfg.round_s,
                            env, logdir, min_steps=2 if name == "wide" else 1,
                            gemm_size=cfg.gemm_size if name == "wide" else None, gemms=name in ("mnist", "wide"))
    return out


def startup(spec, cache, env, timeout=900):
    env = dict(env, GRAPHC_CACHE_DIR=str(cache))
    argv = [str(HERE / "graphc_startup.py")] + peer_argv("x", spec)[1:]
    try:
        return run_json(argv, env, timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}


def section_startup(cfg, env, tmp):
    spec = W.WORKLOADS["spiral"]
    reps = []
    for r in range(cfg.startup_reps):
        cache = Path(tempfile.mkdtemp(prefix="startup-", dir=tmp))
        log(f"startup {r + 1}/{cfg.startup_reps}: cold, then warm (cache {cache.name})")
        cold = startup(spec, cache, env)
        warm = startup(spec, cache, env)
        reps.append({"cold": cold, "warm": warm})
    keys = ("import_s", "build_s", "compile_step_s", "first_call_s", "compile_first_s", "since_start_s", "in_process_s")
    med = {kind: {k: statistics.median(r[kind][k] for r in reps) for k in keys if k in reps[0][kind]}
           for kind in ("cold", "warm")}
    for kind in med:
        med[kind]["cache_hits"] = [r[kind].get("cache_hits") for r in reps]
    log(f"  cold compile+first {med['cold']['compile_first_s']:.2f} s, "
        f"warm {med['warm']['compile_first_s']:.2f} s (from process start {med['warm']['since_start_s']:.2f} s)")
    return {"workload": spec.name, "reps": reps, "median": med}


def section_batch(cfg, env, logdir, tmp):
    out = {}
    env = dict(env, GRAPHC_CACHE_DIR=str(Path(tempfile.mkdtemp(prefix="batch-", dir=tmp))))
    peers = [p for p in ("graphc", "numpy") if p in cfg.peers]
    for arch, (layers, lr) in {"mnist": ((784, 512, 256, 10), 0.1), "spiral": ((2, 100, 3), 0.1)}.items():
        rows = []
        for n in cfg.batches:
            spec = W.spec_from_args(None, ",".join(map(str, layers)), n, lr)
            log(f"batch sweep {arch}: N={n}")
            rows.append(compare(spec, peers, cfg.sweep_rounds, cfg.round_s, env, logdir))
        out[arch] = {"layers": list(layers), "rows": rows}
    return out


def section_depth(cfg, env, logdir, tmp):
    rows = []
    peers = [p for p in ("graphc", "numpy") if p in cfg.peers]
    for depth in cfg.depths:
        spec = W.mlp_spec(depth)
        cache = Path(tempfile.mkdtemp(prefix=f"depth{depth}-", dir=tmp))
        log(f"depth {depth}: cold compile (fresh cache)")
        cold = startup(spec, cache, env, timeout=cfg.compile_timeout)
        row = {"depth": depth, "spec": spec.as_dict(), "cold": cold}
        if "error" not in cold:
            log(f"  cold compile+first {cold['compile_first_s']:.1f} s; warm start")
            row["warm"] = startup(spec, cache, env)
            row["compare"] = compare(spec, peers, cfg.sweep_rounds, cfg.round_s,
                                     dict(env, GRAPHC_CACHE_DIR=str(cache)), logdir)
        else:
            log(f"  {cold['error']}")
        rows.append(row)
    return {"width": 128, "batch": 256, "d_in": 32, "classes": 10, "rows": rows}


# ----- the machine -------------------------------------------------------------------------
def machine(env):
    import importlib.metadata as md
    info = {"cpu": "unknown", "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["flags"] = sorted({f for f in Path("/proc/cpuinfo").read_text().split()
                                if f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")})
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()
        info["memory_gib"] = round(int(mem[1]) / 2 ** 20, 1)
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "scipy", "numba", "llvmlite", "torch", "jax", "jaxlib", "graphc"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info["versions"] = versions
    info["graphc_source"] = graphc_source()
    info["env"] = {k: v for k, v in env.items() if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "XLA_", "GOTO"))
                   and k != "GRAPHC_CACHE_DIR"}
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def graphc_source():
    """The commit, whether graphc/ has uncommitted changes, and a hash of graphc/*.py as run."""
    import hashlib
    h = hashlib.sha256()
    for f in sorted((ROOT / "graphc").rglob("*.py")):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    out = {"sha256": h.hexdigest()[:12]}
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=10).stdout.strip()
        out["dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--", "graphc"], cwd=ROOT,
                                           capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


# ----- formatting --------------------------------------------------------------------------
def fmt_t(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs" if s >= 1e-5 else f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.2f} s"


def fmt_x(r):
    return "—" if r is None else f"{r:.2f}×"


def peer_time(cmp, name):
    p = cmp["peers"].get(name) or {}
    return p.get("median_s")


def fastest_peer(cmp):
    best = None
    for name, p in cmp["peers"].items():
        if name in ("graphc", "gemm", "gemms") or "median_s" not in p or not p.get("verdict", {}).get("ok", True):
            continue
        if best is None or p["median_s"] < best[1]:
            best = (name, p["median_s"])
    return best


def derived(res):
    """The figures the targets are about."""
    d = {}
    wl = res.get("workloads", {})
    for name in ("spiral", "mnist"):
        cmp = wl.get(name)
        if cmp and peer_time(cmp, "graphc") and fastest_peer(cmp):
            fp = fastest_peer(cmp)
            d[f"{name}_speedup"] = fp[1] / peer_time(cmp, "graphc")
            d[f"{name}_fastest"] = fp
    wide = wl.get("wide")
    if wide and peer_time(wide, "graphc"):
        flops = W.step_flops(W.Spec.from_dict(wide["spec"]))
        g = wide["peers"].get("gemm", {})
        peaks = {}
        if "median_s" in g:
            peaks["interleaved"] = g["flops"] / g["median_s"]
            peaks["interleaved_best"] = g["flops"] / g["min_s"]
        if "gemm" in res:
            peaks["standalone"] = res["gemm"]["peak"]["numpy_gflops"] * 1e9
        if peaks:
            peak = peaks.get("interleaved", peaks.get("standalone"))
            bound = flops / peak
            d.update(wide_flops=flops, wide_peak=peak, wide_peaks=peaks, wide_bound_s=bound,
                     wide_gemm_fraction=bound / peer_time(wide, "graphc"))
    st = res.get("startup")
    if st:
        d["cold_compile_s"] = st["median"]["cold"]["compile_first_s"]
        d["warm_start_s"] = st["median"]["warm"]["compile_first_s"]
        d["warm_since_start_s"] = st["median"]["warm"].get("since_start_s")
    return d


def render(res):
    m, d = res["machine"], derived(res)
    v = m["versions"]
    peers_in = [p for p in PEERS if any(p in c["peers"] for c in res.get("workloads", {}).values())] or list(PEERS)
    L = []
    add = L.append
    add("## The training step: graphc against NumPy, PyTorch and JAX")
    add("")
    add("Issue 3's benchmarks.  One step is forward + backward + SGD update of a ReLU MLP")
    add("with mean softmax cross-entropy, in float32, on the same batch every step.  Run them with")
    add("")
    add("```sh")
    add(".venv/bin/pip install -e '.[bench]'                 # PyTorch and JAX; optional (install torch's CPU wheel first,")
    add("                                                     # or pip pulls the CUDA build, gigabytes)")
    add(".venv/bin/python benchmarks/run.py                 # everything, about 10-12 minutes on 2 cores")
    add(".venv/bin/python benchmarks/run.py --write-docs    # ... and rewrite this section")
    add(".venv/bin/python benchmarks/run.py --quick         # fewer rounds, sizes and depths")
    add(".venv/bin/python benchmarks/run.py --wait-quiet 600 --write-docs   # first wait for the load average to drop")
    add(".venv/bin/python benchmarks/peer_graphc.py --workload spiral   # one peer alone, prints JSON")
    add("```")
    add("")
    add("**Workloads** (`benchmarks/workloads.py`): *spiral* 300×2→100→3 on the lecture's spiral data")
    add("(seed 004: 3 classes × 100 points, 0.01·randn init, step size 1); *mnist-like* 256×784→512→256→10")
    add("and *wide* 1024×1024→2048→2048→10 on seeded random data with He init and step size 0.1.")
    add("Every peer starts from the same float32 parameters and data.")
    add("")
    add("**Peers**: `peer_graphc.py` (`graphc.train.compile_step(..., SGD, backend=\"numba\")`, one call per")
    add("step); `peer_numpy.py` (the lecture's NumPy forward/backward by hand, allocating per step, in-place")
    add("update); `peer_torch.py` (eager autograd, in-place update under `no_grad`); `peer_jax.py`")
    add("(`jax.jit` of `value_and_grad` + update, parameters donated; each step blocks on its loss).")
    add("")
    add("**Correctness first**: before any timing, every peer runs 3 steps and the harness compares its")
    add(f"losses (relative tolerance {LOSS_RTOL:g}) and the norm of each parameter's update")
    add(f"({UPDATE_RTOL:g}) with a float64 NumPy reference; a peer that disagrees is marked wrong and left out")
    add("of the ratios, and `run.py` exits non-zero.")
    add("")
    add("**Method**: each peer runs in its own process (`peer_*.py --serve`); processes are set up one")
    add("after another, so no compile overlaps a measurement, then timing rounds are interleaved")
    add("(graphc, NumPy, PyTorch, JAX, graphc, ...).  A round is k steps with k chosen per peer so a round")
    add(f"takes about 0.25 s (wide: 1 s, at least 2 steps); {res['config']['rounds']} rounds (wide: "
        f"{res['config']['rounds_wide']}); a round's figure is its median step time and a")
    add("peer's result is the median over rounds (after one warm-up round); 0.2 s pass between two peers' rounds so that the idle threads of the last one (OpenBLAS spins ~0.1 s after a call) are asleep.  Times are wall clock.")
    add("Ratios are peer time / graphc time, so above 1 means graphc is faster.  The machine is a shared")
    add("2-core VM: other work on it moves absolute times by tens of percent (the GEMM peak below is")
    add("measured interleaved with the wide rounds for that reason); ratios from interleaved rounds are")
    add("steadier than absolute times.")
    add("")
    add("### Machine")
    add("")
    add(f"- CPU: {m['cpu']} ({m['cores']} cores{', ' + ', '.join(m.get('flags', [])) if m.get('flags') else ''}),"
        f" {m.get('memory_gib', '?')} GiB; {m['system']}")
    src = m.get("graphc_source") or {}
    if src:
        add(f"- graphc: commit {src.get('commit', '?')}{' with uncommitted changes in graphc/' if src.get('dirty') else ''}"
            f" (sources sha256 {src['sha256']})")
    add(f"- Python {m['python']}; " + ", ".join(f"{k} {v[k]}" for k in ("numpy", "scipy", "numba", "llvmlite",
                                                                        "torch", "jax", "jaxlib") if v.get(k)))
    blas = (res.get("gemm") or {}).get("openblas") or {}
    if blas:
        add("- BLAS: " + "; ".join(f"`{lib}`: {b['config']}, {b['threads']} threads" for lib, b in blas.items())
            + ".  NumPy and SciPy each bundle an OpenBLAS; numba's `np.dot` (so graphc's matmul) calls SciPy's.")
    gi = _peer_info(res, "graphc")
    ti = _peer_info(res, "torch")
    threading = []
    if gi:
        threading.append(f"graphc sets numba's threading layer to `{gi.get('threading_layer_config')}` "
                         f"(no environment variable set), NUMBA_NUM_THREADS={gi.get('numba_num_threads')}; "
                         "loops under `prange` only above graphc's size threshold")
    if ti:
        threading.append(f"PyTorch {ti.get('intra_op_threads')} intra-op / {ti.get('inter_op_threads')} inter-op threads")
    threading.append("JAX/XLA CPU defaults")
    add("- Threads: " + "; ".join(threading) + ".  No thread-related environment variables were set"
        + (f" (set: {m['env']})" if m.get("env") else "") + ".")
    if m.get("loadavg_start") is not None:
        ls = load_samples(res)
        add(f"- Load average (1 min) at start {m['loadavg_start'][0]:.2f}, at end {m.get('loadavg_end', [0])[0]:.2f}"
            + (f", {min(ls):.2f} to {max(ls):.2f} over the comparisons (this run's own peer is about 1 of it)" if ls else "")
            + f"; the run took {res.get('elapsed_s', 0) / 60:.1f} min{' (--quick)' if res.get('quick') else ''}, "
            f"{res.get('date', '')}.")
    add("")

    wl = res.get("workloads", {})
    if wl:
        add("### Step time (median of interleaved rounds)")
        add("")
        hdr = ("| workload | " + " | ".join(LABEL[p] for p in peers_in)
               + " | fastest peer | graphc vs fastest | its GEMMs alone (NumPy) |")
        add(hdr)
        add("|---|" + "---:|" * (len(peers_in) + 3))
        for name, cmp in wl.items():
            cells = []
            for p in peers_in:
                cells.append(_cell(cmp, p))
            fp = fastest_peer(cmp)
            g = peer_time(cmp, "graphc")
            sp = fp[1] / g if fp and g else None
            cells += [f"{LABEL[fp[0]]}" if fp else "—", fmt_x(sp), fmt_t(peer_time(cmp, "gemms"))]
            add(f"| {_wl_label(name, cmp)} | " + " | ".join(cells) + " |")
        add("")
        add("Ratios (peer time / graphc time; above 1: graphc is faster):")
        add("")
        others = [p for p in peers_in if p != "graphc"]
        add("| workload | " + " | ".join(LABEL[p] for p in others) + " | graphc kernel alone | graphc Python overhead |")
        add("|---|" + "---:|" * (len(others) + 2))
        for name, cmp in wl.items():
            g = peer_time(cmp, "graphc")
            cells = [fmt_x(peer_time(cmp, p) / g) if g and peer_time(cmp, p) else "—" for p in others]
            kern = ((cmp["peers"].get("graphc") or {}).get("probes") or {}).get("kernel")
            cells += [fmt_t(kern), f"{fmt_t(g - kern)} ({(g - kern) / g:.0%})" if kern and g else "—"]
            add(f"| {name} | " + " | ".join(cells) + " |")
        add("")
        add("*its GEMMs alone*: the step's matmuls (forward X·W, backward dW and dX), nothing else, in NumPy, timed")
        add("in the same interleaved rounds by `gemm_peak.py --serve --gemms-of WORKLOAD`: the floor for a step that")
        add("calls the same BLAS.")
        add("")
        add("*graphc kernel alone*: the emitted `run` function called directly with pre-bound arguments")
        add("(`peer_graphc.py`'s probe, timed in the same rounds); the difference is what `Step.__call__` costs")
        add("in Python per step (feeds, validation, hyperparameters, output copy).  It matters for spiral; for the")
        add("larger workloads the difference is within the noise between two sets of steps.")
        add("")
        add("Correctness check (largest relative difference from the float64 reference over 3 steps: loss / update norm):")
        add("")
        add("| workload | " + " | ".join(LABEL[p] for p in peers_in) + " |")
        add("|---|" + "---|" * len(peers_in))
        for name, cmp in wl.items():
            cells = []
            for p in peers_in:
                vv = (cmp["peers"].get(p) or {}).get("verdict")
                cells.append("—" if not vv else f"{'ok' if vv['ok'] else '**WRONG**'} "
                             f"{vv['loss_rel_err']:.1e} / {vv['update_rel_err']:.1e}")
            add(f"| {name} | " + " | ".join(cells) + " |")
        add("")
        add("Time to the first step in a new process (setup + first step; graphc: `compile_step` + first call")
        add("with an empty cache, so a cold compile; JAX: tracing + XLA compile):")
        add("")
        add("| workload | " + " | ".join(LABEL[p] for p in peers_in) + " |")
        add("|---|" + "---:|" * len(peers_in))
        for name, cmp in wl.items():
            cells = []
            for p in peers_in:
                pp = cmp["peers"].get(p) or {}
                cells.append(fmt_t(pp["setup_s"] + pp["first_step_s"]) if "setup_s" in pp else "—")
            add(f"| {name} | " + " | ".join(cells) + " |")
        add("")

    if "wide_bound_s" in d or res.get("gemm"):
        add("### GEMM peak and the wide workload")
        add("")
        g = res.get("gemm")
        if g:
            pk = g["peak"]
            add(f"float32 GEMM peak, {pk['size']}×{pk['size']} square, best of {res['config']['gemm_repeats']} "
                f"(`benchmarks/gemm_peak.py`, its own process, start of the run): NumPy {pk['numpy_gflops']:.0f} GFLOP/s"
                + (f"; np.dot inside @njit (SciPy's OpenBLAS, what graphc calls) {pk['numba_gflops']:.0f} GFLOP/s"
                   if "numba_gflops" in pk else "")
                + (f"; torch.mm (MKL) {pk['torch_gflops']:.0f} GFLOP/s" if "torch_gflops" in pk else "") + ".")
        if "wide_bound_s" in d:
            pk = d["wide_peaks"]
            if "interleaved" in pk:
                add(f"The same GEMM timed in its own process in every round of the wide workload: median "
                    f"{pk['interleaved'] / 1e9:.0f} GFLOP/s, best {pk['interleaved_best'] / 1e9:.0f} GFLOP/s; the median "
                    "is the peak used below (same conditions as the wide steps).")
            add("")
            add(f"The wide step does {d['wide_flops'] / 1e9:.1f} GFLOP of matmul (forward X·W for each layer, "
                "backward dW for each layer and dX for all but the first), so at "
                f"{d['wide_peak'] / 1e9:.0f} GFLOP/s it is bound by **{fmt_t(d['wide_bound_s'])}**.")
            add("")
            add("| peer | wide step | GEMM-bound / step time | matmul GFLOP/s over the whole step |")
            add("|---|---:|---:|---:|")
            for p in peers_in:
                t = peer_time(wl["wide"], p)
                if t:
                    add(f"| {LABEL[p]} | {fmt_t(t)} | {d['wide_bound_s'] / t:.2f} | {d['wide_flops'] / t / 1e9:.0f} |")
            gs = wl["wide"]["peers"].get("gemms") or {}
            if "median_s" in gs:
                t = gs["median_s"]
                add(f"| the step's {len(W.step_gemms(W.Spec.from_dict(wl['wide']['spec'])))} GEMMs alone "
                    f"(NumPy, interleaved rounds) | {fmt_t(t)} | {d['wide_bound_s'] / t:.2f} | {d['wide_flops'] / t / 1e9:.0f} |")
            if g and g.get("workload_gemms"):
                wg = g["workload_gemms"]
                add(f"| the same GEMMs, best of each (NumPy, start of the run) | {fmt_t(wg['total_s'])} | "
                    f"{d['wide_bound_s'] / wg['total_s']:.2f} | {d['wide_flops'] / wg['total_s'] / 1e9:.0f} |")
            add("")
        if g and g.get("workload_gemms"):
            add("The wide step's GEMMs timed alone (NumPy, best of several; start of the run):")
            add("")
            add("| GEMM | m×k×n | time | GFLOP/s |")
            add("|---|---|---:|---:|")
            for r in g["workload_gemms"]["gemms"]:
                add(f"| {r['how']} | {r['m']}×{r['k']}×{r['n']} | {fmt_t(r['s'])} | {r['gflops']:.0f} |")
            add("")

    st = res.get("startup")
    if st:
        med = st["median"]
        add("### graphc start-up: cold compile and warm start (spiral)")
        add("")
        add(f"`benchmarks/graphc_startup.py` in a new process, {len(st['reps'])} time(s): *cold* with an empty")
        add("`GRAPHC_CACHE_DIR`, then *warm* in another new process with the same directory (numba loads the")
        add("compiled step from the disk cache).  Medians:")
        add("")
        add("| | import graphc | build graph | `compile_step` | first call | compile + first call | process start → first loss |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for kind in ("cold", "warm"):
            r = med[kind]
            add(f"| {kind} | {fmt_t(r.get('import_s'))} | {fmt_t(r.get('build_s'))} | {fmt_t(r.get('compile_step_s'))} "
                f"| {fmt_t(r.get('first_call_s'))} | **{fmt_t(r.get('compile_first_s'))}** | {fmt_t(r.get('since_start_s'))} |")
        add("")
        add(f"numba cache hits of the step function: cold {med['cold']['cache_hits']}, warm {med['warm']['cache_hits']}.")
        add("*compile + first call* is the time between having a graph and having the first loss; *process")
        add("start → first loss* adds starting Python and importing NumPy, numba and graphc.")
        add("")

    if d:
        add("### Targets (issue 3)")
        add("")
        add("| target | measured | verdict |")
        add("|---|---|---|")
        if "spiral_speedup" in d:
            fp = d["spiral_fastest"]
            add(f"| spiral: ≥ 3× faster than the fastest peer | {d['spiral_speedup']:.2f}× ({LABEL[fp[0]]} {fmt_t(fp[1])}, "
                f"graphc {fmt_t(peer_time(wl['spiral'], 'graphc'))}) | {_ok(d['spiral_speedup'] >= TARGETS['spiral_speedup'])} |")
        if "mnist_speedup" in d:
            fp = d["mnist_fastest"]
            add(f"| mnist-like: no slower than the fastest peer | {d['mnist_speedup']:.2f}× ({LABEL[fp[0]]} {fmt_t(fp[1])}, "
                f"graphc {fmt_t(peer_time(wl['mnist'], 'graphc'))}) | {_ok(d['mnist_speedup'] >= TARGETS['mnist_speedup'])} |")
        if "wide_gemm_fraction" in d:
            add(f"| wide: ≥ 0.9 of GEMM-peak-bound | {d['wide_gemm_fraction']:.2f} (bound {fmt_t(d['wide_bound_s'])}, "
                f"graphc {fmt_t(peer_time(wl['wide'], 'graphc'))}) | {_ok(d['wide_gemm_fraction'] >= TARGETS['wide_gemm_fraction'])} |")
        if "cold_compile_s" in d:
            add(f"| spiral cold compile ≤ 3 s | {fmt_t(d['cold_compile_s'])} (compile_step + first call) "
                f"| {_ok(d['cold_compile_s'] <= TARGETS['cold_compile_s'])} |")
            add(f"| warm start ≤ 0.5 s | {fmt_t(d['warm_start_s'])} compile_step + first call; "
                f"{fmt_t(d['warm_since_start_s'])} from process start | {_ok(d['warm_start_s'] <= TARGETS['warm_start_s'])} "
                f"(from process start: {_ok((d['warm_since_start_s'] or 1e9) <= TARGETS['warm_start_s'])}) |")
        add("")

    bs = res.get("batch")
    if bs:
        add("### graphc step time vs batch size")
        add("")
        add("Random data, seeded; each batch size in new processes (graphc's `parallel=\"auto\"` decides from the")
        add("first call's sizes which loops run under `prange`); graphc and NumPy interleaved, "
            f"{res['config']['sweep_rounds']} rounds.")
        add("")
        for arch, sweep in bs.items():
            add(f"**{arch}-like MLP {'→'.join(map(str, sweep['layers']))}**")
            add("")
            add("| batch N | graphc | NumPy | NumPy / graphc | graphc per sample | graphc uses prange |")
            add("|---:|---:|---:|---:|---:|---|")
            for cmp in sweep["rows"]:
                n = cmp["spec"]["batch"]
                g, npt = peer_time(cmp, "graphc"), peer_time(cmp, "numpy")
                gi = (cmp["peers"].get("graphc") or {}).get("info") or {}
                add(f"| {n} | {_cell(cmp, 'graphc')} | {_cell(cmp, 'numpy')} | {fmt_x(npt / g) if g and npt else '—'} "
                    f"| {fmt_t(g / n) if g else '—'} | {'yes' if gi.get('uses_prange') else 'no' if gi else '—'} |")
            add("")

    dp = res.get("depth")
    if dp:
        add("### Depth: compile time and step time vs graph size")
        add("")
        add(f"MLPs of `depth` linear layers, {dp['d_in']}→{dp['width']}→…→{dp['width']}→{dp['classes']}, batch "
            f"{dp['batch']}, random data.  Cold compile: `compile_step` + first call with an empty cache, in a new")
        add("process; warm: the same in another new process (disk cache hit).  Step times: graphc and NumPy interleaved.")
        add("")
        add("| depth | graph nodes (model / step) | emitted lines | cold compile | warm compile + first call | graphc step | NumPy step | NumPy / graphc |")
        add("|---:|---|---:|---:|---:|---:|---:|---:|")
        for row in dp["rows"]:
            c = row["cold"]
            if "error" in c:
                add(f"| {row['depth']} | — | — | {c['error']} | — | — | — | — |")
                continue
            w = row.get("warm") or {}
            cmp = row.get("compare") or {"peers": {}}
            g, npt = peer_time(cmp, "graphc"), peer_time(cmp, "numpy")
            add(f"| {row['depth']} | {c['nodes']} / {c['step_nodes']} | {c['source_lines']} | {fmt_t(c['compile_first_s'])} "
                f"| {fmt_t(w.get('compile_first_s'))} | {_cell(cmp, 'graphc')} | {_cell(cmp, 'numpy')} "
                f"| {fmt_x(npt / g) if g and npt else '—'} |")
        add("")
    return "\n".join(L).rstrip() + "\n"


def _ok(b):
    return "met" if b else "**missed**"


def _wl_label(name, cmp):
    s = cmp["spec"]
    return f"{name} {s['batch']}×{'→'.join(map(str, s['layers']))}"


def _cell(cmp, p):
    pp = cmp["peers"].get(p)
    if pp is None:
        return "—"
    if "error" in pp:
        return "not installed" if "not installed" in pp["error"] else "failed"
    t = fmt_t(pp.get("median_s"))
    if not pp.get("verdict", {}).get("ok", True):
        t += " (**wrong**)"
    return t


def _peer_info(res, name):
    for sect in (res.get("workloads") or {}).values():
        p = sect["peers"].get(name)
        if p and p.get("info"):
            return p["info"]
    return None


def write_docs(text):
    section = f"{BEGIN}\n{text}{END}"
    old = DOC.read_text() if DOC.exists() else "# Performance\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(new)
    log(f"wrote {DOC.relative_to(ROOT)}")


def wrong_peers(res):
    bad = []
    cmps = list((res.get("workloads") or {}).values())
    for sweep in (res.get("batch") or {}).values():
        cmps += sweep["rows"]
    cmps += [r["compare"] for r in (res.get("depth") or {}).get("rows", []) if "compare" in r]
    for c in cmps:
        for name, p in c["peers"].items():
            if p.get("verdict") and not p["verdict"]["ok"]:
                bad.append((c["spec"]["name"], name, p["verdict"]))
    return bad


# ----- main ---------------------------------------------------------------------------------
class Config(argparse.Namespace):
    pass


def config(args):
    cfg = Config()
    cfg.peers = args.peers
    cfg.workloads = args.workloads
    cfg.gemm_size, cfg.gemm_repeats = 2048, 10
    cfg.compile_timeout = args.compile_timeout
    if args.quick:
        cfg.rounds, cfg.rounds_wide, cfg.sweep_rounds, cfg.startup_reps = 3, 2, 3, 1
        cfg.round_s, cfg.round_s_wide = 0.15, 0.5
        cfg.batches, cfg.depths = [64, 512, 4096], [2, 4, 8]
    else:
        cfg.rounds, cfg.rounds_wide, cfg.sweep_rounds, cfg.startup_reps = 15, 5, 5, 3
        cfg.round_s, cfg.round_s_wide = 0.25, 1.0
        cfg.batches, cfg.depths = [64, 128, 256, 512, 1024, 2048, 4096], [2, 4, 8, 16, 32]
    if args.rounds:
        cfg.rounds = args.rounds
    if args.batches:
        cfg.batches = args.batches
    if args.depths:
        cfg.depths = args.depths
    return cfg


def _terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # runs the finally blocks: peer processes are closed


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds, batch sizes and depths")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    p.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    p.add_argument("--workloads", nargs="+", choices=sorted(W.WORKLOADS), default=["spiral", "mnist", "wide"])
    p.add_argument("--rounds", type=int, help="timing rounds for spiral and mnist-like")
    p.add_argument("--batches", type=int, nargs="+", help="batch sizes of the batch sweep")
    p.add_argument("--depths", type=int, nargs="+", help="depths of the depth sweep")
    p.add_argument("--compile-timeout", type=int, default=600, help="seconds allowed for one cold compile (depth sweep)")
    p.add_argument("--wait-quiet", type=float, metavar="S", default=0,
                   help="first wait up to S seconds for the 1-minute load average to drop below --quiet-load")
    p.add_argument("--quiet-load", type=float, default=0.5, help="what --wait-quiet waits for")
    p.add_argument("--json", type=Path, help="also save the raw results here")
    p.add_argument("--from-json", type=Path, help="render saved results instead of running")
    p.add_argument("--write-docs", action="store_true", help=f"rewrite the section between {BEGIN} and {END} in docs/performance.md")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (caches, peer logs)")
    args = p.parse_args(argv)

    if args.from_json:
        res = json.loads(args.from_json.read_text())
    else:
        res = run_all(args)
    text = render(res)
    print(text)
    if args.write_docs:
        write_docs(text)
    bad = wrong_peers(res)
    for spec, name, v in bad:
        log(f"WRONG: {name} on {spec}: {v}")
    return 1 if bad else 0


def wait_quiet(limit_s, threshold=0.5):
    end = time.time() + limit_s
    while os.getloadavg()[0] >= threshold and time.time() < end:
        log(f"waiting for a quiet machine: load average {os.getloadavg()[0]:.2f}")
        time.sleep(min(15, max(0.0, end - time.time())))


def load_samples(res):
    out = []
    for c in (res.get("workloads") or {}).values():
        out += c.get("load", [])
    for sweep in (res.get("batch") or {}).values():
        for c in sweep["rows"]:
            out += c.get("load", [])
    for r in (res.get("depth") or {}).get("rows", []):
        out += (r.get("compare") or {}).get("load", [])
    return out


def run_all(args):
    cfg = config(args)
    if args.wait_quiet:
        wait_quiet(args.wait_quiet, args.quiet_load)
    env = {k: v for k, v in os.environ.items()}
    tmp = Path(tempfile.mkdtemp(prefix="graphc-bench-"))
    logdir = tmp / "logs"
    logdir.mkdir()
    env["GRAPHC_CACHE_DIR"] = str(tmp / "cache-workloads")
    t0 = time.time()
    res = {"machine": machine(os.environ), "config": {k: v for k, v in vars(cfg).items()},
           "quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M")}
    log(f"scratch {tmp}; sections {', '.join(args.only)}; peers {', '.join(cfg.peers)}")
    try:
        if "gemm" in args.only:
            res["gemm"] = section_gemm(cfg, env)
        if "workloads" in args.only:
            res["workloads"] = section_workloads(cfg, env, logdir)
        if "startup" in args.only and "graphc" in cfg.peers:
            res["startup"] = section_startup(cfg, env, tmp)
        if "batch" in args.only:
            res["batch"] = section_batch(cfg, env, logdir, tmp)
        if "depth" in args.only:
            res["depth"] = section_depth(cfg, env, logdir, tmp)
    finally:
        res["elapsed_s"] = time.time() - t0
        try:
            res["machine"]["loadavg_end"] = os.getloadavg()
        except OSError:
            pass
        path = args.json or tmp / "results.json"
        path.write_text(json.dumps(res, indent=1, default=str))
        log(f"raw results: {path} (elapsed {res['elapsed_s'] / 60:.1f} min)")
        if not args.keep:
            shutil.rmtree(tmp / "logs", ignore_errors=True)
            for sub in tmp.iterdir():
                if sub.is_dir():
                    shutil.rmtree(sub, ignore_errors=True)
    return res


if __name__ == "__main__":
    sys.exit(main())
