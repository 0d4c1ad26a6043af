"""Host side of the numba CPU backend: binds feeds, owns the workspaces, calls `run`.

The emitter is `numba_cpu.py`; this is what `numba_cpu.build` wraps its module in.
"""
import numpy as np

from graphc.backends.numba_cpu.emit import emit_module
from graphc.errors import CallError
from graphc.runtime import Compiled, load_source


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
