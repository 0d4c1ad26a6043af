"""Which trials a sweep runs: a grid, random samples from a space, and seeds.

A trial is a plain dict of hyperparameters.  `seed` (the Trainer's seed: the
initial weights, batch order and dropout masks) is always present, so a trial
is reproducible on any worker.  Everything here runs on the client and is
seeded, so the same call always lists the same trials in the same order.
"""
import itertools
import math

import numpy as np

from graphc.errors import GraphcError


def trials(grid=None, space=None, samples=0, seeds=(0,), sample_seed=0):
    """The list of trials.

    `grid` {name: [values]}: every combination, in key order.  `space`
    {name: spec} with `samples` draws: a spec is a list (uniform choice),
    ("uniform", lo, hi), ("loguniform", lo, hi), ("int", lo, hi) (inclusive)
    or a callable(rng) -> value.  Grid and samples are crossed when both are
    given.  `seeds` (an int n for seeds 0..n-1, or a list) restarts each
    configuration once per seed: random restarts, and the members of an
    ensemble."""
    configs = _grid(grid or {})
    if space:
        if not isinstance(samples, int) or samples < 1:
            raise GraphcError(f"sweep: a space needs samples >= 1, got {samples!r}")
        rng = np.random.default_rng(sample_seed)
        drawn = [{k: _draw(k, spec, rng) for k, spec in space.items()} for _ in range(samples)]
        configs = [{**c, **d} for c in configs for d in drawn]
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise GraphcError("sweep: seeds is empty; give at least one seed")
    out = []
    for config in configs:
        if "seed" in config:
            out.append(dict(config))  # the grid names its own seeds
        else:
            out.extend({**config, "seed": s} for s in seed_list)
    return out


def _grid(grid):
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise GraphcError(f"sweep: grid[{key!r}] must be a list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(grid[k]) for k in keys))]


def _draw(key, spec, rng):
    if callable(spec):
        return spec(rng)
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] in ("uniform", "loguniform", "int"):
        kind, lo, hi = spec
        if kind == "uniform":
            return float(rng.uniform(lo, hi))
        if kind == "int":
            return int(rng.integers(lo, hi + 1))
        if not (lo > 0 and hi > 0):
            raise GraphcError(f"sweep: space[{key!r}] is loguniform, so its bounds must be > 0, got {lo}, {hi}")
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    raise GraphcError(f"sweep: space[{key!r}] = {spec!r} is not a list, a ('uniform'|'loguniform'|'int', lo, hi) "
                      "tuple or a callable(rng)")
