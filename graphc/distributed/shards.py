"""How a dataset is split over workers, and the gradient program each worker runs.

Layout: global minibatch i is rows [i*B, (i+1)*B) of the (unshuffled)
training set, as in `Trainer.fit(shuffle=False)`.  Each batch is cut into k
nearly equal parts; part j goes to worker j.  A worker's shard is the
concatenation of its parts, so its local batch i is one contiguous slice, and
the k local batches of step i together are exactly the single-process batch i.
That is what makes data-parallel training equal single-process training.
"""
import hashlib
import os
import time

import numpy as np

from graphc.distributed.exchange import Inbox, flatten, unflatten, weighted_mean
from graphc.errors import GraphcError
from graphc.frontend import dsl as F
from graphc.ir.graph import Graph

GRAD_PREFIX = "grad."  # input grad.<param> of the update graph: the averaged gradient of <param>


def layout(n, batch_size, k):
    """(rows, counts): rows[j] the row indices of worker j's shard; counts[i, j]
    how many rows worker j holds of global batch i."""
    starts = range(0, n, batch_size)
    counts = np.zeros((len(starts), k), dtype=np.int64)
    rows = [[] for _ in range(k)]
    for i, start in enumerate(starts):
        parts = np.array_split(np.arange(start, min(start + batch_size, n)), k)
        for j, part in enumerate(parts):
            rows[j].append(part)
            counts[i, j] = len(part)
    return [np.concatenate(r) if r else np.zeros(0, np.int64) for r in rows], counts


def gradient_graph(model):
    """The model's training graph plus the gradient of its loss w.r.t. every
    trainable parameter: forward and backward, no update."""
    from graphc.transform.autodiff import grad
    trainable = model.trainable()
    g = grad(model.graph(True), loss="loss", wrt=trainable)
    by_node = {node: key for key, node in g.outputs.items()}
    return g, {name: by_node[g.grads[name]] for name in trainable}


def update_graph(model):
    """A graph whose loss sum(p * G) has gradient G for each trainable p (exactly:
    the backward pass multiplies G by ones), so `Step` on it applies the
    optimizer to a gradient fed in as input `grad.<param>`."""
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


def digest(arrays):
    """A hash of the arrays' names and bytes: equal on every worker iff their states are."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).view(np.uint8).reshape(-1))
    return h.hexdigest()


class ShardWorker:
    """A Dask actor holding one shard and a copy of the training state.

    Synchronous mode (`run_epoch`): every step it computes its shard's gradient,
    exchanges it directly with the other workers (graphc.distributed.exchange),
    averages all k in worker order and applies the same compiled update as
    every other worker.  Local SGD (`local_round`): H local steps, then the
    client averages the parameters."""

    def __init__(self, model, optimizer, X, y, counts, index, seed, shuffle, backend, cache_dir):
        if cache_dir is not None:
            os.environ["GRAPHC_CACHE_DIR"] = str(cache_dir)
        from graphc.backends import compile as compile_graph
        self.model, self.optimizer, self.X, self.y = model, optimizer, X, y
        self.counts, self.index, self.seed, self.shuffle, self.backend = counts, index, seed, shuffle, backend
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        graph, self.grad_keys = gradient_graph(model)
        self.program = compile_graph(graph, backend)
        self.names = list(self.grad_keys)  # the trainable params, in the order of the gradient buffer
        self.shapes = [(GRAD_PREFIX + n, tuple(model.params[n].shape)) for n in self.names]
        self.update = None  # the synchronous mode's compiled update, made on first use
        self.local_step = None  # local SGD's own compiled step, made on first use
        self.peers, self.inbox, self._sends = {}, Inbox(), []
        self._order_epoch, self._order = None, None

    # ----- synchronous data parallelism: gradients exchanged between workers -----------
    def connect(self, actors):
        """Keep proxies to the other workers' actors (actors[j] is worker j's)."""
        self.peers = {}
        for j, actor in enumerate(actors):
            if j == self.index:
                continue
            actor._try_bind_worker_client()
            actor._future = None  # a lost peer then fails at once (OSError), never waits for a re-created actor
            self.peers[j] = actor
        return sorted(self.peers)

    async def put(self, step, sender, n, loss, accuracy, gradient):
        """A peer's gradient for `step` (runs on the event loop, beside a busy actor thread)."""
        self.inbox.put(step, sender, (n, loss, accuracy, gradient))

    async def abort(self, why):
        """The client stops this epoch: a blocked `run_epoch` raises ExchangeAborted."""
        self.inbox.abort(why)

    def run_epoch(self, state, steps, optimizer_state, epoch, n_batches):
        """Train one epoch from `state` (params and optimizer slots) at global step `steps`.
        Returns the per-step metrics, timing, a digest of the final state (equal on every
        worker), the state itself from worker 0, and `stopped` = (batch, loss) if the global
        loss became non-finite (the state is then the one from before that step)."""
        from graphc.train.step import Step
        if self.update is None:
            self.update = Step(update_graph(self.model), state, self.optimizer, loss="loss", backend=self.backend)
        self.update.compiled.hold(state)
        self.update.steps = steps
        self.optimizer.load_state_dict(optimizer_state)
        rows, stopped, process_cpu = [], None, time.process_time()
        timing = {"compute_s": 0.0, "cpu_s": 0.0, "wait_s": 0.0, "update_s": 0.0, "sent_bytes": 0}
        self._sends = []
        for b in range(n_batches):
            row = self._sync_step(epoch, b, timing)
            if not np.isfinite(row[1]):
                stopped = (b, row[1])
                break
            rows.append(row)
        for j, step, sent in self._sends:
            try:
                sent.result()
            except OSError as err:
                raise GraphcError(f"worker {self.peers[j]._address} (shard {j}) could not be reached at step "
                                  f"{step + 1}: {err}") from None
        held = self.update.params
        timing["process_cpu_s"] = time.process_time() - process_cpu  # all threads: sending, receiving too
        return {"rows": rows, "stopped": stopped, "steps": self.update.steps, "timing": timing,
                "digest": digest(held), "state": {k: np.array(v) for k, v in held.items()} if self.index == 0 else None}

    def _sync_step(self, epoch, b, timing):
        start, cpu = time.perf_counter(), time.thread_time()
        step, held = self.update.steps, self.update.params
        n = int(self.counts[b])
        if n:
            feeds = self._feeds(epoch, b)
            out = self.program({**feeds, **{name: held[name] for name in self.names}})
            gradient = flatten({name: out[key] for name, key in self.grad_keys.items()}, self.names, self.model.dtype)
            mine = (n, float(out["loss"]), self.model.loss.accuracy(out["output"], feeds["y"]), gradient)
        else:  # a short last batch left this shard nothing
            mine = (0, 0.0, None, np.zeros(0, self.model.dtype))
        timing["compute_s"] += time.perf_counter() - start
        timing["cpu_s"] += time.thread_time() - cpu
        tick = time.perf_counter()
        # Not waited for here: the peer's own message proves the exchange works, and waiting for each
        # reply costs a thread handoff per step (~3 ms of 18 measured).  Checked at the epoch's end;
        # a lost peer is noticed by the client, which wakes this worker (abort).
        self._sends += [(j, step, peer.put(step, self.index, *mine)) for j, peer in self.peers.items()]
        messages = self.inbox.take(step, list(self.peers))
        timing["sent_bytes"] += len(self.peers) * mine[3].nbytes
        messages[self.index] = mine
        total, loss, correct, averaged = weighted_mean(messages)
        timing["wait_s"] += time.perf_counter() - tick
        if np.isfinite(loss):
            tick = time.perf_counter()
            self.update(unflatten(averaged, self.shapes))
            timing["update_s"] += time.perf_counter() - tick
        return total, loss, correct

    # ----- local SGD -------------------------------------------------------------------
    def _feeds(self, epoch, b):
        if self._order_epoch != epoch:
            self._order_epoch = epoch
            self._order = (np.random.default_rng([self.seed, epoch, self.index, 3]).permutation(len(self.X))
                           if self.shuffle else np.arange(len(self.X)))
        idx = self._order[self.offsets[b]:self.offsets[b + 1]]
        feeds = {"X": self.X[idx], "y": self.y[idx]}
        rng = np.random.default_rng([self.seed, epoch, self.index, b, 5])  # dropout masks: stateless, resumable
        for name, spec in self.model.noise.items():
            feeds[name] = spec.draw(rng, len(idx))
        return feeds

    def local_round(self, params, optimizer_state, step, epoch, batches):
        """Local SGD: start from `params`, take one optimizer step per local batch
        in `batches`, and return (n, loss sum, accuracy sum, new params, seconds, CPU seconds)."""
        start, cpu = time.perf_counter(), time.thread_time()
        if self.local_step is None:
            from graphc.train.step import Step
            self.local_step = Step(self.model.graph(True), params, self.optimizer, loss="loss", backend=self.backend)
        self.local_step.compiled.hold(params)  # the optimizer's slots stay this worker's own
        self.local_step.steps = step
        self.optimizer.load_state_dict(optimizer_state)
        n = loss_sum = acc_sum = 0.0
        for b in batches:
            if not self.counts[b]:
                continue  # a short last batch may leave this shard nothing
            feeds = self._feeds(epoch, b)
            out = self.local_step(feeds)
            m = len(feeds["y"])
            loss = float(out["loss"])
            if not np.isfinite(loss):
                raise GraphcError(f"local SGD on shard {self.index}: the loss became {loss} at epoch {epoch + 1}, "
                                  f"batch {b + 1}")
            n, loss_sum = n + m, loss_sum + loss * m
            accuracy = self.model.loss.accuracy(out["output"], feeds["y"])
            acc_sum = None if accuracy is None else acc_sum + accuracy * m
        held = self.local_step.params
        new = {name: np.array(held[name]) for name in params}
        return n, loss_sum, acc_sum, new, time.perf_counter() - start, time.thread_time() - cpu
