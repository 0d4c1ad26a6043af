"""Whole training runs: graphc's `Trainer.fit` (the training loop, not one step)
against the same compiled step in a bare loop, PyTorch eager, NumPy by hand and
JAX jit, plus graphc's cold and warm start.

    .venv/bin/python benchmarks/bench_fit.py                        # both workloads, all peers, 7 rounds
    .venv/bin/python benchmarks/bench_fit.py --write-docs           # ... and rewrite the section in docs/performance.md
    .venv/bin/python benchmarks/bench_fit.py --workloads spiral --peers graphc_fit,numpy --rounds 3
    .venv/bin/python benchmarks/bench_fit.py --from-json RESULTS.json --write-docs   # re-render saved results
    .venv/bin/python benchmarks/bench_fit.py --wait-quiet 600       # first wait (up to 600 s) for a quiet machine

The workloads and peers are described in benchmarks/fit_peers.py.  Method (the
project's benchmarking rule): every peer runs in its own process
(fit_peers.py --serve), set up one after the other so that no compile overlaps
a measurement.  Each peer first trains CHECK_EPOCHS epochs from the shared
initial parameters; the harness compares those epoch losses with graphc_fit's
(peers with the same minibatch order must agree to 1e-6 relative in float64,
1e-4 in float32; a peer with its own order -- torch on a shuffled workload --
only has to lower its loss, and its first-epoch loss must be within 5%).
Then rounds are interleaved: in round r every peer trains `--epochs` more
epochs (default: the workload's), the peers taking turns in an order rotated
by r; a round's figure is its wall time / epochs.  Round 0 warms up and is
not counted.  A peer's result is the median over rounds; the ratio is that
median over graphc_fit's.  graphc's start-up is measured in new processes:
cold with an empty GRAPHC_CACHE_DIR, then warm with the cache it left.
A peer whose library is not installed is reported as unavailable.
"""
import argparse
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:fit:start -->", "<!-- bench:fit:end -->"
sys.path.insert(0, str(HERE))

import fit_peers as FP  # noqa: E402

LABEL = {"graphc_fit": "graphc `Trainer.fit`", "graphc_step": "graphc step, bare loop",
         "torch": "PyTorch eager", "numpy": "NumPy by hand", "jax": "JAX jit"}
RTOL = {"float64": 1e-6, "float32": 1e-4}   # same minibatch order: every check epoch's loss
OTHER_ORDER_RTOL = 0.05                      # own order: the first epoch's loss
PAUSE_S = 0.2  # between two peers' turns: OpenBLAS's idle threads spin ~0.1 s after a call


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----- peer processes ------------------------------------------------------------------
class PeerProc:
    """One peer in its own process, speaking fit_peers.py's line protocol."""

    def __init__(self, name, argv, env, logdir, timeout):
        self.name, self.timeout = name, timeout
        self.stderr_path = Path(logdir) / f"{name}-{int(time.time() * 1e6)}.log"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "fit_peers.py"), *argv, "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=env, cwd=ROOT, bufsize=0)
        self._buf = b""

    def read(self, timeout=None):
        fd = self.proc.stdout.fileno()
        limit = timeout or self.timeout
        end = time.monotonic() + limit
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no answer in {limit:.0f} s")
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

    def round(self, epochs):
        self.send({"epochs": epochs})
        return self.read()

    def tail(self, n=15):
        self.stderr.flush()
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])

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


# ----- correctness ---------------------------------------------------------------------
def verdict(wl, losses, ref_losses, same_order):
    """Whether a peer's check-epoch losses agree with graphc_fit's."""
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, ref_losses)]
    decreases = losses[-1] < losses[0]
    if same_order:
        ok, tol = max(rel) <= RTOL[wl.dtype] and decreases, RTOL[wl.dtype]
    else:
        ok, tol = rel[0] <= OTHER_ORDER_RTOL and decreases, OTHER_ORDER_RTOL
    return {"first_rel_err": rel[0], "max_rel_err": max(rel), "same_order": same_order, "tol": tol,
            "decreases": decreases, "ok": ok}


def same_order(wl, name):
    """Whether a peer sees the minibatches in fit's order (torch draws its own when shuffling)."""
    return not (wl.shuffle and name == "torch")


# ----- one workload: start-up, then interleaved rounds ---------------------------------
def startup(wl, cache, env, data, timeout=900):
    env = dict(env, GRAPHC_CACHE_DIR=str(cache))
    t0 = time.time()
    p = subprocess.run([sys.executable, str(HERE / "fit_peers.py"), "--startup", "--workload", wl.name,
                        "--dtype", wl.dtype, "--data", str(data), "--t0", repr(t0)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    if p.returncode != 0:
        return {"error": f"rc={p.returncode}: {p.stderr[-2000:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def section_startup(wl, reps, env, tmp, data):
    out = []
    for r in range(reps):
        cache = Path(tempfile.mkdtemp(prefix=f"startup-{wl.name}-", dir=tmp))
        log(f"  {wl.name}: graphc start-up {r + 1}/{reps}: cold (empty cache), then warm")
        try:
            cold = startup(wl, cache, env, data)
            warm = startup(wl, cache, env, data) if "error" not in cold else {"error": "cold start failed"}
        except subprocess.TimeoutExpired as e:
            cold, warm = {"error": f"timed out: {e}"}, {"error": "not run"}
        out.append({"cold": cold, "warm": warm})
    keys = ("import_s", "trainer_s", "first_epoch_s", "compile_first_s", "since_start_s", "second_epoch_s")
    med = {}
    for kind in ("cold", "warm"):
        ok = [r[kind] for r in out if "error" not in r[kind]]
        med[kind] = {k: statistics.median(x[k] for x in ok) for k in keys if ok and k in ok[0]}
        med[kind]["cache"] = [f"{x.get('cache_hits', '?')}/{x.get('cache_misses', '?')}" for x in ok]
        if not ok:
            med[kind]["error"] = out[0][kind].get("error", "failed")
    return {"reps": out, "median": med}


def compare(wl, peers, rounds, epochs, env, logdir, data, setup_timeout=900, round_timeout=900):
    out = {"workload": wl.name, "spec": {**wl.__dict__, "steps_per_epoch": wl.steps_per_epoch},
           "epochs_per_round": epochs, "rounds": rounds, "peers": {}, "load": [os.getloadavg()[0]]}
    procs = {}
    argv = ["--workload", wl.name, "--dtype", wl.dtype, "--data", str(data)]
    try:
        for name in peers:
            log(f"  {wl.name}: starting {name}")
            pp = PeerProc(name, ["--peer", name, *argv], env, logdir, setup_timeout)
            try:
                ready = pp.read()
            except (RuntimeError, TimeoutError) as e:
                pp.close()
                out["peers"][name] = {"error": str(e).splitlines()[0], "stderr": pp.tail()}
                log(f"  {name} failed: {e}")
                continue
            if "unavailable" in ready:
                pp.close()
                out["peers"][name] = {"unavailable": ready["unavailable"]}
                log(f"  {name}: unavailable ({ready['unavailable']})")
                continue
            procs[name] = pp
            out["peers"][name] = ready
        ref_name = "graphc_fit" if "graphc_fit" in procs else next(iter(procs), None)
        out["reference"] = ref_name
        if ref_name:
            ref = out["peers"][ref_name]["check"]["losses"]
            for name in procs:
                v = verdict(wl, out["peers"][name]["check"]["losses"], ref,
                            same_order(wl, name) == same_order(wl, ref_name))
                out["peers"][name]["verdict"] = v
                if not v["ok"]:
                    log(f"  WRONG: {name} disagrees with {ref_name} on {wl.name}: {v}")
        per_round = {n: [] for n in procs}
        names = list(procs)
        for r in range(-1, rounds):  # round -1 warms up and is not counted
            shift = (r + 1) % max(len(names), 1)
            for name in names[shift:] + names[:shift]:
                if name not in procs:
                    continue
                try:
                    rr = procs[name].round(epochs)
                except (RuntimeError, TimeoutError) as e:
                    log(f"  {name} failed in round {r}: {e}")
                    out["peers"][name].update(error=str(e).splitlines()[0], stderr=procs[name].tail())
                    procs.pop(name).close()
                    per_round.pop(name)
                    continue
                if r >= 0:
                    per_round[name].append(rr["s"] / epochs)
                    out["peers"][name]["last_loss"] = rr["loss"]
                time.sleep(PAUSE_S)
        for name, per_epoch in per_round.items():
            if per_epoch:
                out["peers"][name].update(round_epoch_s=per_epoch, median_epoch_s=statistics.median(per_epoch),
                                          min_epoch_s=min(per_epoch))
        out["load"].append(os.getloadavg()[0])
        log(f"  {wl.name}: " + ", ".join(f"{n} {fmt_ms(out['peers'][n].get('median_epoch_s'))} ms/epoch"
                                         for n in per_round))
    finally:
        for pp in procs.values():
            pp.close()
    return out


# ----- the machine -----------------------------------------------------------------------
def machine():
    import importlib.metadata as md
    info = {"cpu": "unknown", "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}"}
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "numba", "torch", "jax", "graphc"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info["versions"] = versions
    info["env"] = {k: v for k, v in os.environ.items()
                   if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "XLA_")) and k != "NUMBA_ENABLE_CUDASIM"}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info["loadavg_start"] = os.getloadavg()
    return info


def machine_line(res):
    m = res["machine"]
    cores = f"{m['cores']} cores" + (f" ({m['affinity']} usable)" if m.get("affinity") not in (None, m["cores"]) else "")
    g = t = None
    for wl in res["workloads"].values():
        for name, p in wl["peers"].items():
            if name.startswith("graphc") and p.get("info") and g is None:
                g = p["info"]
            if name == "torch" and p.get("info") and t is None:
                t = p["info"]
    parts = [f"{m['cpu']}, {cores}"]
    if g:
        layer = g.get("threading_layer") or f"{g.get('threading_layer_config')} (configured; no parallel region ran)"
        parts.append(f"numba {g.get('numba')} threading layer {layer}, {g.get('numba_num_threads')} threads")
    if t:
        parts.append(f"torch {m['versions'].get('torch')} {t.get('threads')} threads "
                     f"({t.get('interop_threads')} inter-op)")
    elif "torch" in res["config"]["peers"]:
        parts.append("torch unavailable")
    v = m["versions"]
    parts.append(f"NumPy {v.get('numpy')}" + (f", JAX {v['jax']}" if v.get("jax") and "jax" in res["config"]["peers"] else ""))
    load = [round(x, 2) for x in (m.get("loadavg_start", [None])[0], (m.get("loadavg_end") or [None])[0])]
    parts.append(f"load average {load[0]} → {load[1]}")
    return "Machine: " + "; ".join(parts) + "."


# ----- formatting ------------------------------------------------------------------------
def fmt_ms(s):
    if s is None:
        return "—"
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_s(s):
    return "—" if s is None else f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def render(res):
    L = []
    add = L.append
    cfg = res["config"]
    add("## Whole training runs: `Trainer.fit` against peers")
    add("")
    add("`benchmarks/bench_fit.py` times the training *loop* — `Trainer.fit` with its shuffling, minibatch")
    add("slicing, per-epoch metrics and history — against the same compiled step called in a bare Python")
    add("loop and against peers that train the same network from the same initial parameters, each in its")
    add("own process, rounds interleaved in a rotated order, medians over rounds (method and peers:")
    add("`benchmarks/bench_fit.py`, `benchmarks/fit_peers.py`).")
    add("")
    add("```sh")
    add(".venv/bin/python benchmarks/bench_fit.py --write-docs")
    add("```")
    add("")
    add(f"{res['date']}, {cfg['rounds']} rounds (+1 warm-up), commit {res['machine'].get('commit', '?')}.")
    add(machine_line(res))
    loads = [x for c in res["workloads"].values() for x in c.get("load", [])]
    if loads and max(loads) >= 0.5:
        add(f"**The machine was busy** (1-minute load average up to {max(loads):.2f}): the figures, above all")
        add("those of multi-threaded peers (PyTorch's thread pool waits for descheduled threads), are not")
        add("representative; rerun with `--wait-quiet 600`.")
    add("")
    for name, cmp in res["workloads"].items():
        wl = FP.WORKLOADS[name].with_dtype(cmp["spec"]["dtype"])
        add(f"**{wl.label}**: {wl.describe()}; {cmp['epochs_per_round']} epochs per round.")
        add("")
        add("| peer | ms / epoch (median) | best round | µs / step | time ÷ graphc `fit` | check: epoch-1 loss (rel. diff) |")
        add("|---|---:|---:|---:|---:|---|")
        ref = cmp["peers"].get("graphc_fit", {}).get("median_epoch_s")
        for peer in cfg["peers"]:
            p = cmp["peers"].get(peer)
            if p is None:
                continue
            if "unavailable" in p:
                add(f"| {LABEL[peer]} | unavailable | | | | {p['unavailable']} |")
                continue
            if "median_epoch_s" not in p:
                add(f"| {LABEL[peer]} | failed | | | | {p.get('error', '')} |")
                continue
            t = p["median_epoch_s"]
            ratio = f"{t / ref:.2f}×" if ref else "—"
            v = p.get("verdict") or {}
            chk = f"{p['check']['losses'][0]:.6g}"
            if v and peer != cmp.get("reference"):
                chk += f" ({v['first_rel_err']:.1e}{'' if v['same_order'] else ', own shuffle order'})"
            if v and not v["ok"]:
                chk += " **wrong**"
            add(f"| {LABEL[peer]} | {fmt_ms(t)} | {fmt_ms(p['min_epoch_s'])} | "
                f"{t / wl.steps_per_epoch * 1e6:.0f} | {ratio} | {chk} |")
        g, s = (cmp["peers"].get(k, {}).get("median_epoch_s") for k in ("graphc_fit", "graphc_step"))
        if g and s:
            add("")
            add(f"`fit`'s loop costs {(g - s) * 1e6:.0f} µs per epoch over the bare step loop "
                f"({(g - s) / wl.steps_per_epoch * 1e6:.0f} µs per step, {(g - s) / g:.0%} of the epoch).")
        add("")
    st = res.get("startup") or {}
    if st:
        add("**graphc start-up** (new processes: *cold* with an empty `GRAPHC_CACHE_DIR`, *warm* with the cache")
        add("the cold run left; medians of "
            f"{cfg['startup_reps']}): `Trainer(...)` builds and emits the step, the first `fit` epoch compiles it")
        add("(or loads it from the cache).")
        add("")
        add("| workload | start | import graphc | `Trainer(...)` | first epoch | `Trainer` + first epoch | process start → first epoch done | numba cache hits/misses |")
        add("|---|---|---:|---:|---:|---:|---:|---|")
        for name, sec in st.items():
            for kind in ("cold", "warm"):
                r = sec["median"][kind]
                if "error" in r:
                    add(f"| {name} | {kind} | failed | | | | | {r['error'][:80]} |")
                    continue
                add(f"| {name} | {kind} | {fmt_s(r.get('import_s'))} | {fmt_s(r.get('trainer_s'))} | "
                    f"{fmt_s(r.get('first_epoch_s'))} | **{fmt_s(r.get('compile_first_s'))}** | "
                    f"{fmt_s(r.get('since_start_s'))} | {', '.join(r.get('cache', []))} |")
        add("")
    return "\n".join(L).rstrip() + "\n"


def write_docs(text, doc=DOC):
    """Replace the text between the markers (or append markers and text at the end)."""
    section = f"{BEGIN}\n{text}{END}"
    old = doc.read_text() if doc.exists() else "# Performance\n"
    if BEGIN in old and END in old and old.index(BEGIN) < old.index(END):
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(new)
    log(f"wrote {doc}")


# ----- main ------------------------------------------------------------------------------
def wait_quiet(limit_s, threshold):
    end = time.time() + limit_s
    while os.getloadavg()[0] >= threshold and time.time() < end:
        log(f"waiting for a quiet machine: load average {os.getloadavg()[0]:.2f}")
        time.sleep(min(15, max(0.0, end - time.time())))


def run_all(args, peers):
    if args.wait_quiet:
        wait_quiet(args.wait_quiet, args.quiet_load)
    if args.scratch:
        tmp = Path(args.scratch)
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="graphc-bench-fit-"))
    logdir = tmp / "logs"
    logdir.mkdir(exist_ok=True)
    env = dict(os.environ)
    t0 = time.time()
    res = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "config": {"peers": peers, "rounds": args.rounds, "epochs": args.epochs, "seed": args.seed,
                      "workloads": args.workloads, "startup_reps": 0 if args.no_startup else args.startup_reps},
           "workloads": {}, "startup": {}}
    log(f"scratch {tmp}; workloads {', '.join(args.workloads)}; peers {', '.join(peers)}")
    try:
        for name in args.workloads:
            wl = FP.WORKLOADS[name]
            if args.dtype:
                wl = wl.with_dtype(args.dtype)
            data = tmp / f"{name}.npz"
            FP.save_inputs(data, wl, args.seed)
            if not args.no_startup and any(p.startswith("graphc") for p in peers):
                res["startup"][name] = section_startup(wl, args.startup_reps, env, tmp, data)
            cache = Path(tempfile.mkdtemp(prefix=f"cache-{name}-", dir=tmp))
            log(f"workload {name}: {args.rounds} rounds")
            res["workloads"][name] = compare(wl, peers, args.rounds, args.epochs or wl.epochs_per_round,
                                             dict(env, GRAPHC_CACHE_DIR=str(cache)), logdir, data)
    finally:
        res["elapsed_s"] = time.time() - t0
        res["machine"]["loadavg_end"] = os.getloadavg()
        path = Path(args.json) if args.json else tmp / "results.json"
        path.write_text(json.dumps(res, indent=1, default=str))
        log(f"raw results: {path} (elapsed {res['elapsed_s']:.0f} s)")
        if not args.keep and not args.scratch:
            for sub in tmp.iterdir():
                if sub.is_dir():
                    shutil.rmtree(sub, ignore_errors=True)
    return res


def wrong_peers(res):
    return [(w, n, p["verdict"]) for w, c in res["workloads"].items() for n, p in c["peers"].items()
            if p.get("verdict") and not p["verdict"]["ok"]]


def _terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # runs the finally blocks: peer processes are closed


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", nargs="+", choices=sorted(FP.WORKLOADS), default=list(FP.WORKLOADS))
    p.add_argument("--peers", nargs="+", default=[",".join(FP.PEERS)],
                   help=f"comma- or space-separated, of {', '.join(FP.PEERS)} (default: all)")
    p.add_argument("--rounds", type=int, default=7, help="timing rounds (default 7), after one warm-up round")
    p.add_argument("--epochs", type=int, help="epochs per round (default: the workload's: "
                   + ", ".join(f"{k} {w.epochs_per_round}" for k, w in FP.WORKLOADS.items()) + ")")
    p.add_argument("--dtype", choices=("float32", "float64"), help="override the workloads' dtypes "
                   "(default: spiral float64, digits float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-startup", action="store_true", help="skip graphc's cold/warm start-up measurement")
    p.add_argument("--startup-reps", type=int, default=1, help="cold + warm start-up pairs per workload")
    p.add_argument("--wait-quiet", type=float, metavar="S", default=0,
                   help="first wait up to S seconds for the 1-minute load average to drop below --quiet-load")
    p.add_argument("--quiet-load", type=float, default=0.5)
    p.add_argument("--json", help="also save the raw results here")
    p.add_argument("--from-json", help="render saved results instead of running")
    p.add_argument("--write-docs", action="store_true", help=f"rewrite the section between {BEGIN} and {END}")
    p.add_argument("--doc", type=Path, default=DOC, help="the file --write-docs rewrites (default docs/performance.md)")
    p.add_argument("--scratch", help="scratch directory (default: a new temporary one, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory's caches and peer logs")
    args = p.parse_args(argv)
    peers = [x for arg in args.peers for x in arg.split(",") if x]
    unknown = [x for x in peers if x not in FP.PEERS]
    if unknown:
        p.error(f"unknown peers {unknown}; known: {', '.join(FP.PEERS)}")

    res = json.loads(Path(args.from_json).read_text()) if args.from_json else run_all(args, peers)
    text = render(res)
    print(text)
    if args.write_docs:
        write_docs(text, args.doc)
    bad = wrong_peers(res)
    for wl, name, v in bad:
        log(f"WRONG: {name} on {wl}: {v}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
