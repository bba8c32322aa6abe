"""The probe battery as pytest tests on the user's own DQN: the `probes` marker, the fixtures.

Registered by ablations/plugin.py in sessions that run the suite. `pytest --pyargs ablations -m
probes --agent my_dqn.py:train` runs ablations/test_probes.py (one test per probe) on the
function named by --agent; a user's own conftest.py may instead override the documented
fixture `probe_agent` (return the train function itself), and `probe_shape`, `probe_gamma`,
`probe_seeds` likewise. With --agent, the session collects the probe tests only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROBE_MODULE = "test_probes.py"
PACKAGE_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "probes: the probe battery on your own DQN (--agent FILE.py:train, or override probe_agent)"
    )


def wants_probes(config: pytest.Config) -> bool:
    """Whether this session runs the probe tests: --agent is given, or -m names the marker."""
    return config.getoption("probe_agent") is not None or "probes" in (config.getoption("markexpr") or "")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The probe module only where probes are asked for; with --agent, nothing else of the suite."""
    if collection_path.suffix != ".py" or collection_path.parent != PACKAGE_DIR:
        return None
    if not collection_path.name.startswith("test_"):
        return None
    is_probe_module = collection_path.name == PROBE_MODULE
    if is_probe_module and not wants_probes(config):
        return True
    if not is_probe_module and config.getoption("probe_agent") is not None:
        return True
    return None


@pytest.fixture(scope="session")
def probe_agent(pytestconfig: pytest.Config):
    """The DQN under test: your `train(env, total_steps, seed)` (a function), or a spec string
    (FILE.py:FUNCTION, MODULE:FUNCTION, engine:VARIANT, sb3). Default: --agent. Override it in
    your conftest.py to return your train function."""
    spec = pytestconfig.getoption("probe_agent")
    if spec is None:
        pytest.skip("no agent to probe: give --agent FILE.py:train or override the probe_agent fixture")
    return spec


@pytest.fixture(scope="session")
def probe_shape(pytestconfig: pytest.Config):
    """The probes' observation shape and action count: --probe-like ENV_ID, else CartPole's."""
    from agents.probes.envs import ProbeShape, shape_like

    like = pytestconfig.getoption("probe_like")
    try:
        return ProbeShape() if like is None else shape_like(like)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def probe_gamma(pytestconfig: pytest.Config) -> float | None:
    """Your discount (--probe-gamma); None: the returned object's gamma attribute, else 0.99."""
    return pytestconfig.getoption("probe_gamma")


@pytest.fixture(scope="session")
def probe_seeds(pytestconfig: pytest.Config) -> list[int]:
    """The seeds every probe runs on (--probe-seeds N: 0 .. N-1; default the battery's)."""
    from agents.probes.battery import SEEDS

    count = pytestconfig.getoption("probe_seeds")
    return list(range(SEEDS if count is None else count))


@pytest.fixture(scope="session")
def probe_runner(probe_agent, pytestconfig: pytest.Config):
    """The agent the probe tests train: built from probe_agent (a function, a spec or an Agent)."""
    from agents.probes.adapters import Agent, AgentSpecError, SB3Agent, engine_agent, function_agent

    api = "old-gym" if pytestconfig.getoption("probe_old_gym") else "auto"
    try:
        if isinstance(probe_agent, Agent):
            return probe_agent
        if probe_agent == "sb3":
            return SB3Agent()
        if isinstance(probe_agent, str) and (probe_agent == "engine" or probe_agent.startswith("engine:")):
            return engine_agent(probe_agent)
        return function_agent(probe_agent, api=api)
    except AgentSpecError as exc:
        pytest.fail(str(exc), pytrace=False)
