"""Turning a statistical verdict into a test outcome, with the numbers in the message."""

from __future__ import annotations

import pytest

from reports.analysis.stats import INCONCLUSIVE, REFUTED, SUPPORTED, Decision


def describe(verdict: Decision) -> str:
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


def enforce(verdict: Decision, claim: str) -> None:
    """Supported: the test passes. Refuted: it fails. Inconclusive: it is skipped, with its numbers."""
    message = f"{claim} -- {describe(verdict)}"
    if verdict.verdict == SUPPORTED:
        return
    if verdict.verdict == REFUTED:
        pytest.fail(message, pytrace=False)
    assert verdict.verdict == INCONCLUSIVE, verdict.verdict
    pytest.skip(message)


class ClaimCrashed(Exception):
    """The evidence of a claim raised; the message carries the original exception."""


def describe_settled(settled) -> str:
    """A settled claim (ablations.claims.procedure.Settled) in one line: verdict, effect, raw and Holm p."""
    v = settled.evidence.verdict
    text = (
        f"{settled.verdict}: {v.statistic} = {v.effect_size:.4g} [95% CI {v.ci_low:.4g}, {v.ci_high:.4g}], "
        f"p = {v.p_value:.3g} (Holm-adjusted {settled.p_adjusted:.3g} at level {settled.level:.3g}, "
        f"look {settled.look} of {settled.looks}), n = {settled.seeds} seeds"
    )
    if settled.conditional_power is not None:
        text += (
            f"; stopped for futility: {settled.conditional_power:.0%} conditional power at the last look"
            " under the current trend"
        )
    elif settled.verdict == INCONCLUSIVE:
        text += (
            f"; about {v.seeds_needed} seeds would settle it"
            if v.seeds_needed
            else "; the observed effect is null or points the other way"
        )
    return text


def enforce_settled(settled, error_marker: str = "error") -> None:
    """A family member's outcome: supported passes, refuted fails, inconclusive skips, and a
    crash of its evidence raises ClaimCrashed (an error, never read as a refutation)."""
    if settled.verdict == error_marker:
        raise ClaimCrashed(settled.error)
    message = f"{settled.claim.text} -- {describe_settled(settled)}"
    if settled.verdict == REFUTED:
        pytest.fail(message, pytrace=False)
    if settled.verdict == INCONCLUSIVE:
        pytest.skip(message)
    assert settled.verdict == SUPPORTED, settled.verdict


__all__ = ["enforce", "describe", "enforce_settled", "ClaimCrashed", "SUPPORTED", "REFUTED", "INCONCLUSIVE"]
