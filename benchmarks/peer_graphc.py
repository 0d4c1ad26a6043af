"""graphc, numba CPU backend: the model is built with the DSL, and
`graphc.train.compile_step` compiles forward + backward + SGD update into one
@njit function; one step is one call.

    .venv/bin/python benchmarks/peer_graphc.py --workload spiral

It prints one JSON object (see peerlib.py).  Compiled code goes to
$GRAPHC_CACHE_DIR as usual (the harness points it at a directory of its own).
Besides the step, every round also times the "kernel" probe: the emitted
`run` function called directly with pre-bound arguments, which is what a step
costs without graphc's Python wrapper (feed binding, validation, output copy).
"""
import sys

import numpy as np

import peerlib


def build_model(spec):
    """The MLP of `spec` as a graphc graph (gc.Builder, any depth)."""
    import graphc as gc
    b = gc.Builder(spec.name, dtype="float32")
    h = b.input("X", ("N", spec.layers[0]))
    y = b.input("y", ("N",), "int64")
    for i, (a, c) in enumerate(zip(spec.layers[:-1], spec.layers[1:]), start=1):
        z = h @ b.param(f"W{i}", (a, c)) + b.param(f"b{i}", (1, c))
        h = gc.relu(z) if i < spec.depth else z
    return b.output(loss=gc.cross_entropy(h, y))


class GraphcStep:
    def __init__(self, spec, X, y, params):
        import graphc
        import numba
        from graphc.train import SGD, compile_step
        self.graph = build_model(spec)
        self.step_fn = compile_step(self.graph, params, SGD(lr=spec.lr), backend="numba")
        self.X, self.y = X, y
        self.version = graphc.__version__
        self.info = {"numba": numba.__version__, "threading_layer_config": numba.config.THREADING_LAYER,
                     "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
                     "module": getattr(self.step_fn.compiled, "path", None)}
        self.probes = {}
        self._kernel = None

    def step(self):
        return self.step_fn(X=self.X, y=self.y)

    def loss_value(self, out):
        if self._kernel is None:
            self._setup_probe()
        return float(out["loss"])

    def _setup_probe(self):
        """After the first call (which resolves the parallel choice), bind the
        arguments of the emitted `run` once.  Uses graphc internals: if they
        change, the probe is simply left out."""
        self._kernel = False
        try:
            c = self.step_fn.compiled
            from graphc.train.step import HYPER_PREFIX
            feeds = {"X": self.X, "y": self.y}
            for k, v in self.step_fn.optimizer.values(0).items():
                feeds[HYPER_PREFIX + k] = np.asarray(v, dtype=np.float32)
            args, dims = c._fast_bind(feeds)
            args = [a.reshape(1) if a.ndim == 0 else a for a in args]
            ws = c._workspace(dims)
            run = c.module.run
            self._kernel = lambda: run(*args, ws)
            self.probes["kernel"] = self._kernel
            self.info["uses_prange"] = "prange(" in c.source
        except Exception as e:  # noqa: BLE001 - a diagnostic, never a failure
            self.info["probe_error"] = repr(e)

    def params(self):
        return {k: v for k, v in self.step_fn.params.items()}


def make(spec, X, y, params):
    return GraphcStep(spec, X, y, params)


if __name__ == "__main__":
    sys.exit(peerlib.main(make, "graphc"))
