"""Pure analysis of run results: statistics and verdicts (stats.py), per-seed metrics, factorial
attribution and bug recognition. What ablations/ imports to decide; nothing here draws."""
