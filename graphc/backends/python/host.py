"""The python backend as the registry sees it: `emit` (emit.py) and `build`, which
loads the emitted module from the cache and wraps it in a Compiled."""
from graphc.backends.python.emit import emit, emit_module  # noqa: F401  (emit: the registry's emit_source)
from graphc.runtime import Compiled, load_source


class PythonCompiled(Compiled):
    def _run(self, args, dims):
        return self.module.run(*args)


def build(graph, outputs=None):
    """Emit, load from the cache directory, and wrap: the python backend's compile."""
    source, constants = emit_module(graph, outputs)
    return PythonCompiled(graph, source, load_source(source, "python", constants), "python")
