"""The probe battery on your own DQN, one test per probe (`pytest --pyargs ablations -m probes
--agent my_dqn.py:train`, or a conftest.py overriding the `probe_agent` fixture).

Each test trains the agent on one probe environment on several seeds and reads its Q at the
probe's states; it fails when any seed misses the exact value by more than the battery's
tolerance (agents/probes/battery.py), with the likely cause and its fix (agents/probes/causes.py).
"""

from __future__ import annotations

import pytest

from agents.probes import PROBES, PROBES_BY_NAME
from agents.probes.adapters import UserCodeError
from agents.probes.battery import classify, run_probe
from agents.probes.causes import probe_causes

pytestmark = pytest.mark.probes


@pytest.mark.parametrize("probe", [probe.name for probe in PROBES])
def test_probe(probe: str, probe_runner, probe_shape, probe_seeds, probe_gamma, pytestconfig) -> None:
    from ablations.probe import probe_line

    spec = PROBES_BY_NAME[probe]
    if probe_shape.n_actions < spec.min_actions:
        pytest.skip(f"probe {probe} needs {spec.min_actions} actions; the env has {probe_shape.n_actions}")
    try:
        results = run_probe(probe_runner, spec, probe_shape, probe_seeds, probe_gamma)
    except UserCodeError as exc:
        pytest.fail(str(exc), pytrace=False)
    verdict = classify(probe, results)
    if verdict.status != "pass":
        pytest.fail(probe_line(verdict, results, probe_causes(results)), pytrace=False)
