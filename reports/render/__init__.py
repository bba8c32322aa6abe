"""Rendering: tables read from a results folder (tables.py), seaborn figures, the HTML report and
the across-env report."""
