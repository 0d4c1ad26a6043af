"""Kept so that code written against the flat layout of graphc 0.1 keeps working:
the backends now live in graphc.backends (docs/architecture.md)."""
from graphc.backends import *  # noqa: F401,F403
from graphc.backends.python import pyref  # noqa: F401
