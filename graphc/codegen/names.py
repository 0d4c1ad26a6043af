"""The one name authority for emitted code: every identifier comes from a Scope.

Emitters fuse many ops into one Python scope, so a user's node called `m`, `s`
or `i0` would otherwise meet a template's temporary of the same name (a
silent wrong result).  A `Scope` hands out every identifier a module uses:

- `bind(key, hint)` -- a stable name for something with identity (a node, a
  dim, a kernel): the sanitized hint, kept as is when free (readable output),
  else `hint_2`, `hint_3`, ...
- `fresh(hint)` -- a new temporary, unique in this scope and every enclosing
  one (and, for a module-level name, every scope below it).
- `use(name)` -- record that the function this scope stands for reads `name`;
  emitters make kernel parameters from these reads.

The module scope starts with Python's keywords, builtins and the module's
own imports and helpers, so nothing generated can shadow them.
"""
import builtins
import keyword
import re

_NON_IDENT = re.compile(r"[^A-Za-z0-9_]")

# Everything an emitted module imports or defines at module level, by any backend.
MODULE_NAMES = (
    "math", "np", "numba", "njit", "prange", "cuda", "ref", "run", "flush_subnormals", "restore",
    "INPUTS", "OUTPUTS", "SCALAR_INPUTS", "DIMS", "WORKSPACE", "WORKSPACE_DTYPES", "BY_REF", "LABEL_CHECKS",
    "CONSTANTS", "THREADS", "TILE", "MAX_BLOCKS", "workspace", "workspace_sizes", "workspace_views",
    "_aligned", "_blocks", "_tree_blocks", "_tiles",
)


def sanitize(hint):
    """A valid ASCII identifier close to `hint`: dots, spaces, quotes, non-ASCII -> '_'."""
    text = _NON_IDENT.sub("_", str(hint)) or "_"
    return "_" + text if text[0].isdigit() else text


class Scope:
    """Names of one generated function (or of the module, the root)."""

    def __init__(self, parent=None, reserved=()):
        self.parent, self.children = parent, []
        self.taken, self.keys, self.reads = set(reserved), {}, []
        if parent is None:
            self.taken |= set(keyword.kwlist) | set(getattr(keyword, "softkwlist", ())) | set(dir(builtins))
            self.taken |= set(MODULE_NAMES)
        else:
            parent.children.append(self)

    def child(self, reserved=()):
        return Scope(self, reserved)

    # ----- handing out names ----------------------------------------------------------
    def _visible(self, name):
        scope = self
        while scope is not None:
            if name in scope.taken:
                return True
            scope = scope.parent
        return False

    def _below(self, name):
        return any(name in c.taken or c._below(name) for c in self.children)

    def is_free(self, name):
        return not self._visible(name) and not self._below(name)

    def fresh(self, hint):
        """A new identifier from `hint`, clashing with nothing above or below this scope."""
        base = sanitize(hint)
        name, k = base, 1
        if not self.is_free(name):
            name = base + "_"  # np -> np_, lambda -> lambda_: as readable as it gets
        while not self.is_free(name):
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def bind(self, key, hint):
        """The identifier for `key` (a node, ("dim", d), ...): made once, then looked up."""
        found = self.lookup(key)
        if found is None:
            found = self.keys[key] = self.fresh(hint)
        return found

    def lookup(self, key):
        scope = self
        while scope is not None:
            if key in scope.keys:
                return scope.keys[key]
            scope = scope.parent
        return None

    # ----- what a function reads --------------------------------------------------------
    def use(self, name):
        if name not in self.reads:
            self.reads.append(name)
        return name

    def all_names(self):
        """Every identifier this scope and the scopes below it handed out or reserved."""
        out = set(self.taken)
        for c in self.children:
            out |= c.all_names()
        return out
