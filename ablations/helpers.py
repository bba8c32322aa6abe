"""Small shared pieces of the ablation tests: parametrization over variants and seed summaries."""

from __future__ import annotations

import pytest

from ablations.claims.procedure import ERROR, Claim, Refutation
from ablations.collect import record
from ablations.verdicts import enforce_settled
from agents.catalogue.presets import VARIANTS
from reports.analysis.stats import Decision


def refuted_marks(records: tuple[Refutation, ...]) -> list[pytest.MarkDecorator]:
    """One `refuted` marker per refutation on record (the session makes the one that matches
    the profile and env a strict xfail)."""
    return [pytest.mark.refuted(r.reason, profiles=r.profiles, envs=r.envs) for r in records]


def over(names: list[str], refuted: dict[str, tuple[Refutation, ...]] | None = None):
    """Parametrize the variant_run fixture over these variants, with readable ids. `refuted`:
    variant -> its refutations on record."""
    refuted = refuted or {}
    params = [pytest.param(name, id=name, marks=refuted_marks(refuted.get(name, ()))) for name in names]
    return pytest.mark.parametrize("variant_run", params, indirect=True)


def claim_param(claim: Claim):
    """A family member's test parameter: its variants (trained before it runs) and its
    refutations on record."""
    return pytest.param(
        claim.key, marks=[pytest.mark.variants(*claim.variants), *refuted_marks(claim.refuted)], id=claim.key
    )


def variants_expecting(outcome: str) -> list[str]:
    return [name for name, v in VARIANTS.items() if v.expected_outcome == outcome]




def pooled_sweep_verdict(verdict: Decision, points_per_seed: int) -> Decision:
    """A sweep test pools one point per (seed, setting): express 'seeds needed' per setting."""
    if not verdict.seeds_needed:
        return verdict
    return Decision(**{**verdict.as_dict(), "seeds_needed": -(-verdict.seeds_needed // points_per_seed)})


def report_settled(settled, runs, record_property, family: str) -> None:
    """A family member's test: record its figures and the runs it read, then pass, fail, skip
    or raise (a crash) by its verdict (ablations.verdicts.enforce_settled)."""
    record(record_property, runs=runs, property=family, **settled.as_record())
    enforce_settled(settled, ERROR)
