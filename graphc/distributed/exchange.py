"""Gradient exchange between the data-parallel workers, without the client.

Every worker sends its shard's gradient, as ONE contiguous buffer, straight to
every other worker's actor (worker -> worker: Dask's actor call on a worker
goes over that worker's own connection to the peer, never through the
scheduler or the client).  The receiving side is an `async` actor method, so
it runs on the worker's event loop while the actor's one thread is busy
computing or waiting; it only files the message in an `Inbox`.

Each worker then averages the k gradients itself, in worker order with the
same arithmetic, and applies the same compiled update: the parameters stay
identical on every worker without being broadcast.  Per step a worker sends
(k-1) and receives (k-1) gradient buffers: one hop, P x dtype bytes each.
"""
import threading
import time

import numpy as np

from graphc.errors import GraphcError

PEER_TIMEOUT_S = 600.0  # a peer silent this long is taken for lost (the client normally notices first)


class ExchangeAborted(GraphcError):
    """The client stopped the epoch (another worker was lost)."""


class Inbox:
    """Messages from the peers, keyed by (step, sender); filled on the event loop,
    read on the actor thread."""

    def __init__(self):
        self._messages, self._aborted = {}, None
        self._ready = threading.Condition()

    def put(self, step, sender, message):
        with self._ready:
            self._messages[(step, sender)] = message
            self._ready.notify_all()

    def abort(self, why):
        with self._ready:
            self._aborted = why
            self._ready.notify_all()

    def reset(self):
        with self._ready:
            self._messages, self._aborted = {}, None

    def take(self, step, senders, timeout=PEER_TIMEOUT_S):
        """The messages of `step` from every sender in `senders` (waits for them)."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                if self._aborted is not None:
                    raise ExchangeAborted(f"stopped at step {step + 1}: {self._aborted}")
                if all((step, j) in self._messages for j in senders):
                    return {j: self._messages.pop((step, j)) for j in senders}
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [j for j in senders if (step, j) not in self._messages]
                    raise GraphcError(f"no gradient from worker(s) {missing} for step {step + 1} in {timeout:.0f} s")
                self._ready.wait(left)


def flatten(arrays, names, dtype):
    """One contiguous buffer holding `arrays[name]` for `names`, in order."""
    sizes = [arrays[n].size for n in names]
    out = np.empty(sum(sizes), dtype=dtype)
    at = 0
    for name, size in zip(names, sizes):
        out[at:at + size] = arrays[name].reshape(-1)
        at += size
    return out


def unflatten(buffer, shapes):
    """Views into `buffer`, one per (name, shape) in `shapes`."""
    out, at = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = buffer[at:at + size].reshape(shape)
        at += size
    return out


def weighted_mean(messages):
    """sum_j (n_j / n) g_j over the senders with rows, in sender order: the same
    arithmetic (and so the same bits) on every worker.  messages: {j: (n, loss, acc, g)}."""
    live = [messages[j] for j in sorted(messages) if messages[j][0]]
    total = sum(m[0] for m in live)
    if len(live) == 1:  # one shard (or one with rows): g * 1.0 == g exactly, so skip the copy
        n, loss, correct, g = live[0]
        return total, loss, None if correct is None else n * correct, g
    acc = term = None
    for n, _, _, g in live:  # in place: the same operations, and so the same bits, as acc + g * w
        if acc is None:
            acc = np.multiply(g, n / total)
        else:
            term = np.multiply(g, n / total, out=term)
            np.add(acc, term, out=acc)
    loss = sum(m[0] * m[1] for m in live) / total
    correct = None if live[0][2] is None else sum(m[0] * m[2] for m in live)
    return total, loss, correct, acc
