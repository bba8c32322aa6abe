"""The diagnosis session: the rungs as a family of claims, the repair path and the known-cause
benchmark."""
