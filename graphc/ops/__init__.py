"""The op table.  Importing this package registers every built-in op."""
from graphc.ops import elementwise, leaf, nn, tensor  # noqa: F401  (registration side effects)
from graphc.ops.registry import OPS, OpDef, get, register, table

__all__ = ["OPS", "OpDef", "get", "register", "table"]
