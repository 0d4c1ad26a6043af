"""The README demo: train the lecture's spiral classifier end to end on compiled kernels.

Seed 004 (CS231n): 3 classes x 100 points on a spiral, a 2-layer ReLU network
(2 -> 100 -> 3), softmax cross-entropy plus L2 regularization (reg = 1e-3),
full-batch gradient descent with step size 1.  Every one of the 10,000 steps
is one call into a numba-compiled function that runs the forward pass, the
backward pass and the update together.  The lecture reports 98% training
accuracy; this script checks that it gets there.

Writes to --out (default out/spiral):
    loss.png               the loss and accuracy curves
    decision_boundary.png  the classifier's regions over the data
    graph.svg              the network's graph: every node's value and gradient,
                           every edge's upstream gradient U, local gradient L and U*L,
                           on 5 of the training points

    python examples/spiral.py
    graphc emit --python examples/spiral.py --step --backend numba   # the compiled step's source
    graphc render --python examples/spiral.py --dim N=5 -o spiral.svg
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

from graphc.render import annotate, render
from graphc.train import SGD, Dense, Model, Trainer, decision_boundary
from graphc.train.datasets import spiral  # the lecture's data (seed 004)

CLASSES, HIDDEN = 3, 100
STEPS, STEP_SIZE, REG = 10_000, 1.0, 1e-3  # the lecture's settings
TARGET_ACCURACY = 0.98


def build_model():
    # The lecture initializes W ~ 0.01 * N(0, 1) and b = 0.
    return Model([Dense(HIDDEN, activation="relu", init="normal"), Dense(CLASSES, init="normal")],
                 input_shape=(2,), loss="cross_entropy", weight_decay=REG, name="spiral")


def build():
    """The training graph, for the command line: `graphc emit --python examples/spiral.py --step`."""
    return build_model().graph(training=True)


def main(out_dir="out/spiral"):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y = spiral(np.random.default_rng(4))
    model = build_model()
    print(model.summary(), "\n")

    start = time.perf_counter()
    trainer = Trainer(model, SGD(lr=STEP_SIZE), seed=0)
    # one batch of all 300 points per epoch: each epoch is one full-batch step, as in the lecture
    history = trainer.fit(X, y, epochs=STEPS, batch_size=len(X), shuffle=False)
    seconds = time.perf_counter() - start
    for epoch in (1, 1000, 5000, STEPS):
        print(f"step {epoch:>6}: loss {history['loss'][epoch - 1]:.4f}")

    accuracy = trainer.evaluate(X, y)["accuracy"]
    print(f"\ntraining accuracy: {accuracy:.2%} (the lecture: 98%) after {STEPS:,} compiled steps "
          f"in {seconds:.1f} s, compile included")

    history.plot(out / "loss.png", title="spiral: 2-layer ReLU network")
    decision_boundary(trainer.predict, X, y, out / "decision_boundary.png", title=f"accuracy {accuracy:.1%}")
    sample = np.arange(0, len(X), len(X) // 5)[:5]
    feeds = {"X": X[sample], "y": y[sample], **trainer.params}
    render(annotate(model.graph(training=False), feeds, loss="loss"), out / "graph.svg")
    for name in ("loss.png", "decision_boundary.png", "graph.svg"):
        print(f"wrote {out / name}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/spiral", help="output directory")
    accuracy = main(parser.parse_args().out)
    sys.exit(0 if accuracy >= TARGET_ACCURACY else 1)
