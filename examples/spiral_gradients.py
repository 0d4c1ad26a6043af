"""The lecture's 2-layer ReLU network on the spiral data set (CS231n style).

Loss = mean softmax cross-entropy + reg/2 * (||W1||^2 + ||W2||^2), with a
symbolic batch size N, so one compiled graph serves the full batch and any
minibatch.  graphc's gradients are compared with the hand-written NumPy
backprop from the lecture; the max abs difference should be ~1e-16.

    python examples/spiral_gradients.py
"""
import numpy as np

import graphc as gc
from graphc.dsl import Input, Param
from graphc.train.datasets import spiral  # the lecture's data (seed 004)

D, K, H = 2, 3, 100  # input dim, classes, hidden width
REG = 1e-3


def net(X, y, W1, b1, W2, b2):
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    data_loss = gc.cross_entropy(scores, y)
    reg_loss = gc.l2_penalty(W1, W2, strength=REG)
    loss = data_loss + reg_loss
    return loss


def build():
    return gc.trace(net, Input(("N", D)), Input(("N",), "int64"),
                    Param((D, H)), Param((1, H)), Param((H, K)), Param((1, K)), name="spiral")


def numpy_backprop(X, y, W1, b1, W2, b2):
    """The lecture's hand-written gradients."""
    num_examples = X.shape[0]
    hidden_layer = np.maximum(0, X @ W1 + b1)
    scores = hidden_layer @ W2 + b2
    exp_scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    data_loss = np.mean(-np.log(probs[range(num_examples), y]))
    loss = data_loss + 0.5 * REG * np.sum(W1 * W1) + 0.5 * REG * np.sum(W2 * W2)
    dscores = probs
    dscores[range(num_examples), y] -= 1
    dscores /= num_examples
    dW2 = hidden_layer.T @ dscores
    db2 = np.sum(dscores, axis=0, keepdims=True)
    dhidden = dscores @ W2.T
    dhidden[hidden_layer <= 0] = 0
    dW1 = X.T @ dhidden
    db1 = np.sum(dhidden, axis=0, keepdims=True)
    dW2 += REG * W2
    dW1 += REG * W1
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def main():
    rng = np.random.default_rng(0)
    X, y = spiral(rng)
    params = {"W1": 0.01 * rng.standard_normal((D, H)), "b1": 0.01 * rng.standard_normal((1, H)),
              "W2": 0.01 * rng.standard_normal((H, K)), "b2": 0.01 * rng.standard_normal((1, K))}

    graph = build()
    print(graph.to_text())
    step = gc.compile(gc.grad(graph))  # outputs: loss, g_W1, g_b1, g_W2, g_b2

    worst = 0.0
    for batch in (slice(None), slice(0, 64), slice(100, 107)):  # N = 300, 64, 7: one graph
        Xb, yb = X[batch], y[batch]
        out = step(X=Xb, y=yb, **params)
        ref_loss, ref = numpy_backprop(Xb, yb, **params)
        diffs = {k: float(np.max(np.abs(out[f"g_{k}"] - ref[k]))) for k in ref}
        diffs["loss"] = float(abs(out["loss"] - ref_loss))
        worst = max(worst, *diffs.values())
        print(f"\nN = {len(Xb)}: loss = {float(out['loss']):.6f}")
        for k, d in diffs.items():
            print(f"  max |graphc - numpy| for {k:<4} = {d:.2e}")
    print(f"\nmax abs difference over all gradients and batches: {worst:.2e}")
    assert worst < 1e-12, worst


if __name__ == "__main__":
    main()
