"""How a dataset is split over workers, and the gradient program each worker runs.

Layout: global minibatch i is rows [i*B, (i+1)*B) of the (unshuffled)
training set, as in `Trainer.fit(shuffle=False)`.  Each batch is cut into k
nearly equal parts; part j goes to worker j.  A worker's shard is the
concatenation of its parts, so its local batch i is one contiguous slice, and
the k local batches of step i together are exactly the single-process batch i.
That is what makes data-parallel training equal single-process training.
"""
import os
import time

import numpy as np

from graphc.errors import GraphcError


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


class ShardWorker:
    """A Dask actor holding one shard: it computes the shard's gradient for the
    parameters it is sent (synchronous mode), or runs H local steps (local SGD)."""

    def __init__(self, model, optimizer, X, y, counts, index, seed, shuffle, backend, cache_dir):
        if cache_dir is not None:
            os.environ["GRAPHC_CACHE_DIR"] = str(cache_dir)
        from graphc.backends import compile as compile_graph
        self.model, self.optimizer, self.X, self.y = model, optimizer, X, y
        self.counts, self.index, self.seed, self.shuffle, self.backend = counts, index, seed, shuffle, backend
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        graph, self.grad_keys = gradient_graph(model)
        self.program = compile_graph(graph, backend)
        self.local_step = None  # local SGD's own compiled step, made on first use
        self._order_epoch, self._order = None, None

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

    def gradients(self, params, epoch, b):
        """(n, mean loss, accuracy, {param: gradient of the mean loss}, compute seconds, CPU seconds)
        on local batch b.  CPU seconds (this thread's) show the compute a busy machine hides."""
        start, cpu = time.perf_counter(), time.thread_time()
        feeds = self._feeds(epoch, b)
        out = self.program({**feeds, **params})
        grads = {name: out[key] for name, key in self.grad_keys.items()}
        accuracy = self.model.loss.accuracy(out["output"], feeds["y"])
        return (int(self.counts[b]), float(out["loss"]), accuracy, grads, time.perf_counter() - start,
                time.thread_time() - cpu)

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
