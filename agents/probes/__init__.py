"""Probe environments and mechanism tests for any DQN implementation (issue 36).

Importing the package registers every probe with gymnasium under ``dqn-probes/NAME-v0``
(CartPole's shape; other shapes are registered on use by ``probe_env_id``). The user's code
is reached through one seam (agents/probes/adapters.py), the probes run on several seeds with
budgets and tolerances fixed in agents/probes/battery.py, and failure patterns are named in
agents/probes/causes.py. Nothing here knows of pytest or the reports.
"""

from agents.probes.envs import (
    PROBES,
    PROBES_BY_NAME,
    Probe,
    ProbeEnv,
    ProbeShape,
    expected_q,
    probe_env_id,
    register_default_probes,
    shape_like,
)

register_default_probes()

__all__ = [
    "PROBES",
    "PROBES_BY_NAME",
    "Probe",
    "ProbeEnv",
    "ProbeShape",
    "expected_q",
    "probe_env_id",
    "shape_like",
]
