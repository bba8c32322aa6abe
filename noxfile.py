"""nox sessions: tests, ablations, report, bench, lint. Every venv pins torch via constraints.txt."""

from __future__ import annotations

import nox

# pip, not uv: uv ignores the local CPU wheel of torch and would fetch a multi-GB CUDA build.
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]

# With the ray extra, so the Ray executor's tests run and `nox -s ablations -- paper
# --ablation-executor=ray --ablation-ray-address=HOST:6379` works; box2d for LunarLander-v3; sb3
# for the lockstep against SB3's own DQN (tests/test_sb3_lockstep.py).
INSTALL = ("-c", "constraints.txt", "-e", ".[test,ray,box2d,sb3]")


@nox.session
def tests(session: nox.Session) -> None:
    """The fast test suite (unit, property and differential tests)."""
    session.install(*INSTALL)
    session.run("python", "-m", "pytest", "-n", "auto", "tests", *session.posargs)


@nox.session
def ablations(session: nox.Session) -> None:
    """The ablation suite; the profile is the first argument: nox -s ablations -- standard."""
    session.install(*INSTALL)
    profile = session.posargs[0] if session.posargs else "smoke"
    options = [f"--ablation-profile={profile}", *session.posargs[1:]]
    session.run("python", "-m", "pytest", "-n", "auto", "ablations", *options)


@nox.session
def report(session: nox.Session) -> None:
    """Rebuild the HTML report of a results folder: nox -s report -- [RESULTS_DIR] [-o FILE]."""
    session.install(*INSTALL)
    session.run("python", "-m", "reports", *(session.posargs or ["ablation-results"]))


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/example-report.html from a standard-profile results folder:
    nox -s docs -- [RESULTS_DIR] (default standard-results; make it with
    nox -s ablations -- standard --ablation-max-seeds=80 --ablation-out=standard-results)."""
    session.install(*INSTALL)
    results = session.posargs[0] if session.posargs else "standard-results"
    session.run("python", "-m", "reports", results, "-o", "docs/example-report.html")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Engine throughput against the textbook baseline, measured in the same run."""
    session.install(*INSTALL)
    session.run("python", "-m", "ablations", "bench", *session.posargs)
