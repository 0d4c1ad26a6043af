"""The compiled-function base that every backend's module is wrapped in: binds feeds by
name, checks shapes on the first call, holds parameters between calls."""

from abc import ABC, abstractmethod

import numpy as np

from graphc.ir import shapes as S
from graphc.errors import CallError, LabelRangeError, NumericError
from graphc.check.interpreter import bind_feeds, check_empty_axes, empty_axis_checks


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
                S.unify(declared, self._held[name].shape, self._held_dims)

    def _held_arg(self, arr):
        """A held array as the backend's `run` takes it (a hook for backends)."""
        return arr

    # ----- state held between calls ---------------------------------------------
    def hold(self, arrays):
        """Keep these leaves (by name) with the compiled function; returns self."""
        for name, value in arrays.items():
            _, declared, dtype = self._spec(name)
            arr = np.asarray(value)
            if arr.dtype != dtype or S.unify(declared, arr.shape, {}):
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
                if S.unify(declared, arr.shape, dims):  # a reason: it does not fit
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
        """The first call loads the backend's on-disk kernel cache, if it has one.  If
        a damaged cache entry fails it (`_discard_damaged_cache`), run again -- from the
        held state as it was before the call, since kernels that ran before the
        failure may have updated it."""
        saved = {name: np.array(arr) for name, arr in self._held.items() if isinstance(arr, np.ndarray)}
        try:
            out = self._run(args, dims)
        except Exception as e:
            if not self._discard_damaged_cache(e):
                raise
            for name, value in saved.items():
                self._held[name][...] = value  # in place: `args` holds views of these arrays
            out = self._run(args, dims)
        self._warm = True
        return out

    def _discard_damaged_cache(self, error):
        """Whether `error` came from a damaged on-disk cache of this module's kernels,
        now discarded so that running again recompiles them (a hook for backends
        whose compiler keeps such a cache; the module file itself heals in load_source)."""
        return False

    def _named_label_error(self, args):
        """The interpreter finds the node whose labels are out of range and words the
        error as the compiled kernels do; it only runs when a call has already failed."""
        from graphc.check.interpreter import evaluate
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
