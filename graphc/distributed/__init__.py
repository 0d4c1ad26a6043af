"""Training on a dask.distributed cluster (`pip install -e '.[distributed]'`).

- `sweep(client, build, X, y, directory, grid=..., seeds=...)`: many `fit`s,
  one per trial, on the workers; returns a results table.  `plot_curves`
  overlays their learning curves; `ensemble` loads the best k and combines
  their predictions.
- `fit(client, model, X, y, optimizer, epochs)`: one model, data-parallel:
  shards stay on the workers, gradients are averaged every step (or
  parameters every `sync_every` steps: local SGD).

See docs/distributed.md.
"""
from graphc.distributed.dataparallel import DataParallelTrainer, DistributedError, fit
from graphc.distributed.ensemble import Ensemble, best, ensemble, load_trainer, plot_curves
from graphc.distributed.sweep import as_table, run_trial, sweep
from graphc.distributed.trials import trials

__all__ = ["sweep", "trials", "run_trial", "as_table", "plot_curves", "ensemble", "Ensemble", "best",
           "load_trainer", "fit", "DataParallelTrainer", "DistributedError"]
