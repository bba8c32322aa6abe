import sys

from agents.cli import main

# Guarded, as ablations/__main__.py: a spawned child re-imports this module as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
