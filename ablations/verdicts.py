"""Turning a statistical verdict into a test outcome, with the numbers in the message."""

from __future__ import annotations

import pytest

from reports.stats import INCONCLUSIVE, REFUTED, SUPPORTED, Verdict


def describe(verdict: Verdict) -> str:
    text = (
        f"{verdict.verdict}: {verdict.statistic} = {verdict.effect_size:.4g} "
        f"[95% CI {verdict.ci_low:.4g}, {verdict.ci_high:.4g}], p = {verdict.p_value:.3g}, n = {verdict.n}"
    )
    if verdict.verdict == INCONCLUSIVE:
        text += (
            f"; about {verdict.seeds_needed} seeds would settle it"
            if verdict.seeds_needed
            else "; the observed effect is null or points the other way, so more seeds would not settle it"
        )
    return text


def enforce(verdict: Verdict, claim: str) -> None:
    """Supported: the test passes. Refuted: it fails. Inconclusive: it is skipped, with its numbers."""
    message = f"{claim} -- {describe(verdict)}"
    if verdict.verdict == SUPPORTED:
        return
    if verdict.verdict == REFUTED:
        pytest.fail(message, pytrace=False)
    assert verdict.verdict == INCONCLUSIVE, verdict.verdict
    pytest.skip(message)


__all__ = ["enforce", "describe", "SUPPORTED", "REFUTED", "INCONCLUSIVE"]
