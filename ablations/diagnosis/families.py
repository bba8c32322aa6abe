"""A diagnosis' rungs settled as the plan's families (ablations/diagnosis/plan.py): each family at
its own share of alpha, its members not trained in this stage holding their Holm places at p = 1.

Kept apart from the pytest wiring so the procedure runs on synthetic data in the tests.
"""

from __future__ import annotations

from collections.abc import Callable

from ablations.claims.procedure import Claim, Evidence, Fetch, Settled, evaluate_family
from ablations.diagnosis.plan import DiagnosisPlan
from reports.analysis import stats

UNTRAINED_PREFIX = "untrained:"


def untrained_claim(key: str) -> Claim:
    """A family member not trained in this stage: no variants, p = 1 in both directions, so it
    takes its place in every look's Holm step and can never be settled."""

    def evaluate(summaries, alpha: float) -> Evidence:
        verdict = stats.Decision(stats.INCONCLUSIVE, "not trained in this stage", 0.5, 0.0, 1.0, 1.0, 0, None, 1.0)
        return Evidence(verdict)

    return Claim(f"{UNTRAINED_PREFIX}{key}", f"{key} (not trained in this stage)", "none", (), evaluate)


def family_claims(plan: DiagnosisPlan, stage: int, claims: dict[str, Claim]) -> list[tuple[float, list[Claim]]]:
    """(alpha, claims) per family: the trained members' claims (`claims`: rung key -> its claim)
    and a placeholder for each member not trained through `stage`."""
    trained = set(plan.trained_through(stage))
    return [
        (family.alpha, [claims[key] if key in trained else untrained_claim(key) for key in family.rungs])
        for family in plan.families
        if trained & set(family.rungs)
    ]


def settle_families(
    plan: DiagnosisPlan,
    stage: int,
    claims: dict[str, Claim],
    settle: Callable[[list[Claim], float], dict[str, Settled]],
) -> dict[str, Settled]:
    """Every trained rung's verdict (keyed by claim key), each family settled by `settle(claims,
    alpha)` (the session's settle_family, or evaluate_family on synthetic data)."""
    settled: dict[str, Settled] = {}
    for alpha, members in family_claims(plan, stage, claims):
        found = settle(members, alpha)
        settled.update({key: s for key, s in found.items() if not key.startswith(UNTRAINED_PREFIX)})
    return settled


def evaluate_families(
    plan: DiagnosisPlan, stage: int, claims: dict[str, Claim], fetch: Fetch, stages: list[int], futility: bool = True
) -> dict[str, Settled]:
    """settle_families with the claims' procedure itself (ablations.claims.article.evaluate_family)."""
    return settle_families(
        plan, stage, claims, lambda members, alpha: evaluate_family(members, fetch, stages, alpha, futility=futility)
    )
