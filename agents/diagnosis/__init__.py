"""Config-side diagnosis: what the config alone shows (lint.py) and the one-knob changes to try
around it (ladder.py). The runs' side is reports/diagnosis/; the session's is ablations/diagnosis/."""
