"""Data-parallel training on a dask.distributed cluster.

Design (no client in the data path): each worker holds one shard and a copy
of the training state in a Dask actor (`ShardWorker`).  Once per epoch the
client sends every actor the state (parameters, optimizer slots, step count,
optimizer host state) and asks it to run the epoch.  Every step, each worker
computes its shard's gradient with the compiled forward+backward program and
sends it, as one contiguous buffer, straight to the other workers' actors
(graphc.distributed.exchange); each worker averages the k gradients weighted
by rows in worker order and applies the same compiled optimizer update.  So
the parameters are never broadcast per step, the update is identical on every
worker (a digest of the state is compared at each epoch end, and the client
re-sends its copy at each epoch start), and a step moves (k-1) gradient
buffers out of and into each worker: one hop, no scheduler, no client.  At
the end of the epoch worker 0 returns its state, so checkpoints are ordinary
`Trainer.save` checkpoints.

Local SGD (`sync_every=H`): each worker takes H optimizer steps on its own
batches from the averaged parameters, then the client averages the returned
parameters.  One round trip per H steps; the result no longer equals
single-process training (each worker follows its own gradient for H steps,
and each keeps its own optimizer slots, which are not checkpointed).

A worker lost mid-run stops training with a DistributedError that names it;
the trainer keeps the state of the last finished epoch (the last checkpoint
stays), and `fit(..., resume=True)` continues from it on the workers that are
left (the shards are laid out again).  Gradients are never averaged over
fewer shards than the step needs.
"""
import math
import os
import time

import numpy as np

from graphc.errors import GraphcError, NumericError
from graphc.distributed.exchange import ExchangeAborted
from graphc.distributed.shards import ShardWorker, layout, update_graph
from graphc.runtime import content_hash
from graphc.train.fit import Trainer, _check_fit_args, _progress
from graphc.train.history import History
from graphc.train.step import Step

START_TIMEOUT_S = 900  # seconds for a worker to receive its shard and build its gradient program


class DistributedError(GraphcError):
    """A distributed run could not go on: a worker was lost or failed."""


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
        # steps: optimizer steps; round_trips: calls to the workers (one per epoch, or per H steps in
        # local SGD); worker_*: the slowest worker's compute (wall, thread CPU, whole-process CPU);
        # exchange_s: waiting for and averaging the other workers' gradients; bytes: sent between
        # workers (through the client in local SGD); drift: epochs whose workers' states differed.
        self.timing = {"steps": 0, "round_trips": 0, "step_s": 0.0, "worker_s": 0.0, "worker_cpu_s": 0.0,
                       "worker_process_cpu_s": 0.0, "exchange_s": 0.0, "update_s": 0.0, "bytes": 0, "drift": 0}
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
        if self.sync_every == 1 and len(actors) > 1:
            calls = [(address, actor.connect(actors)) for address, actor, _ in self._actors]
            self._gather(calls, "connecting to the other workers")
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
        sums = {"n": 0.0, "loss": 0.0}
        if self.sync_every == 1:
            self._sync_epoch(len(counts), sums)
        else:
            batches = range(len(counts))
            for first in range(0, len(counts), self.sync_every):
                self._local_round(list(batches[first:first + self.sync_every]), sums)
        metrics = {"loss": sums["loss"] / sums["n"]}
        if "accuracy" in sums:  # None from the loss: a regression, no accuracy
            metrics["accuracy"] = sums["accuracy"] / sums["n"]
        if val is not None:
            metrics.update({"val_" + k: v for k, v in self.evaluate(*val).items()})
        metrics["lr"] = float(self.optimizer.values(max(self.step.steps - 1, 0)).get("lr", math.nan))
        return metrics

    def _sync_epoch(self, n_batches, sums):
        """One epoch on the workers (they exchange gradients among themselves every step)."""
        start, first = time.perf_counter(), self.step.steps
        state = {k: np.array(v) for k, v in self.step.params.items()}
        opt_state = self.optimizer.state_dict()
        calls = [(address, actor.run_epoch(state, first, opt_state, self.epoch, n_batches))
                 for address, actor, _ in self._actors]
        results = self._epoch_results(calls, first, n_batches)
        lead = results[0]
        self.step.compiled.hold(lead["state"])
        self.step.steps = lead["steps"]
        t = self.timing
        t["round_trips"] += 1
        t["drift"] += len({r["digest"] for r in results}) > 1  # re-synced from worker 0 at the next epoch
        done = len(lead["rows"])
        t["steps"] += done
        t["step_s"] += time.perf_counter() - start
        for key, source in (("worker_s", "compute_s"), ("worker_cpu_s", "cpu_s"), ("exchange_s", "wait_s"),
                            ("update_s", "update_s"), ("worker_process_cpu_s", "process_cpu_s")):
            t[key] += max(r["timing"][source] for r in results)
        t["bytes"] += sum(r["timing"]["sent_bytes"] for r in results)
        for total, loss, correct in lead["rows"]:
            sums["n"] += total
            sums["loss"] += loss * total
            if correct is not None:
                sums["accuracy"] = sums.get("accuracy", 0.0) + correct
        if lead["stopped"] is not None:
            b, loss = lead["stopped"]
            raise NumericError(f"training stopped: the loss became {loss} at step {self.step.steps + 1} "
                               f"(epoch {self.epoch + 1}, batch {b + 1}); the parameters are those from before "
                               "that step; lower the learning rate or check the data.")

    def _epoch_results(self, calls, first, n_batches):
        """Every worker's epoch result; on the first failure, stop the others and name the lost worker."""
        what = f"training epoch {self.epoch + 1} (steps {first + 1} to {first + n_batches})"
        self.client.sync(_until_all_done_or_one_failed, [call for _, call in calls])
        pending = {i: c for i, c in enumerate(calls) if not c[1].done()}
        failed = [i for i, (_, call) in enumerate(calls) if call.done() and _failed(call)]
        if failed:
            self._abort(pending, calls[failed[0]][0])
            lost = [a for a, call in calls if call.done() and _failed(call, OSError)]
            broken = [a for a, call in calls if call.done() and _failed(call) and not _failed(call, ExchangeAborted)]
            address = (lost or broken or [calls[failed[0]][0]])[0]
            try:
                self._wait(address, dict(calls)[address].result, what)
            except DistributedError:
                raise
            except GraphcError as err:  # raised by the worker's own code (e.g. a peer it could not reach)
                raise DistributedError(f"worker {address} failed while {what}: {err}") from None
        return [call.result() for _, call in calls]

    def _abort(self, pending, culprit):
        """Wake the workers still in the epoch (waiting for a gradient that will not come), and let them end."""
        for _, (address, call) in pending.items():
            if address != culprit and not call.done():
                try:
                    next(actor for a, actor, _ in self._actors if a == address).abort(f"worker {culprit} failed")
                except Exception:  # noqa: BLE001 -- a worker that is gone cannot be woken
                    pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(call.done() for _, (_, call) in pending.items()):
            time.sleep(0.01)

    def _trainable(self):
        held = self.step.params
        return {name: held[name] for name in self.model.trainable()}

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
        self._count(start, tick, results, params, len(batches))
        sums["n"] += total
        sums["loss"] += sum(r[1] for r in results)
        if results[0][2] is not None:
            sums["accuracy"] = sums.get("accuracy", 0.0) + sum(r[2] for r in results)

    def _count(self, start, tick, results, params, steps):
        """Per local-SGD round trip: the client's wall time, the slowest worker's wall and CPU time, the
        update, and the bytes (parameters out and back, through the client)."""
        t = self.timing
        t["steps"] += steps
        t["round_trips"] += 1
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


async def _until_all_done_or_one_failed(calls):
    """Runs on the client's event loop: returns when every actor call is done, or one has failed."""
    import asyncio

    async def outcome(call):
        await call
    tasks = [asyncio.ensure_future(outcome(call)) for call in calls]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in tasks:
        if task.done():
            task.exception()  # retrieved: the error is read again from the call itself
        else:
            task.cancel()


def _failed(call, kind=Exception):
    """Whether a finished actor call raised (an exception of `kind`).  No timeout: with 0,
    Dask's sync would time out before even a finished call's result is read."""
    try:
        call.result()
    except kind:
        return True
    except Exception:  # noqa: BLE001 -- another kind of failure
        return False
    return False


def fit(client, model, X, y, optimizer, epochs, seed=0, backend="numba", workers=None, cache_dir=None,
        sync_every=1, **fit_args):
    """Data-parallel `fit` on the cluster behind `client`; returns the DataParallelTrainer."""
    trainer = DataParallelTrainer(client, model, optimizer, seed=seed, backend=backend, workers=workers,
                                  cache_dir=cache_dir, sync_every=sync_every)
    trainer.fit(X, y, epochs, **fit_args)
    return trainer
