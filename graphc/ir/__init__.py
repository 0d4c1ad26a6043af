"""The IR: `Graph` (a networkx DAG of ops), shapes, the feed signature and the op
table (ops/).  It imports errors only: everything else in graphc builds on it."""
from graphc.ir.graph import GRAPH_NAME_RE, LEAF_OPS, NAME_RE, Graph  # noqa: F401
