"""The "overfit a tiny batch" sanity check (CS231n): before a long run, make sure
the model and its training loop can drive the loss of a handful of examples
to ~0.

Twenty points of the CS231n spiral, a 2 -> 100 ReLU -> 3 network with no
regularization (weight decay 0, no dropout), full-batch Adam for 1000 steps:
a working model/loss/gradient/optimizer stack must memorize them -- loss below
0.01 and 100% accuracy -- or the example exits with code 1.  If it cannot, a
bug (a wrong gradient, a mis-wired loss, labels shuffled apart from their
inputs) is far more likely than a model too small.

It also runs the other first check from the same notes: with small output
weights every class is equally likely at the start, so the initial loss
should be -ln(1/3) = ln 3 = 1.0986.

Memorizing 20 points says nothing about the rest of the spiral; the printed
accuracy on all 300 points is only there to show that.

    python examples/overfit_tiny_batch.py        # writes out/overfit_tiny_batch/history.png
    python examples/overfit_tiny_batch.py --out DIR
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

from graphc.train import Adam, Dense, Model, Trainer
from graphc.train.datasets import spiral  # the lecture's data (seed 004)

SEED = 0
N_TINY, STEPS, LR = 20, 1000, 0.01
MAX_FINAL_LOSS = 1e-2  # measured 3.0e-4 with SEED = 0
MAX_INITIAL_DEVIATION = 0.1  # |initial loss - ln 3|; measured 0.011


def build_model():
    # weight_decay=0 (the default) and no dropout: nothing may stop the memorization.
    # The output layer starts small (N(0, 0.01^2)) so the initial loss is ~ln 3.
    return Model([Dense(100, "relu", init="he_normal"), Dense(3, init="normal")], input_shape=(2,),
                 loss="cross_entropy", name="overfit_tiny_batch")


def main(out_dir="out/overfit_tiny_batch"):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    X, y = spiral(rng)
    tiny = rng.choice(len(X), N_TINY, replace=False)
    X_tiny, y_tiny = X[tiny], y[tiny]
    print(f"tiny batch: {N_TINY} of {len(X)} spiral points, per class {np.bincount(y_tiny, minlength=3).tolist()}")

    trainer = Trainer(build_model(), Adam(lr=LR), seed=SEED)
    start = trainer.evaluate(X_tiny, y_tiny)
    print(f"initial loss: {start['loss']:.4f}   (ln 3 = {math.log(3):.4f}: chance with 3 classes)")
    history = trainer.fit(X_tiny, y_tiny, epochs=STEPS, batch_size=N_TINY, shuffle=False, progress=False)
    final = trainer.evaluate(X_tiny, y_tiny)
    for epoch in (1, 10, 100, STEPS):
        loss, accuracy = history["loss"][epoch - 1], history["accuracy"][epoch - 1]
        print(f"  step {epoch:>4}: loss {loss:.2e}  accuracy {accuracy:.2f}")
    print(f"final loss: {final['loss']:.2e}")
    print(f"final accuracy: {final['accuracy']:.4f}")
    print(f"accuracy on all {len(X)} points (not the point of this check): "
          f"{trainer.evaluate(X, y)['accuracy']:.3f}")

    png = history.plot(out / "history.png", title=f"overfitting {N_TINY} points (no regularization)")
    print(f"\nwrote {png}")

    problems = []
    if abs(start["loss"] - math.log(3)) > MAX_INITIAL_DEVIATION:
        problems.append(f"initial loss {start['loss']:.4f} is not ~ln 3")
    if not final["loss"] < MAX_FINAL_LOSS:
        problems.append(f"final loss {final['loss']:.2e} >= {MAX_FINAL_LOSS}")
    if final["accuracy"] != 1.0:
        problems.append(f"final accuracy {final['accuracy']:.4f} < 1")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"OK: loss {final['loss']:.1e} < {MAX_FINAL_LOSS} and 100% accuracy on the tiny batch")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/overfit_tiny_batch", help="directory for the plot (created)")
    sys.exit(main(parser.parse_args().out))
