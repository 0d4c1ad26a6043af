"""Data-parallel training on a dask.distributed cluster.

Design (one round trip per step): the client holds the parameters and the
optimizer (a compiled update step); each worker holds one shard in a Dask
actor (`ShardWorker`).  Each step the client calls every actor with the
current parameters; each returns its shard's gradient from the compiled
forward+backward program; the client averages them weighted by rows, in
worker order, and applies the optimizer's update once.  The update therefore
cannot drift between workers, the optimizer state exists once (so checkpoints
are `Trainer.save` checkpoints), and a step costs one client<->worker round
trip carrying 2 x (parameter bytes) per worker.  An all-reduce among workers
would also need a round trip per step for Dask's scheduler to be involved,
and would make the client's copy a second truth.

Local SGD (`sync_every=H`): each worker takes H optimizer steps on its own
batches from the averaged parameters, then the client averages the returned
parameters.  One round trip per H steps; the result no longer equals
single-process training (each worker follows its own gradient for H steps,
and each keeps its own optimizer slots, which are not checkpointed).

A worker lost mid-run stops training with a DistributedError that names it;
the last checkpoint stays, and `fit(..., resume=True)` continues from it on
the workers that are left (the shards are laid out again).  Gradients are
never averaged over fewer shards than the step needs.
"""
import math
import os
import time

import numpy as np

from graphc.frontend import dsl as F
from graphc.errors import GraphcError, NumericError
from graphc.ir.graph import Graph
from graphc.distributed.shards import ShardWorker, layout
from graphc.runtime import content_hash
from graphc.train.fit import Trainer, _check_fit_args, _progress
from graphc.train.history import History
from graphc.train.step import Step

START_TIMEOUT_S = 900  # seconds for a worker to receive its shard and build its gradient program
GRAD_PREFIX = "grad."  # input grad.<param>: the averaged gradient of <param>


class DistributedError(GraphcError):
    """A distributed run could not go on: a worker was lost or failed."""


def update_graph(model):
    """A graph whose loss sum(p * G) has gradient G for each trainable p (exactly:
    the backward pass multiplies G by ones), so `Step` on it applies the
    optimizer to a gradient fed in as input `grad/<param>`."""
    graph = Graph(f"{model.name}_dp_update")
    total = None
    clash = [n for n in model.trainable() if GRAD_PREFIX + n in model.params]
    if clash:
        raise GraphcError(f"distributed fit: parameter names {clash} clash with gradient inputs {GRAD_PREFIX}<param>; "
                          "rename the layer")
    for name in model.trainable():
        spec = model.params[name]
        p = F.Value(graph, graph.add("param", [], {"shape": spec.shape, "dtype": model.dtype}, name=name))
        g = F.Value(graph, graph.add("input", [], {"shape": spec.shape, "dtype": model.dtype}, name=GRAD_PREFIX + name))
        term = F.sum(p * g)
        total = term if total is None else total + term
    graph.set_output(total.node, "loss")
    return graph.validate()


class DataParallelTrainer(Trainer):
    """A Trainer whose `fit` runs on a Dask cluster.  `predict`, `evaluate`,
    `params`, `history`, `save` and `load` are Trainer's and run on the client."""

    def __init__(self, client, model, optimizer, seed=0, backend="numba", workers=None, cache_dir=None,
                 sync_every=1):
        if any(not s.trainable for s in model.params.values()):
            raise GraphcError(f"distributed fit: model {model.name!r} has batch-norm running statistics; each "
                              "worker would normalize with its own shard's statistics (no synchronized batch "
                              "norm yet): use LayerNorm, or train in one process")
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise GraphcError(f"distributed fit: sync_every must be a positive integer, got {sync_every!r}")
        from graphc.backends import compile as compile_graph
        self.client, self.model, self.optimizer, self.seed = client, model, optimizer, seed
        self.backend, self.cache_dir, self.sync_every = backend, cache_dir, sync_every
        self.workers = workers
        self.rng = np.random.default_rng(seed)  # unused by the loop; kept so checkpoints match fit's
        self.step = Step(update_graph(model), model.init(seed), optimizer, loss="loss", backend=backend)
        self._eval = compile_graph(model.graph(False), backend)
        self.history, self.epoch, self.early_stopping = History(), 0, None
        self._noise = model.noise
        self.graph_hash = content_hash(model.graph(True).to_text(), self.step.graph.to_text())
        self.timing = {"steps": 0, "step_s": 0.0, "worker_s": 0.0, "worker_cpu_s": 0.0, "update_s": 0.0, "bytes": 0}
        self._actors, self._pending = [], []

    # ----- the cluster side -------------------------------------------------------------
    def _start(self, X, y, batch_size, shuffle):
        addresses = self._addresses()
        rows, counts = layout(len(X), batch_size, len(addresses))
        futures = self._pending = []  # released by _stop, even if starting fails half-way
        for j, address in enumerate(addresses):
            shard = self._wait(address, lambda: self.client.scatter([X[rows[j]], y[rows[j]]], workers=[address],
                                                                    hash=False, timeout=60), "receiving its shard")
            futures.append(self.client.submit(
                ShardWorker, self.model, self.optimizer, shard[0], shard[1], counts[:, j], j, self.seed, shuffle,
                self.backend, self.cache_dir, workers=[address], allow_other_workers=False, actor=True, pure=False))
        actors = []
        for address, future in zip(addresses, futures):
            # generous: a cold kernel cache means compiling the gradient program first
            actor = self._wait(address, lambda: future.result(timeout=START_TIMEOUT_S))
            # With its creation future attached, a call to an actor whose worker died waits for Dask to
            # recreate it -- on a worker restricted to the dead address, i.e. forever.  Detached, the
            # call fails at once with OSError, which we report.
            actor._future = None
            actors.append(actor)
        self._actors = list(zip(addresses, actors, futures))
        return counts

    def _addresses(self):
        known = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
        if self.workers is None:
            if not known:
                raise DistributedError("distributed fit: the cluster has no workers")
            return known
        missing = [w for w in self.workers if w not in known]
        if missing:
            raise DistributedError(f"distributed fit: workers {missing} are not in the cluster ({known})")
        return list(self.workers)

    def _stop(self):
        for future in self._pending:
            future.release()  # the actors and their shards go away with their futures
        self._actors, self._pending = [], []

    def _wait(self, address, result, what="starting its shard"):
        try:
            return result()
        except OSError as err:
            raise DistributedError(f"worker {address} was lost while {what} ({type(err).__name__}: {err}); "
                                   "training stopped, nothing was averaged over the missing shard. Rerun "
                                   "fit with resume=True to continue from the last checkpoint on the workers "
                                   "that are left") from None
        except GraphcError:
            raise
        except Exception as err:  # an error raised inside the worker's code
            raise DistributedError(f"worker {address} failed while {what}: {type(err).__name__}: {err}") from None

    def _gather(self, calls, what):
        return [self._wait(address, call.result, what) for address, call in calls]

    # ----- training ---------------------------------------------------------------------
    def fit(self, X, y, epochs, batch_size=None, validation_split=0.0, validation_data=None, shuffle=False,
            checkpoint=None, checkpoint_every=1, resume=False, progress=None, callback=None):
        """Train until `epochs` epochs are done in all; returns the History.

        `batch_size` is the global batch (all workers together; default: the
        whole training set, i.e. full-batch gradient descent).  `shuffle`
        shuffles each shard within itself every epoch (default off: then the
        run equals `Trainer.fit(shuffle=False)` with the same batch size).
        Validation, checkpoints, resume, progress and callback are as in fit."""
        _check_fit_args(epochs, 1 if batch_size is None else batch_size, validation_split, checkpoint_every)
        X, y = self._as_data(X, y)
        (X, y), val = self._split(X, y, validation_split, validation_data)
        batch_size = len(X) if batch_size is None else batch_size
        if not len(X):
            raise GraphcError("distributed fit: no training samples")
        if resume and checkpoint is not None and os.path.exists(checkpoint):
            self.load(checkpoint)
        bar = _progress(epochs, self.epoch, progress)
        try:
            counts = self._start(X, y, batch_size, shuffle)
            for _ in range(self.epoch, epochs):
                metrics = self._epoch(counts, val)
                self._end_epoch(metrics)
                if checkpoint is not None and self.epoch % checkpoint_every == 0:
                    self.save(checkpoint)
                if callback is not None:
                    callback(self, metrics)
                if not bar.disable:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})
                    bar.update(1)
        finally:
            bar.close()
            self._stop()
        if checkpoint is not None:
            self.save(checkpoint)
        return self.history

    def _epoch(self, counts, val):
        batches = range(len(counts))
        sums = {"n": 0.0, "loss": 0.0}
        if self.sync_every == 1:
            for b in batches:
                self._sync_step(counts, b, sums)
        else:
            for first in range(0, len(counts), self.sync_every):
                self._local_round(list(batches[first:first + self.sync_every]), sums)
        metrics = {"loss": sums["loss"] / sums["n"]}
        if "accuracy" in sums:  # None from the loss: a regression, no accuracy
            metrics["accuracy"] = sums["accuracy"] / sums["n"]
        if val is not None:
            metrics.update({"val_" + k: v for k, v in self.evaluate(*val).items()})
        metrics["lr"] = float(self.optimizer.values(max(self.step.steps - 1, 0)).get("lr", math.nan))
        return metrics

    def _trainable(self):
        held = self.step.params
        return {name: held[name] for name in self.model.trainable()}

    def _sync_step(self, counts, b, sums):
        start = time.perf_counter()
        params = self._trainable()
        calls = [(address, actor.gradients(params, self.epoch, b))
                 for (address, actor, _), n in zip(self._actors, counts[b]) if n]
        results = self._gather(calls, f"computing the gradient for step {self.step.steps + 1} "
                                      f"(epoch {self.epoch + 1}, batch {b + 1})")
        total = sum(r[0] for r in results)
        loss = sum(r[0] * r[1] for r in results) / total
        if not math.isfinite(loss):
            raise NumericError(f"training stopped: the loss became {loss} at step {self.step.steps + 1} "
                               f"(epoch {self.epoch + 1}, batch {b + 1}); the parameters are those from before "
                               "that step; lower the learning rate or check the data.")
        averaged = {}
        for name in params:
            acc = None
            for n, _, _, grads, *_ in results:  # worker order: the same sum every run
                term = grads[name] * (n / total)
                acc = term if acc is None else acc + term
            averaged[GRAD_PREFIX + name] = acc
        tick = time.perf_counter()
        self.step(averaged)
        self._count(start, tick, results, params)
        sums["n"] += total
        sums["loss"] += loss * total
        if results[0][2] is not None:
            sums["accuracy"] = sums.get("accuracy", 0.0) + sum(r[0] * r[2] for r in results)

    def _local_round(self, batches, sums):
        start = time.perf_counter()
        params = self._trainable()
        state = self.optimizer.state_dict()
        calls = [(address, actor.local_round(params, state, self.step.steps, self.epoch, batches))
                 for address, actor, _ in self._actors]
        results = [r for r in self._gather(calls, f"local steps {self.step.steps + 1}..{self.step.steps + len(batches)} "
                                                  f"(epoch {self.epoch + 1})") if r[0]]
        total = sum(r[0] for r in results)
        averaged = {}
        for name in params:
            acc = None
            for n, _, _, new, *_ in results:
                term = new[name] * (n / total)
                acc = term if acc is None else acc + term
            averaged[name] = acc
        tick = time.perf_counter()
        self.step.compiled.hold(averaged)  # the client's optimizer slots are unused in local SGD
        self.step.steps += len(batches)
        self._count(start, tick, results, params)
        sums["n"] += total
        sums["loss"] += sum(r[1] for r in results)
        if results[0][2] is not None:
            sums["accuracy"] = sums.get("accuracy", 0.0) + sum(r[2] for r in results)

    def _count(self, start, tick, results, params):
        """Per round trip: the client's wall time, the slowest worker's wall and CPU time, the update, bytes."""
        t = self.timing
        t["steps"] += 1
        t["step_s"] += time.perf_counter() - start
        t["worker_s"] += max(r[4] for r in results)
        t["worker_cpu_s"] += max(r[5] for r in results)
        t["update_s"] += time.perf_counter() - tick
        t["bytes"] += 2 * len(results) * sum(p.nbytes for p in params.values())

    def _end_epoch(self, metrics):
        self.epoch += 1
        self.history.append(metrics)
        self.optimizer.epoch_end(self.epoch, metrics)
        return False


def fit(client, model, X, y, optimizer, epochs, seed=0, backend="numba", workers=None, cache_dir=None,
        sync_every=1, **fit_args):
    """Data-parallel `fit` on the cluster behind `client`; returns the DataParallelTrainer."""
    trainer = DataParallelTrainer(client, model, optimizer, seed=seed, backend=backend, workers=workers,
                                  cache_dir=cache_dir, sync_every=sync_every)
    trainer.fit(X, y, epochs, **fit_args)
    return trainer
