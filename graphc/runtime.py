"""Load emitted source from files named by a content hash, and validate calls.

Emitted code lives in real files (not exec'd strings) so tracebacks point into
it and, for the numba backends, so numba's on-disk cache works (numba#3501).
The cache directory is $GRAPHC_CACHE_DIR, else $XDG_CACHE_HOME/graphc, else
~/.cache/graphc.  Deleting it is always safe: files are rebuilt on demand.
"""
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from graphc import __version__
from graphc.errors import NumericError
from graphc.interpreter import bind_feeds


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


def load_source(source, backend):
    """Write `source` under the cache (atomically, once) and import it as a module."""
    digest = content_hash(backend, source)
    folder = cache_dir() / backend
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"graphc_{digest}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    module_name = f"graphc_generated_{backend}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and loaded.__file__ == str(path):
        return loaded  # reuse only a module loaded from this very file (the cache dir may change)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class Compiled:
    """A graph compiled by a backend: call it with arrays by name, get outputs by name.

    `source` is the emitted code and `path` the file it was loaded from.
    """

    def __init__(self, graph, source, module, backend):
        self.graph, self.source, self.module, self.backend = graph, source, module, backend
        self.path = module.__file__
        self.input_names = list(module.INPUTS)
        self.output_names = list(module.OUTPUTS)

    def __call__(self, feeds=None, check_finite=False, **kw_feeds):
        feeds = dict(feeds or {}, **kw_feeds)
        values, _ = bind_feeds(self.graph, feeds)
        args = [values[self.graph.find(name)] for name in self.input_names]
        out = self.module.run(*args)
        if check_finite:
            for name, v in out.items():
                if not np.all(np.isfinite(v)):
                    raise NumericError(f"output '{name}' is not finite; evaluate with check_finite=True to find the first node")
        return out

    def __repr__(self):
        return f"<graphc.Compiled {self.graph.name!r} backend={self.backend} path={self.path}>"


def compile(graph, backend="python", outputs=None):
    """Emit `graph` for `backend`, load it from the cache directory, and wrap it."""
    if backend != "python":
        raise ValueError(f"unknown backend {backend!r}; this version has 'python'")
    from graphc.codegen.python import emit
    graph.validate(outputs_need_inputs=False)  # rewrites may have folded an output to a constant
    source = emit(graph, outputs)
    return Compiled(graph, source, load_source(source, backend), backend)
