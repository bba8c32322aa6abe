"""`python -m agents.bench`: an alias of `dqn-ablations bench` (agents/textbook/bench.py)."""

import sys

from agents.textbook.bench import main

if __name__ == "__main__":
    sys.exit(main())
