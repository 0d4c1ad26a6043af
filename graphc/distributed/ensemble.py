"""What to do with a finished sweep: compare its learning curves, and ensemble its best models.

Both read the trials' checkpoints (plain .npz, no pickle), so they work on
the client after the workers are gone, or in another session entirely.
"""
import math

import numpy as np

from graphc.errors import GraphcError
from graphc.distributed.sweep import table_rows


def best(table, k=1, by="best_val_loss"):
    """The k finished rows with the lowest `by` (the highest, for an accuracy)."""
    rows = [r for r in table_rows(table) if r.get("status") == "ok" and _finite(r.get(by))]
    if not rows:
        raise GraphcError(f"no finished trial has a value for {by!r}; pass validation data to the sweep "
                          "or rank by another column")
    sign = -1.0 if "accuracy" in by else 1.0
    return sorted(rows, key=lambda r: (sign * r[by], r["trial"]))[:k]


def _finite(value):
    return isinstance(value, (int, float, np.floating)) and math.isfinite(value)


def load_trainer(build, row):
    """A Trainer restored from a row's checkpoint (the model as training left it)."""
    from graphc.train import Trainer
    # a DataFrame fills a hyperparameter that other trials have and this one lacks with NaN
    trial = {k: v for k, v in row.items() if k not in _RESULT_KEYS and not (isinstance(v, float) and math.isnan(v))}
    model, optimizer = build(trial)
    trainer = Trainer(model, optimizer, seed=int(trial.get("seed", 0)))
    return trainer.load(row["checkpoint"])


_RESULT_KEYS = {"trial", "status", "error", "attempts", "checkpoint", "setup_s", "graph_hash", "epochs",
                "loss", "accuracy", "val_loss", "val_accuracy", "best_val_loss", "best_val_accuracy",
                "new_modules", "wall_s", "worker_pid"}


class Ensemble:
    """The best k models of a sweep, predicting together.

    `mode="average"` averages the members' outputs (logits for cross-entropy,
    whose argmax is then the class); `mode="vote"` takes each member's class
    and returns the majority (ties to the lowest class), as in seed 001."""

    def __init__(self, trainers, mode="average"):
        if mode not in ("average", "vote"):
            raise GraphcError(f"Ensemble: mode must be 'average' or 'vote', got {mode!r}")
        if not trainers:
            raise GraphcError("Ensemble: no members")
        self.trainers, self.mode = list(trainers), mode

    def predict(self, X):
        outputs = np.stack([t.predict(X) for t in self.trainers])
        if self.mode == "average":
            return outputs.mean(axis=0)
        classes = _classes(outputs)
        width = max(outputs.shape[-1], 2) if outputs.ndim == 3 else 2
        counts = np.zeros((classes.shape[1], width), dtype=np.int64)
        for member in classes:
            np.add.at(counts, (np.arange(len(member)), member), 1)
        return counts.argmax(axis=1)

    def classes(self, X):
        out = self.predict(X)
        return out if self.mode == "vote" else _classes(out[None])[0]

    def accuracy(self, X, y):
        return float(np.mean(self.classes(X) == np.asarray(y).reshape(-1)))


def _classes(outputs):
    """Class per sample for each member: argmax of logits, or logit > 0 for one output."""
    if outputs.ndim == 3 and outputs.shape[-1] > 1:
        return outputs.argmax(axis=-1)
    return (outputs.reshape(outputs.shape[0], -1) > 0).astype(np.int64)


def ensemble(table, build, k=3, by="best_val_loss", mode="average"):
    """An Ensemble of the best k trials of `table` (ranked by `by`)."""
    return Ensemble([load_trainer(build, row) for row in best(table, k, by)], mode)


def plot_curves(table, path, metric="val_loss", title=None):
    """Overlay every finished trial's `metric` curve (read from its checkpoint) in one figure."""
    from graphc.train import checkpoint, compare
    from graphc.train.history import History
    histories = {}
    for row in table_rows(table):
        if row.get("status") != "ok":
            continue
        _, meta = checkpoint.load(row["checkpoint"])
        label = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in row.items() if k not in _RESULT_KEYS)
        history = History(meta["history"])
        if metric in history:
            histories[f"#{row['trial']} {label}"] = history
    if not histories:
        raise GraphcError(f"plot_curves: no finished trial recorded {metric!r} (val_* needs validation data "
                          "in the sweep)")
    return compare(histories, path, metric=metric, title=title or f"{metric} per trial")
