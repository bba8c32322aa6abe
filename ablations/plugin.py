"""The pytest plugin entry point (pyproject's `pytest11`): the suite's options in every session,
its machinery only in sessions that run it.

Installing the package makes pytest load this module everywhere, so it stays light: it declares
the options, and registers ablations/session.py (torch, the cache, the report) only when the
session collects the suite itself (`pytest ablations`, `pytest --pyargs ablations`, a path
inside the package) or is given a config file to diagnose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ablations.options import add_options

PACKAGE_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def runs_the_suite(config: pytest.Config) -> bool:
    """Whether this session collects the ablation suite (or diagnoses a config)."""
    if config.getoption("ablation_config") is not None:
        return True
    invocation_dir = config.invocation_params.dir
    for arg in config.args:
        target = arg.split("::")[0]
        if config.option.pyargs and target.split(".")[0] == PACKAGE_DIR.name and "/" not in target:
            return True
        path = (invocation_dir / target).resolve()
        if path == PACKAGE_DIR or PACKAGE_DIR in path.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if runs_the_suite(config) and not config.pluginmanager.has_plugin("ablation-session"):
        from ablations import session

        config.pluginmanager.register(session, "ablation-session")
    if runs_the_suite(config) and not config.pluginmanager.has_plugin("ablation-probes"):
        from ablations import probe_fixtures

        config.pluginmanager.register(probe_fixtures, "ablation-probes")
