"""The benchmark workloads: ReLU MLPs with mean softmax cross-entropy, in float32.

Every peer (graphc, NumPy by hand, PyTorch, JAX) gets its model, data and
initial parameters from here, so all of them train the same network from the
same start on the same batch, and their losses can be compared step by step.

A workload is a `Spec`: layer widths [D, H1, ..., K] (len-1 linear layers,
ReLU between them, softmax cross-entropy on the last), batch size N, learning
rate, which data and which init.  Parameters are named W1, b1, W2, b2, ...;
Wi has shape (d_{i-1}, d_i) and bi (1, d_i).  One step is forward + backward
+ an SGD update, always on the same (full) batch, as in the lecture (seed 004).
"""
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Spec:
    name: str
    layers: tuple          # widths (D, H1, ..., K)
    batch: int             # N
    lr: float
    data: str = "random"   # "spiral" (the lecture's data; then batch = 300) or "random"
    init: str = "he"       # "lecture": 0.01 * randn, as in seed 004; "he": randn * sqrt(2 / fan_in)
    seed: int = 0
    rounds: int = 11       # default timing rounds for the harness
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def depth(self):
        return len(self.layers) - 1

    def as_dict(self):
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["layers"] = tuple(d["layers"])
        return cls(**d)


WORKLOADS = {
    # The lecture's spiral: 3 classes x 100 points in 2-D, a 100-wide hidden layer, step size 1.
    "spiral": Spec("spiral", (2, 100, 3), 300, lr=1.0, data="spiral", init="lecture", rounds=15),
    "mnist": Spec("mnist", (784, 512, 256, 10), 256, lr=0.1, rounds=15),
    "wide": Spec("wide", (1024, 2048, 2048, 10), 1024, lr=0.1, rounds=5),
}


def mlp_spec(depth, width=128, batch=256, d_in=32, classes=10, lr=0.01, name=None):
    """A `depth`-layer MLP on random data (the depth and batch sweeps)."""
    layers = (d_in,) + (width,) * (depth - 1) + (classes,)
    return Spec(name or f"mlp_d{depth}_in{d_in}_w{width}_out{classes}_n{batch}", layers, batch, lr=lr)


def spec_from_args(workload=None, layers=None, batch=None, lr=None):
    """A Spec from a workload name, or from explicit widths "D,H,...,K" and a batch size."""
    if workload:
        spec = WORKLOADS[workload]
        if batch and batch != spec.batch:
            raise SystemExit("--batch does not apply to a named workload; use --layers")
        return spec
    if not layers or not batch:
        raise SystemExit("give --workload NAME, or --layers D,H,...,K and --batch N")
    widths = tuple(int(w) for w in layers.split(","))
    hidden = set(widths[1:-1])
    if len(hidden) == 1:  # the sweeps' MLPs: a short name
        name = f"mlp_d{len(widths) - 1}_in{widths[0]}_w{hidden.pop()}_out{widths[-1]}_n{batch}"
    else:
        name = f"mlp{'x'.join(map(str, widths))}_n{batch}"
    return Spec(name, widths, int(batch), lr=lr or 0.01)


# ----- data and parameters ------------------------------------------------------
def spiral_data(points_per_class=100, classes=3, seed=0):
    """The lecture's spiral (seed 004), with its own seeded generator."""
    rs = np.random.RandomState(seed)
    n, d = points_per_class, 2
    X = np.zeros((n * classes, d))
    y = np.zeros(n * classes, dtype=np.int64)
    for j in range(classes):
        ix = range(n * j, n * (j + 1))
        r = np.linspace(0.0, 1, n)                                      # radius
        t = np.linspace(j * 4, (j + 1) * 4, n) + rs.randn(n) * 0.2     # theta
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X.astype(np.float32), y


def make_data(spec):
    """(X float32 (N, D), y int64 (N,)), the same for every peer."""
    if spec.data == "spiral":
        if spec.layers[0] != 2 or spec.batch % spec.layers[-1]:
            raise ValueError("spiral data is 2-D with batch = classes x points per class")
        return spiral_data(spec.batch // spec.layers[-1], spec.layers[-1], spec.seed)
    rng = np.random.default_rng(spec.seed + 1)
    X = rng.standard_normal((spec.batch, spec.layers[0]), dtype=np.float32)
    y = rng.integers(0, spec.layers[-1], spec.batch).astype(np.int64)
    return X, y


def param_names(spec):
    names = []
    for i in range(1, spec.depth + 1):
        names += [f"W{i}", f"b{i}"]
    return names


def init_params(spec, dtype=np.float32):
    """Initial parameters by name, in `dtype` (computed in float64 then rounded, so
    the float64 reference starts from exactly the float32 values)."""
    rs = np.random.RandomState(spec.seed + 2)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(spec.layers[:-1], spec.layers[1:]), start=1):
        scale = 0.01 if spec.init == "lecture" else np.sqrt(2.0 / fan_in)
        params[f"W{i}"] = (scale * rs.randn(fan_in, fan_out)).astype(np.float32).astype(dtype)
        params[f"b{i}"] = np.zeros((1, fan_out), dtype=dtype)
    return params


# ----- cost model -----------------------------------------------------------------
def step_flops(spec):
    """FLOPs of the matmuls in one step: forward X@W per layer, backward dW per
    layer and dX for every layer but the first (the data needs no gradient)."""
    n, total = spec.batch, 0
    for i, (a, b) in enumerate(zip(spec.layers[:-1], spec.layers[1:])):
        mm = 2 * n * a * b
        total += mm * (2 if i == 0 else 3)
    return total


def step_gemms(spec):
    """The matmuls of one step as (m, k, n, transposes) for timing them alone."""
    n, out = spec.batch, []
    for i, (a, b) in enumerate(zip(spec.layers[:-1], spec.layers[1:])):
        out.append((n, a, b, "X @ W"))          # forward
        out.append((a, n, b, "X.T @ G"))        # dW
        if i > 0:
            out.append((n, b, a, "G @ W.T"))    # dX
    return out
