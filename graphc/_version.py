"""The version lives in a leaf module, so that any layer can read it without importing graphc."""
__version__ = "0.1.0"
