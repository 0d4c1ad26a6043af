"""NumPy written by hand, in the style of the lecture (seed 004): one training step
is the forward pass, the analytic backward pass and an in-place SGD update.

    .venv/bin/python benchmarks/peer_numpy.py --workload spiral
    .venv/bin/python benchmarks/peer_numpy.py --layers 32,128,128,10 --batch 256

It prints one JSON object (see peerlib.py).  Like the lecture's code it
allocates its temporaries on every step; unlike it, softmax subtracts the row
max (the other peers are stable too) and there is no L2 penalty (the graphc
model has none).  With dtype=float64 it is the reference the harness checks
every peer against.
"""
import sys

import numpy as np

import peerlib


class NumpyStep:
    def __init__(self, spec, X, y, params, dtype=np.float32):
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.y = y
        self.lr = dtype(spec.lr)
        self.depth = spec.depth
        self.W = [np.array(params[f"W{i}"], dtype=dtype) for i in range(1, self.depth + 1)]
        self.b = [np.array(params[f"b{i}"], dtype=dtype) for i in range(1, self.depth + 1)]
        self.rows = np.arange(len(y))
        self.version = np.__version__
        self.info = {"dtype": np.dtype(dtype).name}
        self.info.update({"openblas": peerlib.openblas_libs()})

    def step(self):
        X, y, W, b, rows = self.X, self.y, self.W, self.b, self.rows
        num_examples = X.shape[0]
        # forward: keep every layer's output for the backward pass
        hidden = [X]
        for i in range(self.depth - 1):
            hidden.append(np.maximum(0, hidden[-1] @ W[i] + b[i]))  # ReLU
        scores = hidden[-1] @ W[-1] + b[-1]
        # softmax cross-entropy, averaged over the batch
        exp_scores = np.exp(scores - np.max(scores, axis=1, keepdims=True))
        probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
        correct_logprobs = -np.log(probs[rows, y])
        loss = np.sum(correct_logprobs) / num_examples
        # backward
        dscores = probs
        dscores[rows, y] -= 1
        dscores /= num_examples
        dW, db = [None] * self.depth, [None] * self.depth
        d = dscores
        for i in range(self.depth - 1, -1, -1):
            dW[i] = hidden[i].T @ d
            db[i] = np.sum(d, axis=0, keepdims=True)
            if i > 0:
                dhidden = d @ W[i].T
                dhidden[hidden[i] <= 0] = 0  # backprop the ReLU
                d = dhidden
        # SGD update, in place
        for i in range(self.depth):
            W[i] -= self.lr * dW[i]
            b[i] -= self.lr * db[i]
        return loss

    def loss_value(self, h):
        return float(h)

    def params(self):
        out = {}
        for i in range(self.depth):
            out[f"W{i + 1}"], out[f"b{i + 1}"] = self.W[i], self.b[i]
        return out


def make(spec, X, y, params):
    return NumpyStep(spec, X, y, params)


if __name__ == "__main__":
    sys.exit(peerlib.main(make, "numpy"))
