"""Kept so that code written against the flat layout of graphc 0.1 keeps working:
the backprop table now lives in graphc.view.backprop_table (docs/architecture.md)."""
from graphc.view.backprop_table import *  # noqa: F401,F403
