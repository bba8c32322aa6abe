"""`python -m ablations COMMAND`: the suite's one command line (ablations/cli.py)."""

import sys

from ablations.cli import main

sys.exit(main())
