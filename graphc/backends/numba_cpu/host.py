"""The numba CPU backend as the registry sees it: `emit` (emit.py) and `build`, whose
Compiled binds feeds, owns the workspaces and calls the module's `run`."""
import os

import numpy as np

from graphc.backends.common.jitcache import discard_damaged_cache
from graphc.backends.numba_cpu.emit import emit, emit_module  # noqa: F401  (emit: the registry's emit_source)
from graphc.errors import CallError, GraphcError
from graphc.runtime import Compiled, load_source


def select_threading_layer():
    """Use workqueue unless the user chose a layer: OpenMP's spin-waiting threads
    fight OpenBLAS's threads on small machines."""
    if not os.environ.get("NUMBA_THREADING_LAYER"):
        import numba
        numba.config.THREADING_LAYER = "workqueue"


def build(graph, outputs=None, parallel="auto", copy_outputs=True, flush_subnormals=True):
    """The numba backend's compile.  Outputs are copied out of the workspace unless
    copy_outputs=False (then they are overwritten by the next call).  With
    flush_subnormals (the default) each call runs with flush-to-zero on, as XLA
    does: subnormal floats become 0 instead of costing ~100 cycles each."""
    select_threading_layer()
    if flush_subnormals not in (True, False):
        raise GraphcError(f"flush_subnormals must be True or False, got {flush_subnormals!r}")
    outputs = graph.select_outputs(outputs)
    return NumbaCompiled(graph, outputs, parallel, copy_outputs, flush_subnormals)


class NumbaCompiled(Compiled):
    """Host side of a numba module: binds feeds, owns the workspaces, calls `run`."""

    def __init__(self, graph, outputs, parallel, copy_outputs, flush_subnormals):
        self._outputs, self._parallel, self.copy_outputs = outputs, parallel, copy_outputs
        self._flush = flush_subnormals
        source, constants = emit_module(graph, outputs, parallel=False if parallel == "auto" else parallel,
                                        flush_subnormals=flush_subnormals)
        super().__init__(graph, source, load_source(source, "numba", constants), "numba")
        self._resolved = parallel != "auto"
        self._workspaces = {}
        self._out_dtypes = [np.dtype(graph.dtype(outputs[name])) for name in self.output_names]

    def _resolve_parallel(self, dims):
        """parallel="auto": re-emit once, with prange where the first call's sizes repay it."""
        source, constants = emit_module(self.graph, self._outputs, parallel="auto", dims=dims, flush_subnormals=self._flush)
        if source != self.source:
            self.source, self.module = source, load_source(source, "numba", constants)
            self.path = self.module.__file__
        self._resolved = True

    def _run(self, args, dims):
        if not self._resolved:
            self._resolve_parallel(dims)
        for k, *_ in self._fed:
            a = args[k]
            if a.ndim == 0 or not a.flags.c_contiguous:
                args[k] = _as_kernel_arg(a)
        try:
            result = self.module.run(*args, self._workspace(dims))
        except (ValueError, IndexError) as e:
            raise CallError(f"graph {self.graph.name!r}: {e}") from None
        return {name: _output(v, dt, self.copy_outputs) for name, v, dt in zip(self.output_names, result, self._out_dtypes)}

    def _discard_damaged_cache(self, error):
        return discard_damaged_cache(self.module, error)

    def _held_arg(self, arr):
        return _as_kernel_arg(arr)  # 0-d state is passed as a 1-element view of the same memory

    def _workspace(self, dims):
        """The buffer views for these dims, carved from workspace arrays allocated once."""
        key = tuple(dims.get(d) for d in self.module.DIMS)
        views = self._workspaces.get(key)
        if views is None:
            sizes = self.module.workspace_sizes(*key)
            ws = [np.empty(s, dtype=dt) for s, dt in zip(sizes, self.module.WORKSPACE_DTYPES)]
            views = self.module.workspace_views(*ws, *key)
            self._workspaces = {key: views}  # keep one set: a ragged last batch must not pile up memory
        return views


def _as_kernel_arg(a):
    if a.ndim == 0:
        return a.reshape(1)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _output(v, dtype, copy):
    if isinstance(v, np.ndarray):
        return v.copy() if copy else v
    return np.asarray(v, dtype=dtype)  # numba boxes a float32 scalar as a Python float
