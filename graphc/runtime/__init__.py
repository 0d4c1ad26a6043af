"""The runtime: emitted source is written to files named by a content hash and
imported from there (cache.py), and wrapped in a `Compiled` (compiled.py).
It never names a backend: backends/ call into it."""
from graphc.runtime.cache import (CacheWarning, cache_dir, content_hash, heal_warning,  # noqa: F401
                                  load_source, purge_compiled)
from graphc.runtime.compiled import Compiled  # noqa: F401
