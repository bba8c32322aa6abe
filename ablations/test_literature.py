"""Claims from the literature (ablations/claims/literature.py): one family of their own, each test
reading its verdict from the session's `literature_family`, as the article's claims do."""

from __future__ import annotations

import pytest

from ablations.claims.literature import LITERATURE
from ablations.helpers import claim_param, report_settled
from agents.catalogue.presets import get_variant

pytestmark = pytest.mark.literature


@pytest.mark.parametrize("claim_key", [claim_param(claim) for claim in LITERATURE.values()])
def test_literature_claim(claim_key, literature_family, ablation_runs, record_property):
    settled = literature_family[claim_key]
    runs = [ablation_runs.get(get_variant(name), settled.seeds) for name in settled.claim.variants]
    report_settled(settled, runs, record_property, "literature")
