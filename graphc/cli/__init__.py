"""The `graphc` command: argparse entry point (main.py) and input parsing (inputs.py)."""
from graphc.cli.main import main  # noqa: F401
