"""Per-epoch metrics, early stopping, and the plots drawn from them."""
import math

import numpy as np

from graphc.errors import GraphcError


class History:
    """Metrics by name, one value per epoch: loss, accuracy, val_loss,
    val_accuracy, lr, grad_norm/<layer> ...  `history["loss"]` is a list."""

    def __init__(self, metrics=None):
        self.metrics = {k: list(v) for k, v in (metrics or {}).items()}
        self._epochs = max((len(v) for v in self.metrics.values()), default=0)

    def append(self, values):
        epoch = self._epochs
        for name, value in values.items():
            series = self.metrics.get(name)
            if series is None:
                series = self.metrics[name] = [math.nan] * epoch
            series.append(float(value))
        if len(values) != len(self.metrics):  # a metric missing this epoch stays aligned
            for series in self.metrics.values():
                if len(series) == epoch:
                    series.append(math.nan)
        self._epochs = epoch + 1

    def __len__(self):
        return self._epochs

    def __getitem__(self, name):
        return self.metrics[name]

    def __contains__(self, name):
        return name in self.metrics

    def last(self):
        return {k: v[-1] for k, v in self.metrics.items() if v}

    def to_dict(self):
        return {k: list(v) for k, v in self.metrics.items()}

    def plot(self, path, title=None):
        """Loss (and accuracy, when there is one) curves, train and validation, to `path`."""
        panels = [("loss", "loss")] + ([("accuracy", "accuracy")] if "accuracy" in self else [])
        fig, axes = _figure(len(panels))
        for ax, (metric, label) in zip(axes, panels):
            epochs = np.arange(1, len(self) + 1)
            ax.plot(epochs, self[metric], label="train")
            if "val_" + metric in self:
                ax.plot(epochs, self["val_" + metric], label="validation")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend()
            if metric == "loss" and all(v > 0 for v in self[metric] if math.isfinite(v)):
                ax.set_yscale("log")
        return _save(fig, path, title)

    def plot_grad_norms(self, path, title="gradient norm per layer"):
        """Each layer's gradient norm per epoch, on a log scale: vanishing gradients
        show as early layers far below late ones, exploding ones as growth."""
        names = [k for k in self.metrics if k.startswith("grad_norm/")]
        if not names:
            raise GraphcError("no gradient norms recorded; train with grad_norms=True")
        fig, (ax,) = _figure(1)
        for name in names:
            ax.plot(np.arange(1, len(self) + 1), self[name], label=name.split("/", 1)[1])
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("||dL/dθ|| of the layer's params (epoch mean)")
        ax.legend()
        return _save(fig, path, title)


def _figure(panels):
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed, works on CI
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), squeeze=False)
    return fig, list(axes[0])


def _save(fig, path, title):
    import matplotlib.pyplot as plt
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(histories, path, metric="loss", title=None):
    """One curve per run ({label: History}), e.g. initializers or optimizers side by side."""
    fig, (ax,) = _figure(1)
    for label, history in histories.items():
        ax.plot(np.arange(1, len(history) + 1), history[metric], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric.endswith("loss"):
        ax.set_yscale("log")
    ax.legend()
    return _save(fig, path, title)


class EarlyStopping:
    """Stop after `patience` epochs in a row in which `monitor` did not improve on
    its best by more than `min_delta` (as Keras counts); with `restore_best`,
    training ends on the best weights."""

    def __init__(self, patience=10, monitor="val_loss", min_delta=0.0, restore_best=True):
        if not isinstance(patience, int) or patience < 0:
            raise GraphcError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise GraphcError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.patience, self.monitor, self.min_delta, self.restore_best = patience, monitor, min_delta, restore_best
        self.best, self.best_epoch, self.wait, self.best_params = math.inf, -1, 0, None

    def update(self, epoch, metrics, params):
        """Record this epoch; True when training should stop."""
        if self.monitor not in metrics:
            raise GraphcError(f"EarlyStopping monitors {self.monitor!r}, but the epoch's metrics are "
                              f"{', '.join(metrics)}; pass validation data or monitor 'loss'")
        value = metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_params = {k: np.array(v) for k, v in params.items()}
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]

    def __repr__(self):
        return f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r}, min_delta={self.min_delta})"


def decision_boundary(predict, X, y, path, title=None, resolution=300):
    """Colour the plane by `predict`'s class (argmax of its output, or output > 0
    for one logit) and scatter the labelled points over it; 2-D inputs only."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise GraphcError(f"decision_boundary draws 2-D inputs; X has shape {X.shape}")
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0))
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    out = np.asarray(predict(np.c_[xx.ravel(), yy.ravel()]))
    classes = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0).astype(int)
    fig, (ax,) = _figure(1)
    fig.set_size_inches(5, 5)
    ax.contourf(xx, yy, classes.reshape(xx.shape), alpha=0.35, cmap="brg")
    ax.scatter(X[:, 0], X[:, 1], c=np.asarray(y).reshape(-1), s=14, cmap="brg", edgecolors="k", linewidths=0.3)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    return _save(fig, path, title)
