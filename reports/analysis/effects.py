"""Effects of one knob over the article's factorial cells, with their tests: the knob's effect
pooled over strata that hold every other knob fixed, and a linear contrast of cell means (Shapley
shares, main effects). Pure statistics over per-seed summaries; claims read them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.catalogue.presets import FACTORIAL_KNOBS, factorial_variant
from reports.analysis import factorial, stats

Summaries = dict[str, pd.DataFrame]  # variant name -> per-seed summary (metrics.per_seed)


def column_values(summary: pd.DataFrame, column: str) -> np.ndarray:
    """A per-seed column without the seeds where it is undefined (e.g. a hard-diverged seed)."""
    values = summary[column].to_numpy(dtype=float)
    return values[np.isfinite(values)]


def knob_strata(knob: int, fixed: dict[int, bool] | None = None) -> list[tuple[str, str]]:
    """(cell with the knob on, cell with it off) for every level of the other knobs, holding
    the knobs in `fixed` at the given level."""
    fixed = fixed or {}
    pairs = []
    for levels in factorial.cells(len(FACTORIAL_KNOBS)):
        if levels[knob] or any(levels[i] != on for i, on in fixed.items()):
            continue
        on = tuple(True if i == knob else v for i, v in enumerate(levels))
        pairs.append((factorial_variant(*on), factorial_variant(*levels)))
    return pairs


def stratified_effect(s: Summaries, pairs: list[tuple[str, str]], column: str, greater: bool, alpha: float):
    """Claim 'column is larger (greater=True) or smaller with the knob on', pooled over strata
    that hold every other knob fixed: mean P(improvement) over strata, stratified permutation
    p-values in both directions, and a stratified bootstrap interval."""
    strata = []
    for on, off in pairs:
        x, y = column_values(s[on], column), column_values(s[off], column)
        strata.append((x, y) if greater else (y, x))
    p_claimed = stats.stratified_rank_greater(strata)
    p_opposite = stats.stratified_rank_greater([(y, x) for x, y in strata])
    estimate = float(np.mean([stats.probability_of_improvement(x, y) for x, y in strata]))
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    draws = [
        np.mean([stats.probability_of_improvement(rng.choice(x, x.size), rng.choice(y, y.size)) for x, y in strata])
        for _ in range(stats.BOOTSTRAP_RESAMPLES // 4)
    ]
    low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    verdict = stats.decide(p_claimed, p_opposite, alpha)
    needed = stats.seeds_needed_for_improvement(estimate, alpha) if verdict == stats.INCONCLUSIVE else None
    n = int(min(min(x.size, y.size) for x, y in strata))
    per_stratum = {f"{on} vs {off}": stats.probability_of_improvement(*st) for (on, off), st in zip(pairs, strata)}
    return (
        stats.Decision(
            verdict, "mean P(improvement) over strata", estimate, low, high, p_claimed, n, needed, p_opposite
        ),
        per_stratum,
    )


def contrast_evidence(s: Summaries, column: str, weights: np.ndarray, statistic: str, alpha: float):
    """Claim 'the linear contrast weights . (cell means of column) over the 16 cells is > 0':
    its estimate, stratified bootstrap interval and p-values both ways (a Verdict)."""
    k = len(FACTORIAL_KNOBS)
    values = {levels: s[factorial_variant(*levels)][column].to_numpy(dtype=float) for levels in factorial.cells(k)}
    means = np.array([values[c].mean() for c in factorial.cells(k)])
    draws = factorial.cell_mean_draws(values, k, stats.BOOTSTRAP_RESAMPLES, stats.BOOTSTRAP_SEED) @ weights
    low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    p_claimed = factorial.bootstrap_p_greater(values, k, weights)
    p_opposite = factorial.bootstrap_p_greater(values, k, -weights)
    n = min(v.size for v in values.values())
    # The percentile bootstrap is too optimistic with very few seeds per cell.
    if n < stats.MIN_BOOTSTRAP_SEEDS:
        p_claimed = p_opposite = 1.0
    verdict = stats.decide(p_claimed, p_opposite, alpha)
    return stats.Decision(verdict, statistic, float(weights @ means), low, high, p_claimed, int(n), None, p_opposite)
