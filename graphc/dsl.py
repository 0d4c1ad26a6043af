"""Kept so that code written against the flat layout of graphc 0.1 keeps working:
the DSL now lives in graphc.frontend.dsl (docs/architecture.md)."""
from graphc.frontend.dsl import *  # noqa: F401,F403
from graphc.frontend.tracing import trace  # noqa: F401  (graphc.dsl.trace, as in 0.1)
