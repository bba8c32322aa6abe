"""The probes as pytest tests in a user's repository: --agent from any directory, a conftest.py
overriding `probe_agent` under xdist, and the suite's other sessions left as they were."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_probes_seam import USER

# Every test here runs pytest sessions in subprocesses (pytester).
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CONFTEST = """
import pytest

from user_dqn import {name}


@pytest.fixture(scope="session")
def probe_agent():
    return {name}
"""
QUIET = ["-p", "no:cacheprovider", "-q"]


@pytest.fixture
def user_repo(pytester, monkeypatch):
    """An otherwise empty directory with the user's DQN module; this checkout first on the path."""
    pytester.makepyfile(user_dqn=USER)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{pytester.path}")
    return pytester


def test_a_user_conftest_overriding_probe_agent_runs_every_probe_under_xdist(user_repo):
    user_repo.makeconftest(CONFTEST.format(name="train"))
    result = user_repo.runpytest_subprocess("--pyargs", "ablations", "-m", "probes", "-n", "auto", *QUIET)
    result.assert_outcomes(passed=10)


def test_a_failing_probe_names_its_cause_in_the_users_session(user_repo):
    user_repo.makeconftest(CONFTEST.format(name="train_unmasked"))
    result = user_repo.runpytest_subprocess("--pyargs", "ablations", "-m", "probes", "-n", "0", *QUIET)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*FAIL  LastStep on 3 of 3 seeds (a bug): Q at s1 reaches 100.00*the target bootstraps through terminal*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_agent_from_another_directory_runs_the_probe_tests_only(user_repo):
    work = user_repo.mkdir("elsewhere")
    os.chdir(work)
    result = user_repo.runpytest_subprocess(
        "--pyargs", "ablations", "--agent", "../user_dqn.py:train", "-n", "0", "--collect-only", *QUIET
    )  # fmt: skip
    collected = [line for line in result.stdout.lines if "::" in line]
    assert len(collected) == 10 and all("test_probes.py::test_probe[" in line for line in collected)
    run = user_repo.runpytest_subprocess("--pyargs", "ablations", "--agent", "../user_dqn.py:train", "-n", "0", *QUIET)
    run.assert_outcomes(passed=10)


def test_the_suites_sessions_do_not_collect_the_probes(user_repo):
    result = user_repo.runpytest_subprocess("--pyargs", "ablations", "--collect-only", *QUIET)
    assert "test_claims.py::" in result.stdout.str() and "test_probes.py" not in result.stdout.str()
