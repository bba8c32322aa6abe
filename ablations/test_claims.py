"""The article's claims: one family of hypotheses, settled together (ablations/claims/article.py).

Each claim is one test here, reading its verdict from the session's `claim_family`: Holm's
adjustment over the whole family (both directions of every claim), and with
--ablation-max-seeds more seeds for the claims still inconclusive, look by look. Supported:
the test passes. Refuted: it fails (strict xfail where a profile's refutation is on record).
Inconclusive: skipped with its numbers. A claim whose evidence crashed is an error.
"""

from __future__ import annotations

import pytest

from ablations.claims.article import CLAIMS
from ablations.helpers import claim_param, report_settled
from agents.catalogue.presets import get_variant

pytestmark = pytest.mark.claims


@pytest.mark.parametrize("claim_key", [claim_param(claim) for claim in CLAIMS.values()])
def test_claim(claim_key, claim_family, ablation_runs, record_property):
    """The claim's verdict from the family; its figures and the runs it read are recorded."""
    settled = claim_family[claim_key]
    runs = [ablation_runs.get(get_variant(name), settled.seeds) for name in settled.claim.variants]
    report_settled(settled, runs, record_property, "claims")
