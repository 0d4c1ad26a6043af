"""JAX, one jitted step: value_and_grad of the loss and the SGD update in one
XLA executable, parameters donated so XLA may update them in place.  Needs the
`bench` extra (jax, jaxlib).

    .venv/bin/python benchmarks/peer_jax.py --workload spiral

It prints one JSON object (see peerlib.py); if jax is not installed, an object
with "error".  A step blocks until its loss is ready (JAX dispatches
asynchronously).  Labels are int32 on the device (JAX's default without x64).
"""
import sys

import peerlib


class JaxStep:
    def __init__(self, spec, X, y, params):
        import jax
        import jax.numpy as jnp
        self.jax = jax
        depth, lr = spec.depth, spec.lr

        def loss_fn(ps, X, y):
            h = X
            for i in range(depth - 1):
                h = jax.nn.relu(h @ ps[2 * i] + ps[2 * i + 1])
            logits = h @ ps[-2] + ps[-1]
            logp = jax.nn.log_softmax(logits, axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step(ps, X, y):
            loss, grads = jax.value_and_grad(loss_fn)(ps, X, y)
            return [p - lr * g for p, g in zip(ps, grads)], loss

        self.names = [n for i in range(1, depth + 1) for n in (f"W{i}", f"b{i}")]
        self.ps = [jax.device_put(params[n]) for n in self.names]
        self.X, self.y = jax.device_put(X), jax.device_put(y.astype("int32"))
        self._step = jax.jit(step, donate_argnums=0)
        self.version = jax.__version__
        import jaxlib
        self.info = {"jaxlib": jaxlib.__version__, "devices": [str(d) for d in jax.devices()]}

    def step(self):
        self.ps, loss = self._step(self.ps, self.X, self.y)
        return loss.block_until_ready()

    def loss_value(self, h):
        return float(h)

    def params(self):
        import numpy as np
        return {n: np.asarray(p) for n, p in zip(self.names, self.ps)}


def make(spec, X, y, params):
    return JaxStep(spec, X, y, params)


if __name__ == "__main__":
    sys.exit(peerlib.main(make, "jax"))
