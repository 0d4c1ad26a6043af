"""The independent oracle the training tests check gradients against."""
import numpy as np


def central_differences(f, params, names, eps=1e-6):
    """d f / d params[name] for each name, by central differences, element by element."""
    grads = {}
    for name in names:
        g = np.zeros_like(params[name])
        for idx in np.ndindex(params[name].shape):
            plus, minus = dict(params), dict(params)
            plus[name], minus[name] = params[name].copy(), params[name].copy()
            plus[name][idx] += eps
            minus[name][idx] -= eps
            g[idx] = (f(plus) - f(minus)) / (2 * eps)
        grads[name] = g
    return grads
