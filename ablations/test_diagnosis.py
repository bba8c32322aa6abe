"""A diagnosis of the user's DQN (--ablation-config): its seeds' outcomes, then every rung of
the one-knob ladder against it, as one family (ablations/diagnosis/rungs.py).

Collected only in a diagnosis session. `test_base_learns` fails when the DQN does not train
(the finding the user came with); each `test_change[...]` passes when the change improves the
late return, fails when it makes it worse, and is skipped with its numbers when the seeds do
not settle it.
"""

from __future__ import annotations

import pytest

from ablations.collect import record
from ablations.diagnosis.rungs import base_record
from ablations.helpers import report_settled
from reports.diagnosis.record import BASE_PROPERTY

pytestmark = pytest.mark.diagnosis


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rung" not in metafunc.fixturenames:
        return
    from ablations.session import SETTINGS

    settings = metafunc.config.stash[SETTINGS]
    base, *rungs = settings.session_variants
    params = [
        pytest.param(v.name, id=v.name.removeprefix(f"{base.name}+"), marks=pytest.mark.variants(v.name, base.name))
        for v in rungs
    ]
    metafunc.parametrize("rung", params)


@pytest.fixture
def base_name(ablation_settings) -> str:
    return ablation_settings.session_variants[0].name


def test_base_learns(ablation_settings, ablation_runs, base_name, record_property):
    """What became of each seed of the user's DQN; passes when a majority converge."""
    run = ablation_runs.get(ablation_settings.variant(base_name))
    rungs = [ablation_runs.get(v) for v in ablation_settings.session_variants[1:]]
    base = base_record(ablation_settings, run, rungs)
    record(
        record_property,
        runs=[run],
        property=BASE_PROPERTY,
        statistic="share of seeds that converge",
        effect_size=base.share_converged,
        ci_low=base.share_low,
        ci_high=base.share_high,
        n=base.seeds,
        **base.details(),
    )
    described = ", ".join(f"{k} {v}" for k, v in base.outcomes.items() if v)
    assert base.trains, (
        f"{base_name} does not train: {base.converged} of {base.seeds} seeds converge "
        f"(late return >= {base.success_threshold:g}); {described}"
    )


def test_change(rung, diagnosis_family, ablation_settings, ablation_runs, record_property):
    """One rung of the ladder against the base, from the family's verdicts."""
    settled = diagnosis_family[rung]
    runs = [ablation_runs.get(ablation_settings.variant(name), settled.seeds) for name in settled.claim.variants]
    report_settled(settled, runs, record_property, "diagnosis")
