"""Load emitted source from files named by a content hash, and validate calls.

Emitted code lives in real files (not exec'd strings) so tracebacks point into
it and so numba's on-disk cache works (numba#3501): numba keys its cache on
the source file, and our file names are hashes of graph, graphc version,
dtype and backend, because they hash the emitted source, which contains all
of them.  The cache directory is $GRAPHC_CACHE_DIR, else
$XDG_CACHE_HOME/graphc, else ~/.cache/graphc.  Deleting it is always safe:
files are rebuilt, and kernels recompiled, on demand.
"""
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import shutil
import sys
import warnings
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from graphc import __version__
from graphc import shapes as S
from graphc.errors import CallError, GraphcError, LabelRangeError, NumericError
from graphc.interpreter import bind_feeds, check_empty_axes, empty_axis_checks

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
    and part of the content hash.  A damaged cache entry (a changed or non-UTF-8
    .py, a truncated .pyc) is discarded and rebuilt with one CacheWarning: the
    cache never needs a manual delete."""
    digest = content_hash(backend, source, *_constants_key(constants))
    folder = _cache_folder(backend)
    path = folder / f"graphc_{digest}.py"
    data = source.encode()
    found = _read_bytes(path)
    if found != data:
        if found is not None:  # the name is a hash of the content: other bytes mean damage
            _warn_damaged(folder, path.name)
            purge_compiled(path)
        _write_atomic(path, data)
    module_name = f"graphc_generated_{backend}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and loaded.__file__ == str(path):
        return loaded  # reuse only a module loaded from this very file (the cache dir may change)
    try:
        return _import_file(module_name, path, constants)
    except Exception as e:  # our source compiles, so only its cached bytecode can be bad
        if not purge_compiled(path, suffixes=(".pyc",)):
            raise
        heal_warning(path, e)
        return _import_file(module_name, path, constants)


def _import_file(module_name, path, constants=None):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    if constants:
        module.CONSTANTS = {k: np.array(v) for k, v in constants.items()}  # the module's own copies
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)  # no half-imported module for the next call to reuse
        raise
    return module


# ----- a cache that heals itself ------------------------------------------------------
class CacheWarning(UserWarning):
    """graphc found a damaged cache entry, discarded it and rebuilt it."""


def _cache_folder(backend):
    root = cache_dir()
    try:
        folder = root / backend
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GraphcError(f"cannot use the graphc cache directory {str(root)!r} (GRAPHC_CACHE_DIR, else "
                          f"XDG_CACHE_HOME/graphc): {e.strerror or e}; point GRAPHC_CACHE_DIR at a "
                          "writable directory") from None
    return folder


def _read_bytes(path):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return b""  # unreadable (a directory, no permission): damaged, replace it


def _write_atomic(path, data):
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)  # readers never see a half-written module
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise GraphcError(f"cannot write {str(path)!r} in the graphc cache: {e.strerror or e}; point "
                          "GRAPHC_CACHE_DIR at a writable directory") from None


def _warn_damaged(folder, what):
    # warn_explicit with a pseudo file name: the warning is one line, with no source line under it
    warnings.warn_explicit(f"graphc: discarded a damaged cache entry {what} in {folder}; it is rebuilt",
                           CacheWarning, filename="<graphc cache>", lineno=0)


def heal_warning(path, error):
    path = Path(path)
    _warn_damaged(path.parent, f"for {path.name} ({type(error).__name__})")


def purge_compiled(path, suffixes=(".pyc", ".nbi", ".nbc")):
    """Delete what Python and numba compiled from the module file `path` (in the
    __pycache__ beside it); returns whether anything was there to delete."""
    path = Path(path)
    found = False
    for entry in (path.parent / "__pycache__").glob(f"{path.stem}.*"):
        if entry.suffix in suffixes:
            found = True
            with contextlib.suppress(OSError):
                entry.unlink()
    return found


def is_cache_failure(error):
    """Whether `error` (or one it was raised from) came out of numba's on-disk cache
    loader: a truncated or garbage .nbi/.nbc makes it raise whatever unpickling raises."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith(_NUMBA_CACHE_FILE):
                return True
            tb = tb.tb_next
        error = error.__cause__ or error.__context__
    return False


_NUMBA_CACHE_FILE = os.path.join("numba", "core", "caching.py")


def heal_cache_entry(module, error):
    """Discard numba's cache of this module's kernels so the next call recompiles
    them: empty each kernel's index (wherever NUMBA_CACHE_DIR puts it), then delete
    the files beside the module.  Re-raises `error` when there was nothing to discard."""
    flushed = False
    for obj in list(vars(module).values()):
        if not type(obj).__module__.startswith("numba"):  # only numba's dispatchers have a disk cache
            continue
        cache = getattr(obj, "_cache", None)
        if cache is not None and hasattr(cache, "flush"):
            with contextlib.suppress(Exception):  # a damaged index is simply overwritten
                cache.flush()
                flushed = True
    if not (purge_compiled(module.__file__, suffixes=(".nbi", ".nbc")) or flushed):
        raise error
    heal_warning(module.__file__, error)


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
        self._empty_axes = empty_axis_checks(graph)  # max nodes to refuse when a dim is bound to 0
        self._warm = False  # until a call has succeeded (see _first_run)
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
        if self._empty_axes:
            check_empty_axes(self.graph, self._empty_axes, dims)
        if check_finite:
            _check_finite_inputs(self._specs, args)
        try:
            out = self._run(args, dims) if self._warm else self._first_run(args, dims)
        except LabelRangeError as e:  # from a NumPy reference (python backend): name the node
            raise self._named_label_error(args) from e  # the cause's traceback shows the emitted line
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

    def _first_run(self, args, dims):
        """The first call loads numba's on-disk cache.  If a damaged cache entry fails
        it, discard the entry and run again -- from the held state as it was before
        the call, since kernels that ran before the failure may have updated it."""
        saved = {name: np.array(arr) for name, arr in self._held.items() if isinstance(arr, np.ndarray)}
        try:
            out = self._run(args, dims)
        except Exception as e:
            if not is_cache_failure(e):
                raise
            heal_cache_entry(self.module, e)
            for name, value in saved.items():
                self._held[name][...] = value  # in place: `args` holds views of these arrays
            out = self._run(args, dims)
        self._warm = True
        return out

    def _named_label_error(self, args):
        """The interpreter finds the node whose labels are out of range and words the
        error as the compiled kernels do; it only runs when a call has already failed."""
        from graphc.interpreter import evaluate
        try:
            evaluate(self.graph, {**dict(zip(self.input_names, args)), **self.held})
        except CallError as err:
            return err
        return CallError(f"graph {self.graph.name!r}: a label is outside its range")

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
