"""Smoke test of the benchmark peers (benchmarks/ is not part of the test suite):
the graphc and NumPy-by-hand peers train the spiral workload for 2 steps from the
same start and must agree, so the benchmarks time correct code."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import workloads as W  # noqa: E402
from peer_graphc import GraphcStep  # noqa: E402
from peer_numpy import NumpyStep  # noqa: E402


def test_graphc_and_numpy_peers_agree_on_spiral():
    spec = W.WORKLOADS["spiral"]
    X, y = W.make_data(spec)
    init = W.init_params(spec)
    assert X.shape == (300, 2) and X.dtype == np.float32 and y.dtype == np.int64
    peers = [NumpyStep(spec, X, y, init), GraphcStep(spec, X, y, init)]
    losses = [[p.loss_value(p.step()) for _ in range(2)] for p in peers]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert losses[0][1] < losses[0][0]  # it trains
    after = [p.params() for p in peers]
    for name in W.param_names(spec):
        np.testing.assert_allclose(after[1][name], after[0][name], rtol=1e-4, atol=1e-6)
        assert not np.array_equal(after[0][name], init[name])  # every parameter moved


def test_bench_fit_runs_and_reports_each_peer(tmp_path):
    """benchmarks/bench_fit.py end to end at tiny settings (one round of 2 epochs on the
    spiral, no start-up measurement): graphc_fit and NumPy are timed and agree; torch,
    made unimportable here, is reported as unavailable instead of failing the run."""
    import json
    import os
    import subprocess

    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch hidden by the smoke test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]))
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_fit.py"
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, str(bench), "--rounds", "1", "--epochs", "2", "--workloads", "spiral",
                        "--peers", "graphc_fit,numpy,torch", "--no-startup", "--scratch", str(tmp_path / "scratch"),
                        "--json", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    peers = json.loads(out.read_text())["workloads"]["spiral"]["peers"]
    for name in ("graphc_fit", "numpy"):
        assert peers[name]["median_epoch_s"] > 0, peers[name]
        assert peers[name]["verdict"]["ok"], peers[name]["verdict"]
    assert "unavailable" in peers["torch"]
    assert "graphc `Trainer.fit`" in p.stdout and "NumPy by hand" in p.stdout
    assert "| PyTorch eager | unavailable |" in p.stdout


def test_first_loss_children_report_the_numpy_peers_first_loss(tmp_path):
    """benchmarks/first_loss.py's child mode (one new process per peer): graphc's python
    tier reports the same first loss as the NumPy-by-hand peer, and every phase it times."""
    import json
    import os
    import subprocess
    import time

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "first_loss.py"
    env = {**os.environ, "GRAPHC_CACHE_DIR": str(tmp_path)}
    reports = {}
    for peer in ("numpy", "graphc-python"):
        done = subprocess.run([sys.executable, str(script), "--child", peer, "--workload", "spiral",
                               "--t0", repr(time.time())], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        reports[peer] = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(reports["graphc-python"]["loss"], reports["numpy"]["loss"], rtol=1e-5)
    for r in reports.values():
        phases = [r[k] for k in ("interpreter", "imports", "data", "setup", "first_step")]
        assert all(x >= 0 for x in phases) and r["since_start"] >= sum(phases) - 1e-3
