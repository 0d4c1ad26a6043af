"""The import paths of graphc 0.1's flat layout, kept working without a file each.

graphc 0.1 kept every module at the top level (graphc/verify.py, graphc/ops/, ...);
they now live in layer folders (docs/architecture.md).  Code and docs written
against the old paths still import: `import graphc.verify` or
`from graphc.graphfile import load` gives a stand-in module that forwards every
attribute to the module's new home, imported on first use (so naming an old path
costs nothing until it is read).  The stand-in is not the module itself: assigning
to it does not reach the new module.

`graphc/__init__.py` installs the finder.  graphc.dsl and graphc.render are not
here: they are the public DSL and renderer modules and exist as files.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types

OLD_PATHS = {  # old module: new module
    "graphc.autodiff": "graphc.transform.autodiff",
    "graphc.backprop_table": "graphc.view.backprop_table",
    "graphc.codegen": "graphc.backends",
    "graphc.codegen.pyref": "graphc.backends.python.pyref",
    "graphc.codegen.names": "graphc.backends.common.names",
    "graphc.codegen.literals": "graphc.backends.common.literals",
    "graphc.collapse": "graphc.view.collapse",
    "graphc.functional": "graphc.frontend.functional",
    "graphc.gradcheck": "graphc.check.gradcheck",
    "graphc.graphfile": "graphc.io.graphfile",
    "graphc.interpreter": "graphc.check.interpreter",
    "graphc.ops": "graphc.ir.ops",
    "graphc.ops.registry": "graphc.ir.ops.registry",
    "graphc.ops.user": "graphc.frontend.user_ops",
    "graphc.rewrite": "graphc.transform.rewrite",
    "graphc.shapes": "graphc.ir.shapes",
    "graphc.stepper": "graphc.view.stepper.page",
    "graphc.tracing": "graphc.frontend.tracing",
    "graphc.verify": "graphc.check.verify",
}
PACKAGES = {"graphc.codegen", "graphc.ops"}  # old paths that had submodules


class _Forward(types.ModuleType):
    """A module whose attributes are those of the module at its new path."""

    def __getattr__(self, name):
        if name == "__all__":  # `from graphc.ops import *` gets what the new module exports
            target = importlib.import_module(OLD_PATHS[self.__name__])
            return list(getattr(target, "__all__", [n for n in dir(target) if not n.startswith("_")]))
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # the import machinery probes dunders: answer as a plain module
        target = importlib.import_module(OLD_PATHS[self.__name__])
        try:
            return getattr(target, name)
        except AttributeError:
            if self.__name__ in PACKAGES:  # `from graphc.codegen import pyref`: a submodule by its old path
                sub = f"{self.__name__}.{name}"
                if sub in OLD_PATHS:
                    return importlib.import_module(OLD_PATHS[sub])
            raise AttributeError(f"module {self.__name__!r} (now {target.__name__!r}) has no attribute {name!r}") from None

    def __dir__(self):
        return dir(importlib.import_module(OLD_PATHS[self.__name__]))


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in OLD_PATHS:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname in PACKAGES)

    def create_module(self, spec):
        module = _Forward(spec.name, f"graphc 0.1 path of {OLD_PATHS[spec.name]}")
        if spec.name in PACKAGES:
            module.__path__ = []  # a package, so that its old submodules import
        return module

    def exec_module(self, module):
        pass


def install():
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        # first: an old path always means the forward, never a stale file that another
        # finder (an editable install of an older checkout, say) could still find
        sys.meta_path.insert(0, _OldPathFinder())
