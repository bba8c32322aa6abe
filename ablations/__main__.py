"""`python -m ablations COMMAND`: the suite's one command line (ablations/cli.py)."""

import sys

from ablations.cli import main

# Guarded: commands that start spawned processes (bench, path-equivalence) re-import this module
# in every child as __mp_main__, which must not run the command again.
if __name__ == "__main__":
    sys.exit(main())
