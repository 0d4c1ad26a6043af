"""The op table.  Importing this package registers every built-in op."""
from graphc.ir.ops import elementwise as elementwise  # noqa: F401  (registration side effects)
from graphc.ir.ops import leaf as leaf
from graphc.ir.ops import nn as nn
from graphc.ir.ops import tensor as tensor
from graphc.ir.ops.registry import OPS, OpDef, get, register, table

__all__ = ["OPS", "OpDef", "get", "register", "table"]
