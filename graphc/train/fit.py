"""The training loop: minibatches through the compiled step, validation,
early stopping, progress, divergence diagnosis and checkpoints.

Every training step is one call into the compiled step (forward, backward,
optimizer update and running statistics in one function).  The loop only
slices batches, draws dropout masks from its seeded generator, and records
metrics.  All randomness comes from one `np.random.Generator` whose state is
checkpointed, so an interrupted run that resumes reproduces the
uninterrupted one exactly.
"""
import math
import numbers
import os

import numpy as np

from graphc.errors import GraphcError, NumericError
from graphc.ir import shapes as S
from graphc.check.interpreter import evaluate
from graphc.backends import compile as compile_graph
from graphc.runtime import content_hash
from graphc.train import checkpoint
from graphc.train.history import EarlyStopping, History
from graphc.train.resume import checked_meta, keep_chosen_hyper, plain_number
from graphc.train.step import HYPER_PREFIX, Step


class Trainer:
    """Trains `model` with `optimizer` on compiled kernels.

    `backend` runs the step ("numba", "cuda" or "python"); `eval_backend` runs
    validation and `predict` (default: the same backend).  With `grad_norms`
    each step also returns every layer's gradient norm (history
    `grad_norm/<layer>`, the mean over the epoch's steps)."""

    # fit stops when a batch loss exceeds this factor times the run's first batch
    # loss (or times 1, if that was below 1): a loss 10,000 times its value at
    # initialization is not coming back down (docs/training.md, Divergence).
    divergence_factor = 1e4

    def __init__(self, model, optimizer, seed=0, backend="numba", eval_backend=None, params=None,
                 grad_norms=True, **compile_options):
        self.model, self.optimizer, self.seed = model, optimizer, seed
        self.rng = np.random.default_rng(seed)
        groups = model.layer_groups() if grad_norms else None
        start = model.init(seed) if params is None else _checked_params(model, params)
        self.step = Step(model.graph(True), start, optimizer, loss="loss", backend=backend,
                         grad_norms=groups, **compile_options)
        self._eval = compile_graph(model.graph(False), eval_backend or backend)
        self.history, self.epoch = History(), 0
        self._noise = model.noise  # dropout masks drawn for each batch
        self.early_stopping = None
        self.graph_hash = ckpt_graph_hash(self.step.graph)
        self._loss_scale = None  # the first batch loss: what divergence is measured against

    # ----- parameters -----------------------------------------------------------------
    @property
    def params(self):
        """The model's parameters and running statistics (host arrays), by name."""
        held = self.step.params
        return {name: held[name] for name in self.model.params}

    def set_params(self, arrays):
        self.step.compiled.hold({k: np.asarray(v, dtype=self.model.dtype) for k, v in arrays.items()})

    # ----- evaluation -----------------------------------------------------------------
    def predict(self, X, batch_size=4096):
        """The model's output (logits for the classification losses) in eval mode."""
        X = self._as_input(X)
        dummy = np.zeros(self._target_shape(len(X)), dtype=self._target_dtype())
        outs = [self._eval(self._eval_feeds(X[i:i + batch_size], dummy[i:i + batch_size]))["output"]
                for i in range(0, len(X), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0,))

    def evaluate(self, X, y, batch_size=4096):
        """{"loss", "accuracy"} on (X, y) in eval mode (dropout off, running statistics)."""
        X, y = self._as_data(X, y)
        if not len(X):
            raise GraphcError("evaluate: X and y hold 0 samples; a loss over no samples is undefined")
        total, outputs = 0.0, []
        for i in range(0, len(X), batch_size):
            out = self._eval(self._eval_feeds(X[i:i + batch_size], y[i:i + batch_size]))
            total += float(out["loss"]) * len(X[i:i + batch_size])
            outputs.append(out["output"])
        metrics = {"loss": total / len(X)}
        accuracy = self.model.loss.accuracy(np.concatenate(outputs), y) if outputs else None
        if accuracy is not None:
            metrics["accuracy"] = accuracy
        return metrics

    def _eval_feeds(self, X, y):
        return {"X": X, "y": y, **self.params}

    # ----- training -------------------------------------------------------------------
    def fit(self, X, y, epochs, batch_size=32, validation_split=0.0, validation_data=None, shuffle=True,
            early_stopping=None, checkpoint=None, checkpoint_every=1, resume=False, progress=None, callback=None):
        """Train until `epochs` epochs are done in all; returns the History.

        With `resume=True` and an existing `checkpoint`, the state saved there
        is loaded first, so rerunning an interrupted script finishes the run
        exactly as if it had not been interrupted.

        `validation_split` holds out that fraction (a seeded permutation) unless
        `validation_data=(X, y)` is given.  `early_stopping` is an EarlyStopping
        (or a patience). `checkpoint` is a path written every `checkpoint_every`
        epochs and at the end.  `progress` shows a tqdm bar (default: only when
        stderr is a terminal).  `callback(trainer, metrics)` runs after each epoch."""
        _check_fit_args(epochs, batch_size, validation_split, checkpoint_every)
        X, y = self._as_data(X, y)
        if not len(X):
            raise GraphcError("fit: X and y hold 0 samples; there is nothing to train on")
        (X, y), val = self._split(X, y, validation_split, validation_data)
        if not len(X):
            raise GraphcError(f"fit: validation_split={validation_split!r} holds out all {len(val[0])} samples, "
                              "leaving 0 to train on; use a smaller fraction or validation_data=(X, y)")
        if val is not None and not len(val[0]):
            raise GraphcError("fit: validation_data holds 0 samples; a validation loss over no samples is undefined")
        self.early_stopping = _as_early_stopping(early_stopping, self.early_stopping)
        if resume and checkpoint is not None and os.path.exists(checkpoint):
            self.load(checkpoint)
        bar = _progress(epochs, self.epoch, progress)
        try:
            for _ in range(self.epoch, epochs):
                metrics = self._epoch(X, y, batch_size, shuffle, val)
                stop = self._end_epoch(metrics)
                if checkpoint is not None and (self.epoch % checkpoint_every == 0 or stop):
                    self.save(checkpoint)
                if callback is not None:
                    callback(self, metrics)
                if not bar.disable:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if not k.startswith("grad_norm")})
                    bar.update(1)
                if stop:
                    break
        finally:
            bar.close()
        if self.early_stopping is not None and self.early_stopping.best_params is not None:
            self.set_params(self.early_stopping.best_params)  # end on the best weights seen
        if checkpoint is not None:
            self.save(checkpoint)
        return self.history

    def _split(self, X, y, fraction, validation_data):
        if validation_data is not None:
            return (X, y), self._as_data(*validation_data)
        if not fraction:
            return (X, y), None
        order = np.random.default_rng([self.seed, 1]).permutation(len(X))  # fixed by the seed: same on resume
        n_val = max(1, int(round(fraction * len(X))))
        val, train = order[:n_val], order[n_val:]
        return (X[train], y[train]), (X[val], y[val])

    def _epoch(self, X, y, batch_size, shuffle, val):
        start_state = self.rng.bit_generator.state  # to replay the epoch if the loss diverges
        snapshot = {k: np.array(v) for k, v in self.step.params.items()}, self.step.steps
        sums, count = {}, 0
        for b, (feeds, n) in enumerate(self._batches(self.rng, X, y, batch_size, shuffle)):
            out = self.step(feeds)
            loss = float(out["loss"])
            if not loss <= self._loss_limit(loss):  # NaN compares False: caught here too
                self._diverged(b, loss, snapshot, start_state, X, y, batch_size, shuffle)
            _accumulate(sums, "loss", loss, n)
            accuracy = self.model.loss.accuracy(out["output"], feeds["y"])
            if accuracy is not None:
                _accumulate(sums, "accuracy", accuracy, n)
            for key in out:
                if key.startswith("grad_norm/"):
                    _accumulate(sums, key, float(out[key]), 1)
            count += n
        metrics = {k: total / (count if k in ("loss", "accuracy") else self._batch_count(len(X), batch_size))
                   for k, total in sums.items()}
        if val is not None:
            metrics.update({"val_" + k: v for k, v in self.evaluate(*val).items()})
        metrics["lr"] = float(self.optimizer.values(max(self.step.steps - 1, 0)).get("lr", math.nan))
        return metrics

    @staticmethod
    def _batch_count(n, batch_size):
        return max(1, -(-n // batch_size))

    def _batches(self, rng, X, y, batch_size, shuffle):
        order = rng.permutation(len(X)) if shuffle else np.arange(len(X))
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            feeds = {"X": X[idx], "y": y[idx]}
            for name, spec in self._noise.items():
                feeds[name] = spec.draw(rng, len(idx))
            yield feeds, len(idx)

    def _end_epoch(self, metrics):
        self.epoch += 1
        self.history.append(metrics)
        self.optimizer.epoch_end(self.epoch, metrics)
        if self.early_stopping is None:
            return False
        return self.early_stopping.update(self.epoch, metrics, self.params)

    # ----- divergence -----------------------------------------------------------------
    def _loss_limit(self, loss):
        """A batch loss above this means training diverged: divergence_factor times the
        run's first batch loss (the loss at initialization), or times 1 if that was smaller."""
        if self._loss_scale is None:
            self._loss_scale = max(1.0, loss) if math.isfinite(loss) else 1.0
        return self.divergence_factor * self._loss_scale

    def _diverged(self, batch, loss, snapshot, rng_state, X, y, batch_size, shuffle):
        """Stop training: name the first non-finite node (a NaN/Inf loss), then return
        the parameters, optimizer state, step counter and generator to the epoch's
        start, the last state known to be good, so lowering the learning rate and
        calling fit again works."""
        global_step = self.step.steps
        if math.isfinite(loss):
            what = (f"the loss grew to {loss:.4g}, more than {self.divergence_factor:g} times its first value "
                    f"({self._loss_scale:.4g}, or 1 if smaller)")
        else:
            what = f"the loss became {loss}; " + self._first_bad_node(self._replay(batch, snapshot, rng_state, X, y,
                                                                                   batch_size, shuffle))
        arrays, steps = snapshot
        self.step.compiled.hold(arrays)
        self.step.steps = steps
        self.rng.bit_generator.state = rng_state
        raise NumericError(f"training stopped at step {global_step} (epoch {self.epoch + 1}, batch {batch + 1}): "
                           f"{what}. The parameters are back to those from the start of epoch "
                           f"{self.epoch + 1}, the last good ones; {self._advice()}, then call fit again.")

    def _replay(self, batch, snapshot, rng_state, X, y, batch_size, shuffle):
        """Replay the epoch from its snapshot up to the failing batch (same batches and
        masks); returns that batch's feeds, with the parameters as the failing step found them."""
        arrays, steps = snapshot
        self.step.compiled.hold(arrays)
        self.step.steps = steps
        rng = np.random.default_rng()
        rng.bit_generator.state = rng_state
        for b, (feeds, _) in enumerate(self._batches(rng, X, y, batch_size, shuffle)):
            if b == batch:
                return feeds
            self.step(feeds)
        raise AssertionError("the failing batch was not replayed")  # unreachable: same data, same order

    def _advice(self):
        lr = self.optimizer.hyper.get("lr")
        now = f", now {lr:g}" if plain_number(lr) else ""
        return f"lower the learning rate (trainer.optimizer.hyper['lr']{now}) or check the data"

    def _first_bad_node(self, feeds):
        hyper = {HYPER_PREFIX + k: np.asarray(v, dtype=self.model.dtype)
                 for k, v in self.optimizer.values(self.step.steps).items()}
        try:
            evaluate(self.step.graph, {**feeds, **self.step.params, **hyper}, check_finite=True)
        except NumericError as err:
            return f"first non-finite value: {err}"
        return "the reference interpreter found every node finite (the compiled code differs: please report it)"

    # ----- checkpoints ----------------------------------------------------------------
    def save(self, path):
        """Write the full training state to `path` atomically (see checkpoint.save)."""
        arrays = {f"state/{k}": v for k, v in self.step.params.items()}
        es = self.early_stopping
        if es is not None and es.best_params is not None:
            arrays.update({f"best/{k}": v for k, v in es.best_params.items()})
        meta = {"graph_hash": self.graph_hash, "epoch": self.epoch, "step": self.step.steps,
                "rng": self.rng.bit_generator.state, "optimizer": self.optimizer.state_dict(),
                "early_stopping": es.state_dict() if es is not None else None,
                "history": self.history.to_dict(), "seed": self.seed, "model": self.model.name}
        return checkpoint.save(path, arrays, meta)

    def load(self, path):
        """Restore the full training state saved by `save`; training then resumes
        exactly where it stopped.  The checkpoint must come from the same model
        graph and optimizer (checked by hash, and shape by shape).  Everything is
        checked before anything changes: a bad checkpoint leaves the trainer as it was.

        A plain-number hyperparameter (such as lr) that this trainer's optimizer
        sets differently from the checkpoint keeps this trainer's value, with a
        warning: the optimizer you pass is what you asked for."""
        expect = {f"state/{k}": (v.shape, v.dtype) for k, v in self.step.params.items()}
        arrays, meta = checkpoint.load(path, expect_graph_hash=self.graph_hash, expect_arrays=expect)
        rng, history = checked_meta(path, meta, self.rng, self.optimizer, self.early_stopping)
        chosen = {k: v for k, v in self.optimizer.hyper.items() if plain_number(v)}
        self.step.compiled.hold({k[len("state/"):]: v for k, v in arrays.items() if k.startswith("state/")})
        self.step.steps, self.epoch, self.seed = meta["step"], meta["epoch"], meta["seed"]
        self.rng.bit_generator.state = rng.bit_generator.state
        self.optimizer.load_state_dict(meta["optimizer"])  # checked on a copy: cannot fail now
        keep_chosen_hyper(path, self.optimizer, chosen)
        self.history = history
        if meta["early_stopping"] is not None:
            self.early_stopping = self.early_stopping or EarlyStopping()
            self.early_stopping.load_state_dict(meta["early_stopping"])  # checked on a copy
            best = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
            self.early_stopping.best_params = best or None
        return self

    # ----- input checks ---------------------------------------------------------------
    def _as_data(self, X, y):
        X, y = self._as_input(X), self._as_target(y)
        if len(X) != len(y):
            raise GraphcError(f"X has {len(X)} samples but y has {len(y)}")
        return X, y

    def _as_input(self, X):
        X = _as_numbers("X", X, self.model.dtype)
        if X.shape[1:] != self.model.input_shape:
            raise GraphcError(f"X has shape {X.shape}; model {self.model.name!r} takes "
                              f"{S.fmt(('batch', *self.model.input_shape))}")
        if not np.all(np.isfinite(X)):
            raise NumericError("X contains NaN or Inf")
        return X

    def _as_target(self, y):
        y = np.asarray(y)
        dtype = self._target_dtype()
        if np.dtype(dtype).kind == "i" and y.dtype.kind not in "iu":
            raise GraphcError(f"{self.model.loss!r} takes integer class labels, got {y.dtype}")
        y = _as_numbers("y", y, dtype)
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise NumericError(f"y contains NaN or Inf; {self.model.loss!r} needs finite targets")
        classes = self.model.graph(True).shape(self.model.graph(True).outputs["output"])[-1]
        if y.dtype.kind == "i" and y.size and (y.min() < 0 or y.max() >= classes):
            bad = y[(y < 0) | (y >= classes)][0]
            raise GraphcError(f"label {bad} is out of range: model {self.model.name!r} has {classes} classes (0..{classes - 1})")
        want = self._target_shape(len(y))
        if y.shape != want:
            raise GraphcError(f"y has shape {y.shape}; {self.model.loss!r} on this model needs {want}")
        return y

    def _target_spec(self):
        graph = self.model.graph(True)
        return graph.node(graph.find("y"))["attrs"]

    def _target_shape(self, n):
        return tuple(n if d == "N" else d for d in self._target_spec()["shape"])

    def _target_dtype(self):
        return self._target_spec()["dtype"]


def _as_numbers(what, values, dtype):
    """`values` as a contiguous array of `dtype`; text is refused even when it
    parses as numbers ("1.5"), because a column of strings is a data bug."""
    try:
        arr = np.asarray(values)
        if arr.dtype.kind in "USVO" and not (arr.dtype.kind == "O" and _all_numbers(arr)):
            raise TypeError(f"it holds {arr.dtype.name if arr.dtype.kind != 'O' else 'Python objects'}, not numbers")
        return np.ascontiguousarray(arr, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise GraphcError(f"{what} cannot be read as {dtype} numbers: {e}") from None


def _all_numbers(arr):
    return all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in arr.flat)


def ckpt_graph_hash(graph):
    return content_hash(graph.to_text())


def _checked_params(model, params):
    missing = [k for k in model.params if k not in params]
    if missing:
        raise GraphcError(f"params lack {', '.join(missing)}; model.init(seed) makes a full set")
    return params


def _accumulate(sums, key, value, weight):
    sums[key] = sums.get(key, 0.0) + value * weight


def _as_early_stopping(arg, current):
    if arg is None or isinstance(arg, EarlyStopping):
        return arg if arg is not None else current
    return EarlyStopping(patience=arg)


def _check_fit_args(epochs, batch_size, validation_split, checkpoint_every):
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise GraphcError(f"fit: {name} must be a positive integer, got {value!r}")
    if not 0.0 <= validation_split < 1.0:
        raise GraphcError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")


def _progress(epochs, done, progress):
    from tqdm.auto import tqdm
    # disable=None: tqdm turns itself off when stderr is not a terminal (CI, logs)
    return tqdm(total=epochs, initial=done, unit="epoch", disable=None if progress is None else not progress)


def fit(model, X, y, optimizer, epochs, seed=0, backend="numba", **fit_args):
    """Build a Trainer and train; returns the Trainer (its `history`, `params`, `predict`)."""
    trainer = Trainer(model, optimizer, seed=seed, backend=backend)
    trainer.fit(X, y, epochs, **fit_args)
    return trainer
