"""graphc.distributed.sweep on a 2-worker LocalCluster, against the same trials run serially."""
import os
import signal
import sys

import numpy as np
import pytest

import graphc.distributed as gd
from graphc.train import Trainer, checkpoint
from tests.distributed.conftest import build, ready, tiny_data

GRID = {"lr": [0.03, 0.3, 1.0]}
SEEDS = 2  # 6 trials
FIT = dict(epochs=4, batch_size=16, validation_split=0.25)
VOLATILE = {"wall_s", "setup_s", "worker_pid", "new_modules", "attempts", "checkpoint"}  # where and how long, not what


@pytest.fixture(scope="module")
def serial(tmp_path_factory, shared_cache):
    os.environ["GRAPHC_CACHE_DIR"] = shared_cache
    X, y = tiny_data()
    return gd.sweep(None, build, X, y, tmp_path_factory.mktemp("serial"), grid=GRID, seeds=SEEDS, table=False, **FIT)


def _same_trial(row, ref):
    assert {k: v for k, v in row.items() if k not in VOLATILE} == {k: v for k, v in ref.items() if k not in VOLATILE}
    mine, _ = checkpoint.load(row["checkpoint"])
    theirs, _ = checkpoint.load(ref["checkpoint"])
    assert mine.keys() == theirs.keys()
    for name in mine:
        np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)  # bit for bit


def test_sweep_on_cluster_equals_serial_run(client, serial, tmp_path, shared_cache):
    X, y = tiny_data()
    table = gd.sweep(ready(client), build, X, y, tmp_path, grid=GRID, seeds=SEEDS, cache_dir=shared_cache, **FIT)
    rows = table.to_dict("records")  # pandas is in the test extra
    assert len(rows) == len(serial) == 6
    for row, ref in zip(rows, serial):
        assert row["status"] == "ok", row["error"]
        _same_trial(row, ref)
        assert row["epochs"] == FIT["epochs"] and row["best_val_loss"] <= row["val_loss"]
    # lr is a step input, not baked into the code: one step graph for the whole sweep, so each
    # worker process loads (compiles, or takes from numba's disk cache) its kernels at most once.
    assert len({r["graph_hash"] for r in rows}) == 1
    per_worker = {}
    for r in rows:
        per_worker[r["worker_pid"]] = per_worker.get(r["worker_pid"], 0) + r["new_modules"]
    assert all(n <= 2 for n in per_worker.values()), per_worker  # the step and the eval graph


def _die_once(marker, trial_lr, seed, epoch):
    """A fit callback that SIGKILLs its own worker process once, mid-trial."""
    def callback(trainer, metrics):
        if trainer.optimizer.hyper["lr"] == trial_lr and trainer.seed == seed and trainer.epoch == epoch \
                and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    return callback


def test_worker_killed_mid_sweep_retries_from_checkpoint(client, serial, tmp_path, shared_cache):
    X, y = tiny_data()
    marker = str(tmp_path / "killed")
    rows = gd.sweep(ready(client), build, X, y, tmp_path / "sweep", grid=GRID, seeds=SEEDS, cache_dir=shared_cache,
                    callback=_die_once(marker, 0.3, 1, 2), table=False, **FIT)
    assert os.path.exists(marker)  # a worker really died
    assert [r["trial"] for r in rows] == list(range(6))  # every trial exactly once
    for row, ref in zip(rows, serial):
        assert row["status"] == "ok", row["error"]
        _same_trial(row, ref)  # the retried trial resumed at its epoch-2 checkpoint: the same result
    killed = [r for r in rows if r["lr"] == 0.3 and r["seed"] == 1]
    assert [r["attempts"] for r in rows].count(2) == 1 and killed[0]["attempts"] == 2
    assert all(r["epochs"] == FIT["epochs"] for r in rows)  # no epoch was trained twice into a history


def test_bad_trials_fail_alone(client, tmp_path, shared_cache):
    X, y = tiny_data()
    trials = [{"lr": 0.3, "seed": 0}, {"lr": -1.0, "seed": 0}, {"lr": 1e308, "seed": 0}, {"lr": 0.03, "seed": 1}]
    rows = gd.sweep(ready(client), build, X, y, tmp_path, trials=trials, cache_dir=shared_cache, table=False, **FIT)
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "ok"]
    assert "lr" in rows[1]["error"] and rows[1]["error"].startswith("GraphcError")  # rejected as the optimizer is made
    assert rows[2]["error"].startswith("NumericError") and "non-finite" in rows[2]["error"]  # diverged
    assert rows[0]["error"] == rows[3]["error"] == ""


def test_table_without_pandas_is_a_list_of_dicts(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    rows = [{"trial": 0, "lr": 0.1, "status": "ok"}, {"trial": 1, "lr": 0.2, "status": "failed"}]
    table = gd.as_table(rows)
    assert table == rows and table[0] is not rows[0]


def test_table_with_pandas_is_a_dataframe():
    pd = pytest.importorskip("pandas")
    table = gd.as_table([{"trial": 0, "lr": 0.1}])
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["trial", "lr"]


def test_ensemble_of_best_models(serial, tmp_path):
    X, y = tiny_data(60, seed=1)
    top = gd.best(serial, k=3, by="best_val_loss")
    assert [r["best_val_loss"] for r in top] == sorted(r["best_val_loss"] for r in serial)[:3]
    members = []
    for row in top:  # the oracle: each member loaded by hand from its checkpoint
        t = Trainer(*build(row), seed=row["seed"])
        members.append(t.load(row["checkpoint"]).predict(X))
    average = gd.ensemble(serial, build, k=3, mode="average")
    np.testing.assert_allclose(average.predict(X), np.mean(members, axis=0), rtol=0, atol=1e-15)
    votes = np.stack([m.argmax(axis=1) for m in members])
    majority = [np.bincount(votes[:, i], minlength=3).argmax() for i in range(len(X))]
    np.testing.assert_array_equal(gd.ensemble(serial, build, k=3, mode="vote").predict(X), majority)
    assert 0.0 <= average.accuracy(X, y) <= 1.0
    path = gd.plot_curves(serial, tmp_path / "curves.png")
    assert os.path.getsize(path) > 1000


@pytest.mark.parametrize("kwargs, expect", [
    (dict(grid={"lr": [0.1, 0.2], "units": [4]}, seeds=2),
     [{"lr": 0.1, "units": 4, "seed": 0}, {"lr": 0.1, "units": 4, "seed": 1},
      {"lr": 0.2, "units": 4, "seed": 0}, {"lr": 0.2, "units": 4, "seed": 1}]),
    (dict(grid={"lr": [0.1], "seed": [5, 7]}), [{"lr": 0.1, "seed": 5}, {"lr": 0.1, "seed": 7}]),
    (dict(seeds=[3, 4]), [{"seed": 3}, {"seed": 4}]),
])
def test_trials_grid_and_seeds(kwargs, expect):
    assert gd.trials(**kwargs) == expect


def test_trials_random_samples_are_seeded_and_in_range():
    space = {"lr": ("loguniform", 1e-3, 1e-1), "units": [8, 16], "depth": ("int", 1, 3), "p": ("uniform", 0, 0.5)}
    a = gd.trials(space=space, samples=20, sample_seed=1)
    assert a == gd.trials(space=space, samples=20, sample_seed=1) != gd.trials(space=space, samples=20, sample_seed=2)
    assert all(1e-3 <= t["lr"] <= 1e-1 and t["units"] in (8, 16) and t["depth"] in (1, 2, 3) and 0 <= t["p"] <= 0.5
               for t in a)


@pytest.mark.parametrize("kwargs, match", [
    (dict(space={"lr": ("loguniform", 0, 1)}, samples=2), "loguniform"),
    (dict(space={"lr": "fast"}, samples=2), "space\\['lr'\\]"),
    (dict(space={"lr": [0.1]}, samples=0), "samples"),
    (dict(grid={"lr": 0.1}), "grid\\['lr'\\]"),
    (dict(seeds=[]), "seeds"),
])
def test_trials_bad_specs(kwargs, match):
    from graphc.errors import GraphcError
    with pytest.raises(GraphcError, match=match):
        gd.trials(**kwargs)


@pytest.mark.parametrize("bad", [{"checkpoint": "x.npz"}, {"resume": False}])
def test_sweep_refuses_fit_arguments_it_owns(bad, tmp_path):
    from graphc.errors import GraphcError
    X, y = tiny_data()
    with pytest.raises(GraphcError, match="cannot be set"):
        gd.sweep(None, build, X, y, tmp_path, grid=GRID, **bad)
    assert not list(tmp_path.iterdir())  # refused before any trial ran


def test_plot_curves_names_a_metric_no_trial_has(serial, tmp_path):
    from graphc.errors import GraphcError
    with pytest.raises(GraphcError, match="'val_f1'"):
        gd.plot_curves(serial, tmp_path / "x.png", metric="val_f1")
    with pytest.raises(GraphcError, match="no finished trial has a value for 'nope'"):
        gd.best(serial, by="nope")
