"""The peers of the whole-training-run benchmark (bench_fit.py): each trains one
workload for whole epochs, in its own process.

    .venv/bin/python benchmarks/fit_peers.py --peer graphc_fit --workload spiral   # alone: check, time, print JSON
    .venv/bin/python benchmarks/fit_peers.py --peer torch --workload digits --serve          # what bench_fit.py runs
    GRAPHC_CACHE_DIR=$(mktemp -d) .venv/bin/python benchmarks/fit_peers.py --startup --workload spiral  # cold start

Workloads (`WORKLOADS`):

    spiral  seed 004's spiral (graphc.train.datasets.spiral, seed 4, 300 points), 2 -> 100 ReLU -> 3,
            softmax cross-entropy + L2 1e-3 (0.5 * reg * sum W**2 over the weights, not the
            biases), full-batch SGD lr 1.0, float64: one epoch is one step
    digits  digits-like synthetic data (1437 x 64 in [0, 1], 10 classes, seeded; the shape
            of sklearn's digits training split), 64 -> 128 ReLU -> 10, cross-entropy, Adam
            lr 1e-3, batch 64, shuffled each epoch, float32: one epoch is 23 steps

Peers (`PEERS`), all starting from the same NumPy-made parameters (`init_params`):

    graphc_fit   graphc.train.Trainer(..., backend="numba").fit(X, y, epochs=trainer.epoch + k)
    graphc_step  the same Trainer's compiled step, trainer.step(feeds), in a bare Python loop
                 over the same minibatches (same generator, same permutations): fit's loop
                 overhead is the difference
    torch        PyTorch eager: nn.Sequential(Linear, ReLU, Linear), torch.optim.SGD / Adam,
                 torch.randperm minibatches by indexing, default threads; L2 is added to the
                 loss (0.5 * reg * sum W**2), like graphc's Model(weight_decay=...), so the
                 reported losses match (SGD(weight_decay=reg) would give the same updates but
                 leave the penalty out of the loss)
    numpy        NumPy by hand: forward, analytic backward, SGD / Adam update in place
    jax          jax.jit of the whole step (value_and_grad + a hand SGD / Adam update, no
                 optax), a Python loop over minibatches indexed on the host with NumPy

Every peer reads the epoch's mean loss (weighted by batch size, as fit's history
does), so the loss of every epoch is known.  graphc_fit, graphc_step, numpy and
jax shuffle with np.random.default_rng(seed).permutation each epoch, exactly
as Trainer.fit does, so their losses agree epoch by epoch; torch uses
torch.randperm (its own order), so on a shuffled workload only its loss's
trend is comparable.

Protocol (--serve): after setup and a check of CHECK_EPOCHS epochs the peer
prints one JSON line {"ready": true, "check": {"losses": [...]}, ...}, or
{"unavailable": why} when its library cannot be imported; then answers each
line {"epochs": k} with {"s": seconds for k more epochs, "loss": the last
epoch's loss}; {"quit": true} ends it.  Only protocol lines go to stdout.
"""
import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass

T_ENTER = time.time()

import numpy as np  # noqa: E402

PEERS = ("graphc_fit", "graphc_step", "torch", "numpy", "jax")
CHECK_EPOCHS = 3
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@dataclass(frozen=True)
class Workload:
    name: str
    label: str
    layers: tuple             # widths (D, H, K): Linear, ReLU, Linear
    optimizer: str            # "sgd" or "adam"
    lr: float
    batch: int                # minibatch size; = the data size for full-batch
    shuffle: bool
    weight_decay: float       # L2: 0.5 * weight_decay * sum(W**2) over the weight matrices
    dtype: str
    init: str                 # "lecture": 0.01 * randn; "he": randn * sqrt(2 / fan_in); biases 0
    n: int                    # training points
    epochs_per_round: int     # the default size of a timing round

    @property
    def steps_per_epoch(self):
        return -(-self.n // self.batch)

    def with_dtype(self, dtype):
        return Workload(**{**asdict(self), "dtype": dtype})

    def describe(self):
        d, h, k = self.layers
        opt = f"full-batch SGD lr {self.lr:g}" if self.optimizer == "sgd" and self.batch >= self.n else \
            f"{'Adam' if self.optimizer == 'adam' else 'SGD'} lr {self.lr:g}, batch {self.batch}" + \
            (", shuffled each epoch" if self.shuffle else "")
        l2 = f" + L2 {self.weight_decay:g}" if self.weight_decay else ""
        return (f"{self.n} points, {d} → {h} ReLU → {k}, cross-entropy{l2}, {opt}, {self.dtype}; "
                f"{self.steps_per_epoch} step{'s' if self.steps_per_epoch > 1 else ''} per epoch")


WORKLOADS = {
    "spiral": Workload("spiral", "spiral", (2, 100, 3), "sgd", 1.0, 300, False, 1e-3, "float64", "lecture", 300, 1000),
    "digits": Workload("digits", "digits-like", (64, 128, 10), "adam", 1e-3, 64, True, 0.0, "float32", "he", 1437, 40),
}


# ----- data and initial parameters ----------------------------------------------------
def make_data(wl, seed=0):
    """(X, y) of the workload: X float64 (cast by each peer to wl.dtype), y int64."""
    if wl.name == "spiral":
        from graphc.train.datasets import spiral
        X, y = spiral(np.random.default_rng(4))  # as examples/spiral.py does
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if wl.name == "digits":
        return digits_like(wl.n, wl.layers[0], wl.layers[-1], seed)
    raise ValueError(f"unknown workload {wl.name!r}")


def digits_like(n=1437, features=64, classes=10, seed=0):
    """Shaped like sklearn's digits (8x8 images, intensities 0..16, scaled to [0, 1]):
    one smooth random prototype per class plus noise, rounded to 0..16, and 10% of
    the labels redrawn at random.  The noise keeps the loss well away from 0 over a
    benchmark's few hundred epochs (about 6e-4 after 400; without it, 2e-6), so that
    softmax probabilities never approach the subnormals, where the peers that do not
    flush them (NumPy, torch) would slow down for a reason that is not the loop."""
    rng = np.random.default_rng([seed, 64])
    side = int(round(features ** 0.5))
    proto = rng.uniform(0, 16, (classes, side, side))
    proto = (proto + np.roll(proto, 1, 1) + np.roll(proto, 1, 2)) / 3  # a little spatial smoothness
    proto = np.where(proto > 7, proto, 0).reshape(classes, features)
    y = rng.integers(0, classes, n).astype(np.int64)
    X = np.clip(np.rint(proto[y] + rng.normal(0, 6.0, (n, features))), 0, 16) / 16.0
    flip = rng.random(n) < 0.1
    y[flip] = rng.integers(0, classes, int(flip.sum()))
    return X.astype(np.float64), y


def init_params(wl, seed=0):
    """W1, b1, W2, b2 (W (in, out), b (1, out)), float64, from one seeded generator."""
    rng = np.random.default_rng([seed, 1])
    out = {}
    for i, (a, c) in enumerate(zip(wl.layers[:-1], wl.layers[1:]), start=1):
        scale = 0.01 if wl.init == "lecture" else (2.0 / a) ** 0.5
        out[f"W{i}"] = rng.standard_normal((a, c)) * scale
        out[f"b{i}"] = np.zeros((1, c))
    return out


def load_inputs(args, wl):
    if args.data:
        z = np.load(args.data)
        X, y = z["X"], z["y"]
        params = {k[len("p_"):]: z[k] for k in z.files if k.startswith("p_")}
    else:
        X, y = make_data(wl, args.seed)
        params = init_params(wl, args.seed)
    X = np.ascontiguousarray(X, dtype=wl.dtype)
    y = np.ascontiguousarray(y, dtype=np.int64)
    return X, y, {k: np.ascontiguousarray(v, dtype=wl.dtype) for k, v in params.items()}


def save_inputs(path, wl, seed=0):
    X, y = make_data(wl, seed)
    np.savez(path, X=X, y=y, **{f"p_{k}": v for k, v in init_params(wl, seed).items()})


# ----- peers ----------------------------------------------------------------------------
class Peer:
    """run(k) trains k more epochs and returns the last epoch's mean loss."""
    version, info = "", {}

    def epoch(self):
        raise NotImplementedError

    def run(self, k):
        loss = None
        for _ in range(k):
            loss = self.epoch()
        return loss


def _graphc_trainer(wl, params, seed):
    from graphc.train import SGD, Adam, Dense, Model, Trainer
    d, h, k = wl.layers
    model = Model([Dense(h, activation="relu"), Dense(k)], input_shape=(d,), loss="cross_entropy",
                  weight_decay=wl.weight_decay, dtype=wl.dtype, name=wl.name)
    names = {"W1": "dense_1.W", "b1": "dense_1.b", "W2": "dense_2.W", "b2": "dense_2.b"}
    opt = SGD(lr=wl.lr) if wl.optimizer == "sgd" else Adam(lr=wl.lr, **ADAM)
    return Trainer(model, opt, seed=seed, backend="numba", params={names[k]: v for k, v in params.items()})


def _graphc_info(trainer):
    import graphc
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = None  # no parallel region has run in this process
    c = trainer.step.compiled
    return graphc.__version__, {
        "numba": numba.__version__, "threading_layer": layer,
        "threading_layer_config": numba.config.THREADING_LAYER, "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "uses_prange": "prange(" in (getattr(c, "source", "") or ""), "step_outputs": sorted(trainer.step.graph.outputs)}


class GraphcFit(Peer):
    def __init__(self, wl, X, y, params, seed):
        self.wl, self.X, self.y = wl, X, y
        self.trainer = _graphc_trainer(wl, params, seed)

    def run(self, k):
        t = self.trainer
        h = t.fit(self.X, self.y, epochs=t.epoch + k, batch_size=self.wl.batch, shuffle=self.wl.shuffle,
                  progress=False)
        return h["loss"][-1]

    def epoch(self):
        return self.run(1)

    def describe(self):
        self.version, self.info = _graphc_info(self.trainer)


class GraphcStep(Peer):
    """The Trainer's compiled step in a bare loop: the minibatches fit would make
    (same generator, same permutation per epoch), the epoch's loss, nothing else."""

    def __init__(self, wl, X, y, params, seed):
        self.wl, self.X, self.y = wl, X, y
        self.trainer = _graphc_trainer(wl, params, seed)
        self.rng = np.random.default_rng(seed)  # what Trainer.fit draws its permutations from

    def epoch(self):
        X, y, bs, n, step = self.X, self.y, self.wl.batch, len(self.X), self.trainer.step
        if bs >= n and not self.wl.shuffle:
            return float(step({"X": X, "y": y})["loss"])
        order = self.rng.permutation(n) if self.wl.shuffle else np.arange(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            total += float(step({"X": X[idx], "y": y[idx]})["loss"]) * len(idx)
        return total / n

    def describe(self):
        self.version, self.info = _graphc_info(self.trainer)


class TorchPeer(Peer):
    def __init__(self, wl, X, y, params, seed):
        import torch
        from torch import nn
        self.torch, self.wl = torch, wl
        dtype = getattr(torch, wl.dtype)
        d, h, k = wl.layers
        self.model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k)).to(dtype)
        with torch.no_grad():
            for layer, i in ((self.model[0], 1), (self.model[2], 2)):
                layer.weight.copy_(torch.from_numpy(params[f"W{i}"].T.copy()))
                layer.bias.copy_(torch.from_numpy(params[f"b{i}"].ravel().copy()))
        self.weights = [self.model[0].weight, self.model[2].weight]
        if wl.optimizer == "sgd":
            self.opt = torch.optim.SGD(self.model.parameters(), lr=wl.lr)
        else:
            self.opt = torch.optim.Adam(self.model.parameters(), lr=wl.lr, betas=(ADAM["beta1"], ADAM["beta2"]),
                                        eps=ADAM["eps"])
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.gen = torch.Generator().manual_seed(seed)
        self.version = torch.__version__
        self.info = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
                     "mkldnn": torch.backends.mkldnn.is_available(), "order": "torch.randperm"}

    def _step(self, xb, yb):
        F = self.torch.nn.functional
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(xb), yb)
        if self.wl.weight_decay:
            loss = loss + 0.5 * self.wl.weight_decay * sum((w * w).sum() for w in self.weights)
        loss.backward()
        self.opt.step()
        return loss.item()

    def epoch(self):
        X, y, bs, n = self.X, self.y, self.wl.batch, len(self.X)
        if bs >= n and not self.wl.shuffle:
            return self._step(X, y)
        perm = self.torch.randperm(n, generator=self.gen) if self.wl.shuffle else self.torch.arange(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            total += self._step(X[idx], y[idx]) * len(idx)
        return total / n


class NumpyPeer(Peer):
    """Two-layer MLP by hand (the lecture's code, seed 004), softmax stabilized by the row max."""

    def __init__(self, wl, X, y, params, seed):
        self.wl, self.X, self.y = wl, X, y
        self.p = {k: v.copy() for k, v in params.items()}
        self.rng = np.random.default_rng(seed)
        if wl.optimizer == "adam":
            self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
            self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
            self.t = 0
        self.version = np.__version__
        self.info = {"order": "np.random.default_rng(seed).permutation"}
        try:
            import peerlib
            self.info["openblas"] = peerlib.openblas_libs()
        except Exception as e:  # noqa: BLE001 - a diagnostic only
            self.info["openblas"] = repr(e)

    def _step(self, X, y):
        p, wd = self.p, self.wl.weight_decay
        W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
        n = X.shape[0]
        rows = np.arange(n)
        hidden = np.maximum(0, X @ W1 + b1)
        scores = hidden @ W2 + b2
        exp_scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs = exp_scores / exp_scores.sum(axis=1, keepdims=True)
        loss = -np.log(probs[rows, y]).sum() / n
        if wd:
            loss += 0.5 * wd * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dscores = probs
        dscores[rows, y] -= 1
        dscores /= n
        grads = {"W2": hidden.T @ dscores, "b2": dscores.sum(axis=0, keepdims=True)}
        dhidden = dscores @ W2.T
        dhidden[hidden <= 0] = 0
        grads["W1"] = X.T @ dhidden
        grads["b1"] = dhidden.sum(axis=0, keepdims=True)
        if wd:
            grads["W1"] += wd * W1
            grads["W2"] += wd * W2
        lr = self.wl.lr
        if self.wl.optimizer == "sgd":
            for k, g in grads.items():
                p[k] -= lr * g
        else:
            self.t += 1
            b1_, b2_, eps = ADAM["beta1"], ADAM["beta2"], ADAM["eps"]
            c1, c2 = 1.0 / (1.0 - b1_ ** self.t), 1.0 / (1.0 - b2_ ** self.t)
            for k, g in grads.items():
                m, v = self.m[k], self.v[k]
                m *= b1_
                m += (1 - b1_) * g
                v *= b2_
                v += (1 - b2_) * (g * g)
                p[k] -= lr * (m * c1) / (np.sqrt(v * c2) + eps)
        return float(loss)

    def epoch(self):
        X, y, bs, n = self.X, self.y, self.wl.batch, len(self.X)
        if bs >= n and not self.wl.shuffle:
            return self._step(X, y)
        order = self.rng.permutation(n) if self.wl.shuffle else np.arange(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            total += self._step(X[idx], y[idx]) * len(idx)
        return total / n


class JaxPeer(Peer):
    def __init__(self, wl, X, y, params, seed):
        import jax
        if wl.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        x64 = wl.dtype == "float64"
        self.wl, self.X, self.y = wl, X, y if x64 else y.astype(np.int32)  # int64 needs x64 mode
        self.rng = np.random.default_rng(seed)
        self.p = {k: jnp.asarray(v) for k, v in params.items()}
        lr, wd = wl.lr, wl.weight_decay

        def loss_fn(p, X, y):
            h = jnp.maximum(0, X @ p["W1"] + p["b1"])
            s = h @ p["W2"] + p["b2"]
            lse = jax.nn.logsumexp(s, axis=1)
            ce = jnp.mean(lse - jnp.take_along_axis(s, y[:, None], axis=1)[:, 0])
            if wd:
                ce = ce + 0.5 * wd * (jnp.sum(p["W1"] ** 2) + jnp.sum(p["W2"] ** 2))
            return ce

        if wl.optimizer == "sgd":
            def step(p, X, y):
                loss, g = jax.value_and_grad(loss_fn)(p, X, y)
                return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), loss
            self.state = None
        else:
            b1, b2, eps = ADAM["beta1"], ADAM["beta2"], ADAM["eps"]

            def step(p, state, X, y):
                m, v, t = state
                loss, g = jax.value_and_grad(loss_fn)(p, X, y)
                t = t + 1
                c1, c2 = 1 / (1 - b1 ** t), 1 / (1 - b2 ** t)
                m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
                v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
                p = jax.tree_util.tree_map(lambda p, m, v: p - lr * (m * c1) / (jnp.sqrt(v * c2) + eps), p, m, v)
                return p, (m, v, t), loss
            zeros = {k: jnp.zeros_like(v) for k, v in self.p.items()}
            self.state = (zeros, dict(zeros), jnp.asarray(0, dtype=wl.dtype))
        self.jstep = jax.jit(step)
        self.Xd, self.yd = jnp.asarray(self.X), jnp.asarray(self.y)  # the full batch, on the device once
        self.version = jax.__version__
        self.info = {"devices": [str(d) for d in jax.devices()], "x64": x64,
                     "order": "np.random.default_rng(seed).permutation"}

    def _step(self, X, y):
        if self.state is None:
            self.p, loss = self.jstep(self.p, X, y)
        else:
            self.p, self.state, loss = self.jstep(self.p, self.state, X, y)
        return float(loss)  # waits for the step

    def epoch(self):
        X, y, bs, n = self.X, self.y, self.wl.batch, len(self.X)
        if bs >= n and not self.wl.shuffle:
            return self._step(self.Xd, self.yd)
        order = self.rng.permutation(n) if self.wl.shuffle else np.arange(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            total += self._step(X[idx], y[idx]) * len(idx)
        return total / n


MAKERS = {"graphc_fit": GraphcFit, "graphc_step": GraphcStep, "torch": TorchPeer, "numpy": NumpyPeer, "jax": JaxPeer}


# ----- the peer process ------------------------------------------------------------------
def check(peer, epochs=CHECK_EPOCHS):
    losses, times = [], []
    for _ in range(epochs):
        t = time.perf_counter()
        losses.append(float(peer.run(1)))
        times.append(time.perf_counter() - t)
    return losses, times


def timed_run(peer, k):
    t = time.perf_counter()
    loss = peer.run(k)
    return {"s": time.perf_counter() - t, "epochs": k, "loss": float(loss)}


def serve_peer(args, wl, emit):
    X, y, params = load_inputs(args, wl)
    t0 = time.perf_counter()
    try:
        peer = MAKERS[args.peer](wl, X, y, params, args.seed)
    except ImportError as e:
        emit({"peer": args.peer, "workload": wl.name, "unavailable": f"cannot import: {e}"})
        return 0
    setup_s = time.perf_counter() - t0
    losses, times = check(peer)
    if hasattr(peer, "describe"):
        peer.describe()  # after the first steps: numba's threading layer is known only then
    est = statistics.median(timed_run(peer, 1)["s"] for _ in range(3))
    ready = {"peer": args.peer, "workload": wl.name, "dtype": wl.dtype, "version": peer.version, "info": peer.info,
             "setup_s": setup_s, "first_epoch_s": times[0], "est_epoch_s": est,
             "check": {"losses": losses, "epochs": CHECK_EPOCHS}}
    if args.serve:
        emit({"ready": True, **ready})
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd.get("quit"):
                break
            emit(timed_run(peer, int(cmd["epochs"])))
        return 0
    k = args.epochs or wl.epochs_per_round
    timed_run(peer, k)  # warm-up round
    rounds = [timed_run(peer, k) for _ in range(args.rounds)]
    per_epoch = [r["s"] / k for r in rounds]
    emit({**ready, "epochs_per_round": k, "rounds": rounds, "median_epoch_s": statistics.median(per_epoch)})
    return 0


def startup(args, wl, emit):
    """graphc's start-up in this new process: import, Trainer (build + emit the step),
    the first epoch of fit (numba compiles, or loads from GRAPHC_CACHE_DIR), a second epoch."""
    p_enter = time.perf_counter()
    X, y, params = load_inputs(args, wl)
    t = time.perf_counter()
    import graphc  # noqa: F401
    import graphc.train  # noqa: F401
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    fit = GraphcFit(wl, X, y, params, args.seed)
    trainer_s = time.perf_counter() - t
    t = time.perf_counter()
    fit.run(1)
    first_s = time.perf_counter() - t
    t_result = time.time()
    t = time.perf_counter()
    fit.run(1)
    second_s = time.perf_counter() - t
    res = {"workload": wl.name, "import_s": import_s, "trainer_s": trainer_s, "first_epoch_s": first_s,
           "compile_first_s": trainer_s + first_s, "second_epoch_s": second_s,
           "in_process_s": time.perf_counter() - p_enter - second_s,
           "cache_dir": os.environ.get("GRAPHC_CACHE_DIR")}
    if args.t0:
        res["since_start_s"] = t_result - args.t0
        res["interpreter_start_s"] = T_ENTER - args.t0
    # numba's disk-cache counters, summed over the emitted module's @njit functions
    module = getattr(fit.trainer.step.compiled, "module", None)
    stats = [s for s in (getattr(v, "stats", None) for v in vars(module).values()) if hasattr(s, "cache_hits")] \
        if module is not None else []
    if stats:
        res["cache_hits"] = sum(sum(s.cache_hits.values()) for s in stats)
        res["cache_misses"] = sum(sum(s.cache_misses.values()) for s in stats)
    emit(res)
    return 0


def main(argv=None):
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # protocol lines only
    sys.stdout = sys.stderr                              # stray prints must not corrupt them
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", choices=PEERS)
    p.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    p.add_argument("--dtype", choices=("float32", "float64"), help="default: the workload's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="an .npz of X, y and p_W1, p_b1, ... (bench_fit.py writes one); default: make them")
    p.add_argument("--serve", action="store_true", help="speak the line protocol on stdin/stdout")
    p.add_argument("--epochs", type=int, help="epochs per round when run alone (default: the workload's)")
    p.add_argument("--rounds", type=int, default=5, help="rounds when run alone")
    p.add_argument("--startup", action="store_true", help="measure graphc's start-up instead of serving a peer")
    p.add_argument("--t0", type=float, help="time.time() just before this process was started (--startup)")
    args = p.parse_args(argv)
    wl = WORKLOADS[args.workload]
    if args.dtype:
        wl = wl.with_dtype(args.dtype)

    def emit(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    if args.startup:
        return startup(args, wl, emit)
    if not args.peer:
        p.error("--peer is required (or --startup)")
    return serve_peer(args, wl, emit)


if __name__ == "__main__":
    sys.exit(main())
