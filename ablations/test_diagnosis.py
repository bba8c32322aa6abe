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
from ablations.diagnosis.rungs import bug_matches, bugs_in_config, outcome_counts, trains
from ablations.helpers import report_settled, seed_summary
from agents.diagnosis.lint import lint
from reports.analysis import stats
from reports.diagnosis.symptoms import symptoms

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
    summary = seed_summary(run)
    rungs = [seed_summary(ablation_runs.get(v)) for v in ablation_settings.session_variants[1:]]
    threshold = run.env_profile.success_threshold
    counts = outcome_counts(summary, threshold)
    learned = counts["converged"]
    interval = stats.wilson_interval(learned, len(summary))
    record(
        record_property,
        runs=[run],
        property="diagnosis-base",
        statistic="share of seeds that converge",
        effect_size=interval.estimate,
        ci_low=interval.low,
        ci_high=interval.high,
        n=len(summary),
        base_variant=base_name,
        config_file=str(ablation_settings.config_file.path),
        success_threshold=threshold,
        success_source=run.env_profile.success_source,
        outcomes=counts,
        late_returns=summary["late_return"].tolist(),
        late_return_iqm=stats.iqm(summary["late_return"]),
        skipped_rungs=list(ablation_settings.skipped_rungs),
        # The config as the user wrote it (before the session sized it), and what its runs showed.
        lint=[finding.to_dict() for finding in lint(ablation_settings.config_file.config)],
        symptoms=[symptom.to_dict() for symptom in symptoms(run.checkpoints, run.env_profile, run.config.gamma)],
        bugs_in_config=bugs_in_config(run.config),
        bug_matches=bug_matches(summary, rungs),
    )
    described = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    assert trains(learned, len(summary)), (
        f"{base_name} does not train: {learned} of {len(summary)} seeds converge (late return >= {threshold:g}); "
        f"{described}"
    )


def test_change(rung, diagnosis_family, ablation_settings, ablation_runs, record_property):
    """One rung of the ladder against the base, from the family's verdicts."""
    settled = diagnosis_family[rung]
    runs = [ablation_runs.get(ablation_settings.variant(name), settled.seeds) for name in settled.claim.variants]
    report_settled(settled, runs, record_property, "diagnosis")
