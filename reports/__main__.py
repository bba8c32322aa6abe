"""`python -m reports RESULTS_DIR`: an alias of `dqn-ablations report` (reports/cli.py)."""

import sys

from reports.cli import main

sys.exit(main())
