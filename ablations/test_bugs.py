"""The bug catalogue (agents/catalogue/bugs.py): each bug's declared symptom against its twin (one family,
ablations/claims/bugs.py), and how well the signatures recognise the bugs (a check)."""

from __future__ import annotations

import pytest

from ablations.claims.bugs import BUG_CLAIMS, RECOGNITION_CLASSES, recognition_frame
from ablations.collect import record
from ablations.helpers import report_settled
from agents.catalogue.bugs import FEATURES
from agents.catalogue.presets import get_variant
from reports.analysis import stats
from reports.analysis.metrics import seed_summary
from reports.analysis.recognition import accuracy_table, leave_one_seed_out

pytestmark = pytest.mark.bugs


@pytest.mark.parametrize(
    "bug", [pytest.param(key, marks=pytest.mark.variants(*c.variants), id=key) for key, c in BUG_CLAIMS.items()]
)
def test_bug_shows_its_symptom(bug, bug_family, ablation_runs, record_property):
    settled = bug_family[bug]
    runs = [ablation_runs.get(get_variant(name), settled.seeds) for name in settled.claim.variants]
    report_settled(settled, runs, record_property, "bugs")


@pytest.mark.variants(*RECOGNITION_CLASSES)
def test_signatures_recognise_the_bugs(ablation_runs, record_property):
    """Leave-one-seed-out nearest-centroid recognition over the catalogue's runs: every seed
    labelled by the bug injected (or bug-free); the check passes when the overall recognition
    rate beats chance (one-sided binomial test at alpha)."""
    summaries = {name: seed_summary(ablation_runs.get(get_variant(name))) for name in RECOGNITION_CLASSES}
    table = accuracy_table(leave_one_seed_out(recognition_frame(summaries), list(FEATURES)))
    overall = table.set_index("label").loc["all"]
    record(
        record_property,
        runs=[ablation_runs.get(get_variant(name)) for name in RECOGNITION_CLASSES],
        property="recognition",
        statistic="leave-one-seed-out recognition rate",
        effect_size=float(overall["recognised"]),
        p_value=float(overall["p_value"]),
        n=int(overall["seeds"]),
        chance=float(overall["chance"]),
        recognition=table.to_dict("records"),
    )
    assert overall["p_value"] < stats.ALPHA, (
        f"recognition {overall['recognised']:.0%} of {int(overall['seeds'])} seeds is not above chance "
        f"{overall['chance']:.0%} (p = {overall['p_value']:.3g})"
    )
