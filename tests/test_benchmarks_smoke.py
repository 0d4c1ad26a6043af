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
