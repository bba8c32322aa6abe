"""A diagnosis as data: its typed record (record.py), the symptoms read from runs and the named
causes. The config's side is agents/diagnosis/; the session's is ablations/diagnosis/."""
