"""graphc.distributed.fit on a 2-worker LocalCluster, against single-process Trainer.fit."""
import numpy as np
import pytest

import graphc.distributed as gd
from graphc.errors import GraphcError, NumericError
from graphc.train import SGD, BatchNorm, Dense, Model, Trainer
from graphc.distributed.shards import layout
from tests.distributed.conftest import kill_worker, ready, tiny_data, tiny_model

LR = 0.3


def dp_trainer(client, shared_cache, sync_every=1):
    return gd.DataParallelTrainer(ready(client), tiny_model(), SGD(lr=LR), seed=0, cache_dir=shared_cache,
                                  sync_every=sync_every)


@pytest.mark.parametrize("batch_size", [32, None])  # minibatches with a short last one (90 = 32+32+26); full batch
def test_data_parallel_equals_single_process(client, shared_cache, batch_size):
    X, y = tiny_data()
    dp = dp_trainer(client, shared_cache)
    dp.fit(X, y, epochs=3, batch_size=batch_size, validation_split=0.2)
    single = Trainer(tiny_model(), SGD(lr=LR), seed=0)
    single.fit(X, y, epochs=3, batch_size=batch_size or 72, validation_split=0.2, shuffle=False, progress=False)
    for name, value in single.params.items():
        np.testing.assert_allclose(dp.params[name], value, rtol=0, atol=1e-12, err_msg=name)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(dp.history[key], single.history[key], rtol=1e-12, atol=1e-12, err_msg=key)
    assert dp.timing["steps"] == 3 * (3 if batch_size else 1)


def test_a_non_finite_loss_stops_every_worker_before_that_step(client, shared_cache):
    X, y = tiny_data()
    huge = 1e308  # one step at this rate, and step 2's loss overflows (single-process: 1.26, then inf)
    dp = gd.DataParallelTrainer(ready(client), tiny_model(), SGD(lr=huge), seed=0, cache_dir=shared_cache)
    with pytest.raises(NumericError, match=r"loss became (inf|nan) at step 2 \(epoch 1, batch 2\).*from before that"):
        dp.fit(X, y, epochs=2, batch_size=32)
    assert dp.step.steps == 1 and dp.epoch == 0
    one_step = Trainer(tiny_model(), SGD(lr=huge), seed=0)
    one_step.step({"X": X[:32], "y": y[:32]})
    for name, value in one_step.params.items():  # ~1e307 after that step: compared relatively
        np.testing.assert_allclose(dp.params[name], value, rtol=1e-12, atol=1e-12, err_msg=name)


def test_checkpoint_resume_after_a_lost_worker(client, shared_cache, tmp_path):
    X, y = tiny_data()
    path = str(tmp_path / "dp.npz")
    whole = dp_trainer(client, shared_cache)
    whole.fit(X, y, epochs=4, batch_size=32)

    killed = []

    def kill_after_epoch_2(trainer, metrics):
        if trainer.epoch == 2:
            killed.append(trainer._actors[1][0])
            kill_worker(client, killed[0])

    doomed = dp_trainer(client, shared_cache)
    with pytest.raises(gd.DistributedError) as err:
        doomed.fit(X, y, epochs=4, batch_size=32, checkpoint=path, callback=kill_after_epoch_2)
    assert str(err.value).startswith(f"worker {killed[0]} was lost while training epoch 3 (steps 7 to 9)"), \
        str(err.value)
    assert "resume=True" in str(err.value)
    # It stopped: the survivor, already waiting for the lost worker's step-7 gradient, was woken and
    # ended; the trainer keeps the state of epoch 2 (no step taken with a missing shard's gradient).
    assert doomed.epoch == 2 and doomed.step.steps == 6
    ready(client, gone=killed)
    resumed = dp_trainer(client, shared_cache)  # a fresh process would do the same: state comes from the file
    resumed.fit(X, y, epochs=4, batch_size=32, checkpoint=path, resume=True)
    assert resumed.epoch == 4 and len(resumed.history) == 4
    for name, value in whole.params.items():
        # Equal to the last bit or two: the resumed run's actors are new processes, and a compiled
        # reduction may round differently there (seen: 5.6e-17); a wrong resume is off by ~1e-2.
        np.testing.assert_allclose(resumed.params[name], value, rtol=0, atol=1e-14, err_msg=name)
        assert not np.allclose(resumed.params[name], tiny_model().init(0)[name], atol=1e-3)  # it trained


def test_local_sgd_averages_parameters_every_h_steps(client, shared_cache):
    X, y = tiny_data(96)
    dp = dp_trainer(client, shared_cache, sync_every=2)
    dp.fit(X, y, epochs=2, batch_size=24)
    # Oracle: each shard takes 2 SGD steps from the average, in this process; then average by rows.
    rows, counts = layout(len(X), 24, 2)
    workers = [Trainer(tiny_model(), SGD(lr=LR), seed=0) for _ in range(2)]
    params = tiny_model().init(0)
    for _ in range(2):
        for first in range(0, len(counts), 2):
            new = []
            for j, t in enumerate(workers):
                t.set_params(params)
                for b in range(first, min(first + 2, len(counts))):
                    idx = rows[j][counts[:b, j].sum():counts[:b + 1, j].sum()]
                    t.step({"X": X[idx], "y": y[idx]})
                new.append(t.params)
            params = {k: new[0][k] * 0.5 + new[1][k] * 0.5 for k in params}
    for name in params:
        np.testing.assert_allclose(dp.params[name], params[name], rtol=0, atol=1e-12, err_msg=name)
    assert dp.timing["round_trips"] == 2 * 2 and dp.timing["steps"] == 2 * 4  # one round trip per 2 steps


def test_batch_norm_is_refused_clearly(client):
    model = Model([Dense(4), BatchNorm(), Dense(3)], input_shape=(4,), name="bn")
    with pytest.raises(GraphcError, match="batch-norm running statistics"):
        gd.DataParallelTrainer(client, model, SGD(lr=0.1))


def test_unknown_worker_is_refused(client, shared_cache):
    X, y = tiny_data()
    dp = gd.DataParallelTrainer(ready(client), tiny_model(), SGD(lr=LR), workers=["tcp://127.0.0.1:1"],
                                cache_dir=shared_cache)
    with pytest.raises(gd.DistributedError, match="not in the cluster"):
        dp.fit(X, y, epochs=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(epochs=1, batch_size=0), "batch_size must be a positive integer"),
    (dict(epochs=1, validation_split=1.5), "validation_split"),
])
def test_bad_fit_arguments_are_refused_before_any_work(client, shared_cache, kwargs, match):
    X, y = tiny_data()
    dp = gd.DataParallelTrainer(client, tiny_model(), SGD(lr=LR), cache_dir=shared_cache)
    with pytest.raises(GraphcError, match=match):
        dp.fit(X, y, **kwargs)
    assert dp.epoch == 0 and dp._actors == []
