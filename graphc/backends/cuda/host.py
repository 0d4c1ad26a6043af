"""The CUDA backend as the registry sees it: `emit` (emit.py) and `build`, whose
Compiled keeps held arrays and the workspace on the device and launches `run`."""
import importlib.util
import os

import numpy as np

from graphc.backends.common.jitcache import discard_damaged_cache
from graphc.backends.cuda.emit import emit, emit_module, options, simulating  # noqa: F401  (emit: the registry's)
from graphc.errors import CallError, GraphcError
from graphc.runtime import Compiled, load_source


class _HeldScalar:
    """A held 0-d array: a 1-element device array that shows the caller shape ()."""
    shape = ()

    def __init__(self, dev):
        self.dev = dev


class CudaCompiled(Compiled):
    """Host side of a CUDA module: keeps held arrays and the workspace on the device,
    copies fed arrays into device buffers of their own, and launches `run`."""

    def __init__(self, graph, outputs, opts):
        from numba import cuda
        self._cuda = cuda
        source, constants = emit_module(graph, outputs, **opts)
        super().__init__(graph, source, load_source(source, "cuda", constants), "cuda")
        self._by_ref = [name in self.module.BY_REF for name in self.input_names]
        self._key, self._ws, self._dev = None, None, {}

    def _discard_damaged_cache(self, error):
        return discard_damaged_cache(self.module, error)

    def _to_backend(self, arr):
        if arr.ndim == 0:
            return _HeldScalar(self._cuda.to_device(arr.reshape(1)))
        return self._cuda.to_device(arr)

    def _to_host(self, arr):
        if isinstance(arr, _HeldScalar):
            return arr.dev.copy_to_host().reshape(())
        return arr.copy_to_host()

    def _run(self, args, dims):
        m = self.module
        key = tuple(dims.get(d) for d in m.DIMS)
        if key != self._key:  # keep one set: a ragged last batch must not pile up device memory
            self._key, self._ws, self._dev = key, m.workspace(*key), {}
        check = False
        for source, bound, message in m.LABEL_CHECKS:
            if source is None or source in self._held:
                check = True
                continue
            labels = args[self.input_names.index(source)]
            bound = dims.get(bound, bound)
            if labels.size and (labels.min() < 0 or labels.max() >= bound):
                raise CallError(f"graph {self.graph.name!r}: {message}")  # before anything is launched
        device_args = [self._device_arg(i, a) for i, a in enumerate(args)]
        try:
            result = m.run(*device_args, self._ws, check)
        except ValueError as e:
            raise CallError(f"graph {self.graph.name!r}: {e}") from None
        return dict(zip(self.output_names, result))

    def _device_arg(self, i, a):
        if isinstance(a, _HeldScalar):
            return a.dev if self._by_ref[i] else a.dev.copy_to_host()[0]
        if not isinstance(a, np.ndarray):
            return a  # a held device array
        if a.ndim == 0:
            return self._cuda.to_device(a.reshape(1)) if self._by_ref[i] else a[()]
        dev = self._dev.get(i)
        if dev is None:
            dev = self._dev[i] = self._cuda.device_array(a.shape, a.dtype)
        dev.copy_to_device(np.ascontiguousarray(a))
        return dev


def _setup_cuda():
    """Check that numba-cuda and a GPU (or the simulator) are there.  graphc picks the
    launch shapes, and small models cannot fill a GPU, so numba-cuda's per-launch
    low-occupancy warning is switched off unless the user set it."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise GraphcError("the cuda backend needs numba-cuda: pip install 'graphc[cuda]'")
    from numba import cuda
    if not simulating() and not cuda.is_available():
        raise GraphcError("no CUDA GPU is available; to run the cuda backend on numba-cuda's simulator, "
                          "set NUMBA_ENABLE_CUDASIM=1 before numba is imported")
    if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in os.environ:
        try:
            from numba.cuda.core import config
            config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
        except ImportError:  # another numba-cuda layout: keep its default
            pass


def build(graph, outputs=None, **opts):
    """The cuda backend's compile: options threads, tile, max_blocks, tree_min."""
    opts = options(**opts)
    _setup_cuda()
    outputs = graph.select_outputs(outputs)
    return CudaCompiled(graph, outputs, opts)
