"""`python -m ablations.known_causes`: an alias of `dqn-ablations known-causes`
(ablations/diagnosis/known_causes.py)."""

import sys

from ablations.diagnosis.known_causes import main

if __name__ == "__main__":
    sys.exit(main())
