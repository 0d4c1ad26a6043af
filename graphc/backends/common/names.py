"""The one name authority for emitted code: every identifier comes from a Scope.

Emitters fuse many ops into one Python scope, so a user's node called `m`, `s`
or `i0` would otherwise meet a template's temporary of the same name (a
silent wrong result).  A `Scope` hands out every identifier a module uses:

- `bind(key, hint)` -- a stable name for something with identity (a node, a
  dim, a kernel): the sanitized hint, kept as is when free (readable output),
  else `hint_`, then `hint2`, `hint3`, ...
- `fresh(hint)` -- a new temporary, unique in this scope and every enclosing
  one (and, for a module-level name, every scope below it).
- `use(name)` -- record that the function this scope stands for reads `name`;
  emitters make kernel parameters from these reads.

The module scope starts with Python's keywords, builtins and the module's
own imports and helpers, so nothing generated can shadow them.

Names must also stay distinct after numba's parfor lowering (parallel=True)
renames them: `numba.core.ir_utils.legalize_names` maps a variable `a` to
`a.replace("_", "__").replace("$", "_").replace(".", "_")` and adds that name
to a dict that refuses duplicates ("key already in dictionary").  SSA versions
of a variable are `a.1`, `a.2`; numba's temporaries start with `$`.  So
`y_` becomes `y__`, `y.1` becomes `y_1` and `$phi8.1` becomes `_phi8_1`,
each of which a user may name a node.  Three rules keep every legalized name
apart from every name we hand out:

- no handed-out name contains `__` (every legalized name that changed and had
  a `_` contains one);
- none starts with `_` (a legalized `$` temporary does);
- `a` and `a_<digits>` (a without `_`) are never both handed out
  (`legalize("a.k") == "a_k"`): see `_stem`.
"""
import builtins
import keyword
import re

_NON_IDENT = re.compile(r"[^A-Za-z0-9_]")
_SSA_LIKE = re.compile(r"([^_]+)_[0-9]+")  # what numba's legalize_names makes of SSA version `a.k`

# Everything an emitted module imports or defines at module level, by any backend.
MODULE_NAMES = (
    "math", "np", "numba", "njit", "prange", "cuda", "ref", "run", "flush_subnormals", "restore",
    "INPUTS", "OUTPUTS", "SCALAR_INPUTS", "DIMS", "WORKSPACE", "WORKSPACE_DTYPES", "BY_REF", "LABEL_CHECKS",
    "CONSTANTS", "THREADS", "TILE", "MAX_BLOCKS", "workspace", "workspace_sizes", "workspace_views",
    "_aligned", "_blocks", "_tree_blocks", "_tiles",
)


def sanitize(hint):
    """A valid ASCII identifier close to `hint`: dots, spaces, quotes, non-ASCII -> '_';
    no `__` and no leading `_` (see the module docstring); a leading digit gets `n`."""
    text = re.sub("_+", "_", _NON_IDENT.sub("_", str(hint))).lstrip("_") or "v"
    return "n" + text if text[0].isdigit() else text


def _stem(name):
    """`a` for `a_<digits>` (a without `_`): numba legalizes SSA version `a.k` to it."""
    m = _SSA_LIKE.fullmatch(name)
    return m.group(1) if m else None


class Scope:
    """Names of one generated function (or of the module, the root)."""

    def __init__(self, parent=None, reserved=()):
        self.parent, self.children = parent, []
        self.taken, self.keys, self.reads = set(), {}, []
        self.handed = set()  # the names `fresh` handed out: variables, unlike reserved globals
        self.stems = set()  # `_stem` of every handed-out name that has one
        if parent is None:
            reserved = [*reserved, *keyword.kwlist, *getattr(keyword, "softkwlist", ()), *dir(builtins),
                        *MODULE_NAMES]
        else:
            parent.children.append(self)
        self.taken |= set(reserved)

    def _take(self, name):
        self.taken.add(name)
        self.handed.add(name)
        self.stems.add(_stem(name))

    def child(self, reserved=()):
        return Scope(self, reserved)

    # ----- handing out names ----------------------------------------------------------
    def _clashes(self, name, stem):
        # Reserved names (keywords, builtins, module globals) are never numba variables,
        # so `sum_1` may sit beside the builtin `sum`; only variables need the stem rule.
        return name in self.taken or name in self.stems or stem in self.handed

    def _visible(self, name, stem):
        scope = self
        while scope is not None:
            if scope._clashes(name, stem):
                return True
            scope = scope.parent
        return False

    def _below(self, name, stem):
        return any(c._clashes(name, stem) or c._below(name, stem) for c in self.children)

    def is_free(self, name):
        stem = _stem(name)
        return not self._visible(name, stem) and not self._below(name, stem)

    def fresh(self, hint):
        """A new identifier from `hint`, clashing with nothing above or below this scope."""
        base = sanitize(hint)
        name, k = base, 1
        if not self.is_free(name) and not base.endswith("_"):
            name = base + "_"  # np -> np_, lambda -> lambda_: as readable as it gets
        # Numbered names are never `a_<digits>` and never hold `__`, and each k gives a new one, so
        # rising always reaches a free one.
        stem = base.rstrip("_")
        stem += "n" if stem[-1].isdigit() else ""
        while not self.is_free(name):
            k += 1
            name = f"{stem}{k}"
        self._take(name)
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
