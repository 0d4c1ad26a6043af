"""Backends: each is a lookup table keyed by op that turns IR nodes into source."""
