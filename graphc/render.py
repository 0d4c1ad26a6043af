"""Kept so that code written against the flat layout of graphc 0.1 keeps working:
the renderer now lives in graphc.view.render (docs/architecture.md)."""
from graphc.view.render import *  # noqa: F401,F403
