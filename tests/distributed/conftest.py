"""One LocalCluster (2 single-threaded worker processes) for every test here.

It is session-scoped because this directory has no __init__.py (with one,
`import distributed` would find this directory instead of dask's package),
so pytest sees no package to scope it to; it is only started when a test
here runs.
Starting a cluster costs seconds, and each worker process compiles each
distinct step once, so all tests share the cluster, one kernel cache, and
the tiny model below.  The workers are separate processes: they get the
cache directory explicitly (`cache_dir=`), not from this process's env."""
import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install -e '.[distributed]')")

from graphc.train import SGD, Dense, Model  # noqa: E402


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("dask_cache"))


@pytest.fixture(autouse=True)
def _cache_dir(shared_cache, monkeypatch):
    """Overrides the suite's per-test cache: the client compiles into the workers' cache too."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", shared_cache)


@pytest.fixture(scope="session")
def client():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # processes: a nanny restarts a killed worker
    with Client(cluster) as c:
        yield c
    cluster.close()


def ready(client, n=2, gone=()):
    """The client, once n workers are up and the scheduler has dropped the `gone`
    addresses (after a test killed a worker, its nanny starts a new one)."""
    deadline = time.monotonic() + 60
    while True:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if len(workers) >= n and not set(gone) & set(workers):
            return client
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster has workers {sorted(workers)}; waited for {n} without {list(gone)}")
        time.sleep(0.2)


def kill_worker(client, address):
    pid = client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)


def tiny_model(name="tiny"):
    return Model([Dense(8, "tanh"), Dense(3)], input_shape=(4,), loss="cross_entropy", name=name)


def build(trial):
    """A sweep's build: the tiny model with SGD at the trial's lr (one compiled step for every lr)."""
    return tiny_model(), SGD(lr=trial["lr"])


def tiny_data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = ((X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)).astype(np.int64)
    return X, y
