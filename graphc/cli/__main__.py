"""`python -m graphc.cli ...` is the same as the `graphc` command."""
import sys

from graphc.cli.main import main

sys.exit(main())
