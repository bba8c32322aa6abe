"""A user's DQN diagnosed: what became of each of its seeds, and which one-knob change helps.

The rungs of the ladder (agents/ladder.py) are claims of one family, "this change improves the
late return over the base", settled by the same procedure as the article's claims
(ablations/claims.py: Holm over both directions of every rung, seeds on demand). A refuted rung
is a change that makes the DQN worse; that is a finding, reported as such.
"""

from __future__ import annotations

import numpy as np

from ablations.claims import Claim, Evidence, Summaries
from reports import stats
from reports.metrics import SEED_OUTCOMES, seed_outcomes

DIAGNOSIS_MODULE = "test_diagnosis.py"
RUNG_METRIC = "late return: the change vs your DQN (P(change > base), one-sided Mann-Whitney U)"


def outcome_counts(summary, success_threshold: float) -> dict[str, int]:
    """How many seeds of a per-seed summary ended in each of SEED_OUTCOMES."""
    counts = seed_outcomes(summary, success_threshold).value_counts()
    return {outcome: int(counts.get(outcome, 0)) for outcome in SEED_OUTCOMES}


def _figures(summary, success_threshold: float) -> dict:
    values = summary["late_return"].to_numpy(dtype=float)
    return {
        "late_return_iqm": stats.iqm(values),
        "late_return_median": float(np.median(values)),
        "learned": int((values >= success_threshold).sum()),
        "seeds": int(values.size),
        "outcomes": outcome_counts(summary, success_threshold),
    }


def _rung_improves(rung: str, base: str, key: str, description: str):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        threshold = float(s[base].attrs["success_threshold"])
        verdict = stats.compare_greater(s[rung]["late_return"], s[base]["late_return"], alpha)
        return Evidence(
            verdict,
            {
                "rung": key,
                "change": description,
                "base_variant": base,
                "rung_variant": rung,
                "success_threshold": threshold,
                "base": _figures(s[base], threshold),
                "with_change": _figures(s[rung], threshold),
            },
        )

    return evaluate


def rung_claims(settings) -> list[Claim]:
    """One claim per rung of the session's ladder (none outside a diagnosis)."""
    if not settings.diagnosis:
        return []
    base, *rungs = settings.session_variants
    claims = []
    for variant in rungs:
        key = variant.name.removeprefix(f"{base.name}+")
        claims.append(
            Claim(
                variant.name,
                f"{variant.summary} improves the late return of {base.name}.",
                RUNG_METRIC,
                (variant.name, base.name),
                _rung_improves(variant.name, base.name, key, variant.summary),
            )
        )
    return claims
