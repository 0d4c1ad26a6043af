"""Seed 003's initialization comparison: zero init, small random, Xavier and He.

One network -- 2 -> 50 sigmoid -> 50 sigmoid -> 3 on the CS231n spiral
(3 classes, 300 points) -- is trained four times with the same optimizer,
data and seed; only the weight initializer changes (``Dense(init=...)``;
biases start at zero in every run):

* ``zeros``: the symmetry problem.  Every hidden unit of a layer computes the
  same activation, so backprop gives every unit the same update: the weights
  *do* move, but all units of a layer keep identical incoming weights for the
  whole of training, and the network is no wider than one unit per layer.
  The script prints the spread across units (max over inputs i of
  max_j W[i, j] - min_j W[i, j]), which stays 0 (up to rounding, ~1e-16),
  next to the weights' norm, which does not.
* ``normal``: N(0, 0.01^2).  The symmetry is broken, but the variance is too
  small: the signal and the gradients shrink layer by layer (vanishing
  gradients), and training stalls in this budget.
* ``xavier_normal`` (Glorot: N(0, 2 / (fan_in + fan_out))) and ``he_normal``
  (N(0, 2 / fan_in)): the variance-scaling rules; both train.

The loss curves go to one plot (``graphc.train.compare``).  The example exits
with code 1 if zero init breaks its symmetry or Xavier/He fail to train.

    python examples/compare_init.py             # writes out/compare_init/loss.png
    python examples/compare_init.py --out DIR
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from graphc.train import Dense, Model, Momentum, Trainer, compare
from graphc.train.datasets import spiral  # the lecture's data (seed 004)

SEED = 0
HIDDEN, EPOCHS, BATCH_SIZE = 50, 200, 32
INITS = ["zeros", "normal", "xavier_normal", "he_normal"]
LABELS = {"zeros": "zeros", "normal": "normal (std 0.01)", "xavier_normal": "Xavier (normal)",
          "he_normal": "He (normal)"}
MIN_GOOD_ACCURACY = 0.90  # Xavier and He: measured 0.977 and 0.977 (train accuracy, SEED = 0)
MAX_SPREAD = 1e-12  # zero init: measured 0.0 (W1) and 5.6e-17 (W2, rounding)


def build_model(init):
    # The model name and layer names are the same for every init, so the four
    # runs share one step graph and numba compiles it once.
    return Model([Dense(HIDDEN, "sigmoid", init=init, name="hidden1"),
                  Dense(HIDDEN, "sigmoid", init=init, name="hidden2"),
                  Dense(3, init=init, name="output")],
                 input_shape=(2,), loss="cross_entropy", name="compare_init")


def unit_spread(W):
    """How different the units' incoming weights are: W is (inputs, units), unit j's
    incoming weights are the column W[:, j]; 0 when every column is the same."""
    return float(np.max(W.max(axis=1) - W.min(axis=1)))


def main(out_dir="out/compare_init"):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y = spiral(np.random.default_rng(SEED))
    print(f"spiral: {len(X)} points, 3 classes; 2 -> {HIDDEN} sigmoid -> {HIDDEN} sigmoid -> 3; "
          f"Momentum(lr=0.1), {EPOCHS} epochs, batch {BATCH_SIZE}\n")
    print(f"{'init':<14} {'loss ep 1':>9} {'final':>7} {'acc':>6} {'|W1|':>7} "
          f"{'spread W1':>10} {'spread W2':>10}")
    histories, results = {}, {}
    for init in INITS:
        trainer = Trainer(build_model(init), Momentum(lr=0.1, momentum=0.9), seed=SEED)
        history = trainer.fit(X, y, epochs=EPOCHS, batch_size=BATCH_SIZE, progress=False)
        W1, W2 = trainer.params["hidden1.W"], trainer.params["hidden2.W"]
        res = {"loss": history["loss"][-1], "accuracy": trainer.evaluate(X, y)["accuracy"],
               "norm": float(np.linalg.norm(W1)), "spread1": unit_spread(W1), "spread2": unit_spread(W2)}
        results[init], histories[LABELS[init]] = res, history
        print(f"{init:<14} {history['loss'][0]:>9.4f} {res['loss']:>7.4f} {res['accuracy']:>6.3f} "
              f"{res['norm']:>7.3f} {res['spread1']:>10.2e} {res['spread2']:>10.2e}")

    zero = results["zeros"]
    print(f"\nzero init: the first layer's weights moved (|W1| = {zero['norm']:.3f}) but every hidden "
          f"unit kept the same incoming weights (spread {zero['spread1']:.1e} and {zero['spread2']:.1e}):")
    print(f"  symmetry never breaks, so it trains like a 1-unit-wide network "
          f"(accuracy {zero['accuracy']:.3f}; chance is 0.333)")
    png = compare(histories, out / "loss.png", metric="loss",
                  title="initialization: same network, same optimizer and seed")
    print(f"\nwrote {png}")

    problems = []
    if not (zero["spread1"] <= MAX_SPREAD and zero["spread2"] <= MAX_SPREAD and zero["norm"] > 0):
        problems.append("zero init did not keep its symmetry")
    for init in ("xavier_normal", "he_normal"):
        if results[init]["accuracy"] < MIN_GOOD_ACCURACY:
            problems.append(f"{init} reached only {results[init]['accuracy']:.3f} < {MIN_GOOD_ACCURACY}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"OK: zero-init spread <= {MAX_SPREAD:g}; Xavier and He accuracy >= {MIN_GOOD_ACCURACY}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/compare_init", help="directory for the plot (created)")
    sys.exit(main(parser.parse_args().out))
