"""The cause mapping checked on the engine: a catalogued bug injected into a bug-free preset
fails the probe built for it on every seed, with that cause named first; the preset passes.
(`dqn-ablations probe-table --engine` builds the whole bug x probe table; these are the fast rows.)"""

from __future__ import annotations

import pytest

from agents.catalogue.bugs import BUGS
from agents.catalogue.presets import VARIANTS
from agents.probes import PROBES_BY_NAME, ProbeShape
from agents.probes.adapters import EngineAgent
from agents.probes.battery import classify, run_probe
from agents.probes.causes import probe_causes

# Bug-free: terminals masked, truncation bootstrapped, replay, a hard target.
BASE = VARIANTS["cell-m1-d0-r1-t1"].config
SEEDS = [0, 1, 2]


@pytest.mark.parametrize(
    ("bug", "probe", "cause"),
    [
        ("unmasked-terminals", "LastStep", "unmasked"),
        ("terminal-shift", "LastStep", "terminal_shift"),
        ("time-limit-terminal", "TerminateOrTruncate", "time_limit_terminal"),
        ("stale-target", "TwoStep", "no_bootstrap"),
    ],
)
def test_an_injected_bug_fails_its_probe_on_every_seed_with_its_cause_first(bug, probe, cause):
    agent = EngineAgent(BUGS[bug].inject(BASE), bug)
    results = run_probe(agent, PROBES_BY_NAME[probe], ProbeShape(), SEEDS)
    assert classify(probe, results).status == "fail-every-seed"
    assert probe_causes(results)[0].name == cause


@pytest.mark.parametrize("probe", ["LastStep", "TerminateOrTruncate", "TwoStep"])
def test_the_bug_free_preset_passes_those_probes_on_every_seed(probe):
    results = run_probe(EngineAgent(BASE, "base"), PROBES_BY_NAME[probe], ProbeShape(), SEEDS)
    assert classify(probe, results).status == "pass"
