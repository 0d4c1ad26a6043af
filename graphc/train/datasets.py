"""Small data sets from the lectures, generated with a seeded NumPy generator."""
import numpy as np


def spiral(rng, n_per_class=100, classes=3):
    """The CS231n spiral (seed 004): `classes` interleaved arms of `n_per_class`
    noisy points in 2-D, labels 0..classes-1; the lecture's code, with `rng`
    (a np.random.Generator) for the noise."""
    X = np.zeros((n_per_class * classes, 2))
    y = np.zeros(n_per_class * classes, dtype=np.int64)
    for j in range(classes):
        ix = slice(n_per_class * j, n_per_class * (j + 1))
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, n_per_class) + rng.standard_normal(n_per_class) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X, y
