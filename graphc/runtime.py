"""Load emitted source from files named by a content hash, and validate calls.

Emitted code lives in real files (not exec'd strings) so tracebacks point into
it and so numba's on-disk cache works (numba#3501): numba keys its cache on
the source file, and our file names are hashes of graph, graphc version,
dtype and backend, because they hash the emitted source, which contains all
of them.  The cache directory is $GRAPHC_CACHE_DIR, else
$XDG_CACHE_HOME/graphc, else ~/.cache/graphc.  Deleting it is always safe:
files are rebuilt, and kernels recompiled, on demand.
"""
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from graphc import __version__
from graphc import shapes as S
from graphc.errors import CallError, GraphcError, NumericError
from graphc.interpreter import bind_feeds

BACKENDS = {
    "python": "graphc.codegen.python",  # readable NumPy: the oracle
    "numba": "graphc.codegen.numba_cpu",  # fused @njit kernels
    "cuda": "graphc.codegen.numba_cuda",  # @cuda.jit kernels (numba-cuda; the simulator without a GPU)
}


def cache_dir():
    root = os.environ.get("GRAPHC_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "graphc")
    return Path(root)


def content_hash(*parts):
    h = hashlib.sha256()
    for part in (__version__, *parts):
        h.update(str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def load_source(source, backend, constants=None):
    """Write `source` under the cache (atomically, once) and import it as a module.

    `constants` (name -> array) are the module's array constants: handed over as
    the module global CONSTANTS before its code runs, never printed into source,
    and part of the content hash."""
    digest = content_hash(backend, source, *_constants_key(constants))
    folder = cache_dir() / backend
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"graphc_{digest}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # readers never see a half-written module
    module_name = f"graphc_generated_{backend}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and loaded.__file__ == str(path):
        return loaded  # reuse only a module loaded from this very file (the cache dir may change)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    if constants:
        module.CONSTANTS = {k: np.array(v) for k, v in constants.items()}  # the module's own copies
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _constants_key(constants):
    """What of the constants the content hash covers: names, dtypes, shapes and bytes."""
    parts = []
    for k, v in sorted((constants or {}).items()):
        v = np.ascontiguousarray(v)
        parts += [k, v.dtype.str, v.shape, hashlib.sha256(v.tobytes()).hexdigest()]
    return parts


class Compiled(ABC):
    """A graph compiled by a backend: call it with arrays by name, get outputs by name.

    `source` is the emitted code and `path` the file it was loaded from.  Leaves
    passed to `hold` (a step's parameters and optimizer state) stay with the
    compiled function between calls -- on the device, for CUDA -- and need not
    be fed; a graph's `updates` write their new values into those arrays.
    Backends subclass this and implement `_run`.
    """

    def __init__(self, graph, source, module, backend):
        self.graph, self.source, self.module, self.backend = graph, source, module, backend
        self.path = module.__file__
        self.input_names = list(module.INPUTS)
        self.output_names = list(module.OUTPUTS)
        leaves = [graph.find(name) for name in self.input_names]
        self._specs = [(name, graph.shape(n), np.dtype(graph.dtype(n))) for name, n in zip(self.input_names, leaves)]
        self._held = {}
        self._index_specs()

    def _index_specs(self):
        """Precompute what each call checks: which leaves are fed, and which have symbolic dims."""
        self._fed = [(k, name, declared, dtype, any(isinstance(d, str) for d in declared))
                     for k, (name, declared, dtype) in enumerate(self._specs) if name not in self._held]
        self._template = [self._held_arg(self._held[name]) if name in self._held else None for name, _, _ in self._specs]
        self._held_dims = {}
        for name, declared, _ in self._specs:
            if name in self._held:
                _unify(declared, self._held[name].shape, self._held_dims)

    def _held_arg(self, arr):
        """A held array as the backend's `run` takes it (a hook for backends)."""
        return arr

    # ----- state held between calls ---------------------------------------------
    def hold(self, arrays):
        """Keep these leaves (by name) with the compiled function; returns self."""
        for name, value in arrays.items():
            _, declared, dtype = self._spec(name)
            arr = np.asarray(value)
            if arr.dtype != dtype or not _unify(declared, arr.shape, {}):
                raise CallError(f"cannot hold '{name}': graph {self.graph.name!r} declares {S.fmt(declared)} {dtype}, "
                                f"got {S.fmt(arr.shape)} {arr.dtype}")
            self._held[name] = self._to_backend(np.array(arr, order="C"))  # a copy the compiled function owns
        self._index_specs()
        return self

    @property
    def held(self):
        """Host copies (views, on the CPU) of the held arrays, by name."""
        return {name: self._to_host(arr) for name, arr in self._held.items()}

    def _spec(self, name):
        for spec in self._specs:
            if spec[0] == name:
                return spec
        raise CallError(f"'{name}' is not an input or param of graph {self.graph.name!r}; it takes {', '.join(self.input_names)}")

    def _to_backend(self, arr):
        return arr

    def _to_host(self, arr):
        return arr

    # ----- calls ---------------------------------------------------------------------
    def __call__(self, feeds=None, check_finite=False, **kw_feeds):
        feeds = dict(feeds, **kw_feeds) if feeds and kw_feeds else (feeds or kw_feeds)
        bound = self._fast_bind(feeds)
        if bound is None:
            bound = self._fast_bind(self._checked(feeds))
        args, dims = bound
        if check_finite:
            _check_finite_inputs(self._specs, args)
        out = self._run(args, dims)
        if check_finite:
            _check_finite_outputs(out)
        return out

    def _fast_bind(self, feeds):
        """Arguments in the module's order and the bound dims, or None when anything
        is off (then `_checked` finds and names the fault).  This runs every call,
        so it checks each array directly rather than through `bind_feeds`."""
        if len(feeds) != len(self._fed):
            return None
        args, dims = list(self._template), dict(self._held_dims)
        for k, name, declared, dtype, symbolic in self._fed:
            arr = feeds.get(name)
            if arr.__class__ is not np.ndarray or (arr.dtype is not dtype and arr.dtype != dtype):
                return None
            if symbolic:
                if not _unify(declared, arr.shape, dims):
                    return None
            elif arr.shape != declared:
                return None
            args[k] = arr
        return args, dims

    def _checked(self, feeds):
        """Raise the CallError that names what is wrong with `feeds`, or return them
        converted to arrays (Python lists and scalars are accepted)."""
        held = sorted(k for k in feeds if k in self._held)
        if held:
            raise CallError(f"'{held[0]}' is held by this compiled function (a step's parameter or state); do not feed it")
        arrays = {name: self._to_host(arr) for name, arr in self._held.items()}
        values, _ = bind_feeds(self.graph, {**feeds, **arrays})
        return {name: np.asarray(values[self.graph.find(name)]) for name in feeds}

    @abstractmethod
    def _run(self, args, dims):
        """Run the backend's module on arguments in INPUTS order; {output name: value}."""

    def __repr__(self):
        return f"<graphc.Compiled {self.graph.name!r} backend={self.backend} path={self.path}>"


def _unify(declared, shape, dims):
    if len(declared) != len(shape):
        return False
    for want, got in zip(declared, shape):
        if want.__class__ is str:
            if dims.setdefault(want, got) != got:
                return False
        elif want != got:
            return False
    return True


def _fits(declared, shape):
    return _unify(declared, shape, {})


def _check_finite_inputs(specs, args):
    for (name, _, dtype), arr in zip(specs, args):
        host = np.asarray(arr) if isinstance(arr, np.ndarray) else None
        if host is not None and dtype.kind == "f" and not np.all(np.isfinite(host)):
            raise NumericError(f"input '{name}' contains NaN or Inf")


def _check_finite_outputs(out):
    for name, v in out.items():
        if np.asarray(v).dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise NumericError(f"output '{name}' is not finite; run gc.evaluate(graph, feeds, check_finite=True) "
                               "to find the first node that produced NaN or Inf")


def backend_module(backend):
    if backend not in BACKENDS:
        raise GraphcError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[backend])


def emit_source(graph, backend="python", outputs=None, **options):
    """The source a backend emits for `graph` (what `graphc emit` prints)."""
    return backend_module(backend).emit(graph, outputs, **options)


def compile(graph, backend="python", outputs=None, **options):
    """Emit `graph` for `backend`, load it from the cache directory, and wrap it.

    Backends: "python" (readable NumPy), "numba" (fused CPU kernels; options
    `parallel` = "auto" | True | False), "cuda" (numba-cuda kernels).
    """
    module = backend_module(backend)
    params = inspect.signature(module.build).parameters.values()
    accepted = [p.name for p in params if p.name not in ("graph", "outputs") and p.kind != p.VAR_KEYWORD]
    unknown = sorted(set(options) - set(accepted))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params):  # a **options backend checks its own
        raise GraphcError(f"backend {backend!r} has no option {unknown[0]!r}; its options: {', '.join(accepted) or 'none'}")
    graph.validate(outputs_need_inputs=False)  # rewrites may have folded an output to a constant
    return module.build(graph, outputs, **options)


def compile_validated(graph, backend="python", outputs=None, **options):
    """`compile` for a graph its caller has just validated, as `build_step` does:
    the same, without validating it a second time."""
    return backend_module(backend).build(graph, outputs, **options)
