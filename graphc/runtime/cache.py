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
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from graphc._version import __version__
from graphc.errors import GraphcError


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


def purge_compiled(path, suffixes=None):
    """Delete what was compiled from the module file `path` and kept in the
    __pycache__ beside it: every such file (Python's .pyc, a JIT's cache), or those
    with one of `suffixes`; returns whether anything was there to delete."""
    path = Path(path)
    found = False
    for entry in (path.parent / "__pycache__").glob(f"{path.stem}.*"):
        if suffixes is None or entry.suffix in suffixes:
            found = True
            with contextlib.suppress(OSError):
                entry.unlink()
    return found


def _constants_key(constants):
    """What of the constants the content hash covers: names, dtypes, shapes and bytes."""
    parts = []
    for k, v in sorted((constants or {}).items()):
        v = np.ascontiguousarray(v)
        parts += [k, v.dtype.str, v.shape, hashlib.sha256(v.tobytes()).hexdigest()]
    return parts


# ----- what `graphc cache info` and `graphc cache clear` show and empty ---------------------
def _graphc_files(folder):
    """What graphc wrote in one backend folder: its modules, their compiled files (Python's
    .pyc, numba's index and data) and leftover temporaries.  Nothing else is ever counted
    or deleted, so a GRAPHC_CACHE_DIR pointed at a shared folder loses only graphc's files."""
    found = [p for p in folder.glob("graphc_*") if p.is_file()]
    pycache = folder / "__pycache__"
    if pycache.is_dir() and not pycache.is_symlink():
        found += [p for p in pycache.glob("graphc_*") if p.is_file()]
    return found


def _backend_folders(root):
    """The cache's backend folders; a link is never followed, so clearing cannot reach outside the cache."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def cache_report():
    """{folder name: {"modules", "compiled", "bytes"}} for each backend folder of the cache."""
    report = {}
    for folder in _backend_folders(cache_dir()):
        files = _graphc_files(folder)
        if files:
            modules = sum(1 for p in files if p.parent == folder and p.suffix == ".py")
            report[folder.name] = {"modules": modules, "compiled": len(files) - modules,
                                   "bytes": sum(p.stat().st_size for p in files)}
    return report


def clear_cache(backend=None):
    """Delete graphc's files from the cache (one backend's folder, or all); returns
    (files, bytes) deleted.  Always safe: modules are rewritten and kernels recompiled on demand."""
    folders = [f for f in _backend_folders(cache_dir()) if backend is None or f.name == backend]
    count = size = 0
    for folder in folders:
        for path in _graphc_files(folder):
            with contextlib.suppress(OSError):
                size += path.stat().st_size
                path.unlink()
                count += 1
        for empty in (folder / "__pycache__", folder):
            with contextlib.suppress(OSError):
                empty.rmdir()  # only when nothing else is left in it
    return count, size
