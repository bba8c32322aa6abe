"""Catalogues as data: named agent variants (presets.py) and injectable bugs (bugs.py)."""
