"""numba's on-disk kernel cache, healed: both compiled backends compile their
kernels with cache=True, and a truncated or garbage cache entry must cost one
recompile and one CacheWarning, never a manual delete (docs/backends.md)."""
import contextlib
import os

from graphc.runtime import heal_warning, purge_compiled

_NUMBA_CACHE_FILE = os.path.join("numba", "core", "caching.py")


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


def discard_damaged_cache(module, error):
    """If `error` came from numba's cache of this module's kernels, discard that cache so
    the next call recompiles them -- empty each kernel's index (wherever NUMBA_CACHE_DIR
    puts it), then delete the files beside the module -- and say so; else False."""
    if not is_cache_failure(error):
        return False
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
        return False
    heal_warning(module.__file__, error)
    return True
