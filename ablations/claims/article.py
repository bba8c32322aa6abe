"""The article's claims, as data for the decision procedure (procedure.py): each claim's text,
the metric it reads, the variants it compares and the function from their per-seed summaries to
its evidence. Where a comparison changes several settings at once, its note says so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablations.claims.procedure import Claim, Evidence, Summaries, refutations
from agents.catalogue.presets import FACTORIAL_KNOBS
from reports.analysis import factorial, stats
from reports.analysis.effects import column_values, contrast_evidence, knob_strata, stratified_effect

# A "consistent" failure: the agent learns in fewer than 20% of seeds. Fixed before any result.
CONSISTENT_FAILURE_RATE = 0.2

def _iqm(summary: pd.DataFrame, column: str = "late_return") -> float | None:
    values = column_values(summary, column)
    return stats.iqm(values) if values.size else None


def _success_threshold(summaries: Summaries) -> float:
    first = next(iter(summaries.values()))
    if "success" not in first:
        raise LookupError("no success threshold is known for this env: give [env] success_threshold")
    return float(first.attrs["success_threshold"])


def _naive_fails(s: Summaries, alpha: float) -> Evidence:
    naive = s["article-naive"]
    successes = int(naive["success"].sum())
    verdict = stats.rate_below(successes, len(naive), CONSISTENT_FAILURE_RATE, alpha)
    return Evidence(verdict, {"late_return_iqm": _iqm(naive), "success_bound": CONSISTENT_FAILURE_RATE})


def _article_replay_vs_naive(s: Summaries, alpha: float) -> Evidence:
    replay, naive = s["article-replay"], s["article-naive"]
    verdict = stats.compare_greater(replay["late_return"], naive["late_return"], alpha)
    return Evidence(verdict, {"iqm": {"article-replay": _iqm(replay), "article-naive": _iqm(naive)}})


ALL_CELLS = factorial.ARTICLE_CELLS


MASK, REPLAY, TARGET = (FACTORIAL_KNOBS.index(k) for k in ("terminal_masking", "replay", "target_network"))


def _replay_improves(mask: bool):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        pairs = knob_strata(REPLAY, {MASK: mask})
        verdict, per_stratum = stratified_effect(s, pairs, "late_return", True, alpha)
        return Evidence(verdict, {"per_stratum_p_improvement": per_stratum})

    return evaluate


def _target_lowers(column: str):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        pairs = knob_strata(TARGET)
        verdict, per_stratum = stratified_effect(s, pairs, column, False, alpha)
        medians = {name: float(np.median(column_values(s[name], column))) for pair in pairs for name in pair}
        return Evidence(verdict, {"per_stratum_p_lower": per_stratum, "median_per_cell": medians})

    return evaluate


def _target_helps_convergence(s: Summaries, alpha: float) -> Evidence:
    target, replay = s["article-target"], s["article-replay"]
    verdict = stats.compare_rates_greater(
        int(target["success"].sum()), len(target), int(replay["success"].sum()), len(replay), alpha
    )
    by_threshold = {}
    for shown in target.attrs.get("success_thresholds_shown", ()):
        column = f"success_{shown:g}"
        at = stats.compare_rates_greater(
            int(target[column].sum()), len(target), int(replay[column].sum()), len(replay), alpha
        )
        by_threshold[f"{shown:g}"] = {
            "article-target": float(target[column].mean()),
            "article-replay": float(replay[column].mean()),
            "rate_difference": at.effect_size,
            "ci": [at.ci_low, at.ci_high],
            "p_value": at.p_value,
            "p_opposite": at.p_opposite,
        }
    return Evidence(
        verdict,
        {
            "success_threshold": _success_threshold(s),
            "success_rates": {
                "article-target": float(target["success"].mean()),
                "article-replay": float(replay["success"].mean()),
            },
            "by_success_threshold": by_threshold,
        },
    )


def _failure_is_missing_stabilisers(s: Summaries, alpha: float) -> Evidence:
    """D = phi(replay) + phi(target) - phi(mask) on late return: the stabilisers' Shapley share
    of the example 1 -> 3 gap against the terminal mask's."""
    k = len(FACTORIAL_KNOBS)
    weights = (
        factorial.shapley_weights(k, REPLAY) + factorial.shapley_weights(k, TARGET) - factorial.shapley_weights(k, MASK)
    )
    verdict = contrast_evidence(s, "late_return", weights, "phi(replay) + phi(target) - phi(mask)", alpha)
    return Evidence(verdict, {"attribution": factorial.article_attribution(s), "knobs": list(FACTORIAL_KNOBS)})


CLAIMS: dict[str, Claim] = {
    c.key: c
    for c in (
        Claim(
            "naive-fails",
            "The naive agent (example 1) consistently fails to learn.",
            "share of seeds whose late return reaches the success threshold (< 20%)",
            ("article-naive",),
            _naive_fails,
        ),
        Claim(
            "replay-improves-masked",
            "Experience replay improves on the naive agent (terminal states masked).",
            "late return: replay on vs off, other knobs held fixed (4 strata, masking on)",
            ALL_CELLS,
            _replay_improves(True),
        ),
        Claim(
            "replay-improves-unmasked",
            "Experience replay improves on the naive agent (terminal states unmasked, as in example 1).",
            "late return: replay on vs off, other knobs held fixed (4 strata, masking off)",
            ALL_CELLS,
            _replay_improves(False),
        ),
        Claim(
            "article-example-2-beats-example-1",
            "Example 2 beats example 1 (the article's own comparison).",
            "late return: article-replay vs article-naive",
            ("article-replay", "article-naive"),
            _article_replay_vs_naive,
            note="changes five settings at once (replay, batch size, learning start, terminal masking, "
            "time-limit masking): it cannot credit any one of them",
        ),
        Claim(
            "target-steadies-targets",
            "The target network stops the TD target from moving with every update (the moving target).",
            "relative TD-target drift per update (RMS change / RMS size), target on vs off, 8 strata",
            ALL_CELLS,
            _target_lowers("late_target_drift"),
        ),
        Claim(
            "target-lowers-td-error-variance",
            "The target network reduces the variance of the TD error.",
            "relative TD-error variance Var(delta) / mean(y^2), target on vs off, 8 strata",
            ALL_CELLS,
            _target_lowers("late_td_error_var_relative"),
            refuted=refutations("target-lowers-td-error-variance"),
        ),
        Claim(
            "target-helps-convergence",
            "The target network makes convergence more probable than replay alone.",
            "share of seeds whose late return reaches the success threshold (example 3 vs example 2)",
            ("article-target", "article-replay"),
            _target_helps_convergence,
        ),
        Claim(
            "failure-is-missing-stabilisers",
            "Example 1 fails for lack of replay (and a target network), not because of its unmasked terminal states.",
            "Shapley shares of the example 1 -> 3 late-return gap: replay + target minus terminal masking",
            ALL_CELLS,
            _failure_is_missing_stabilisers,
            refuted=refutations("failure-is-missing-stabilisers"),
        ),
    )
}
