"""Factorial attribution over k binary knobs: main effects, two-way interactions and Shapley values.

A cell is a tuple of k levels (True = example 3's level). Every quantity here is a fixed linear
combination of the cell means, so its stratified bootstrap (seeds resampled within each cell)
is one matrix product over resampled cell means. The Shapley value of a knob is its average
marginal contribution over every order of switching the knobs from all-off to all-on: the
values add up to the whole gap, and no order is privileged (unlike one-at-a-time paths).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from agents.catalogue.presets import FACTORIAL_KNOBS, factorial_variant
from reports.analysis.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, _as_array


def cells(k: int) -> list[tuple[bool, ...]]:
    """All 2^k cells in binary order, the first knob most significant."""
    return [tuple(bool(bits) for bits in combo) for combo in itertools.product((False, True), repeat=k)]


def main_effect_weights(k: int, knob: int) -> np.ndarray:
    """Mean over the other knobs' levels of (cell with knob on) - (cell with knob off)."""
    scale = 2 ** (k - 1)
    return np.array([(1 if cell[knob] else -1) / scale for cell in cells(k)])


def interaction_weights(k: int, first: int, second: int) -> np.ndarray:
    """How much the first knob's effect grows when the second is on, averaged over the rest:
    [(11) - (01)] - [(10) - (00)] per combination of the other knobs, then the mean."""
    scale = 2 ** (k - 2)
    return np.array([(1 if cell[first] == cell[second] else -1) / scale for cell in cells(k)])


def shapley_weights(k: int, knob: int) -> np.ndarray:
    """phi = sum over subsets S of the other knobs of |S|! (k - |S| - 1)! / k! [v(S + knob) - v(S)],
    where v(S) is the mean of the cell with exactly the knobs in S on."""
    index = {cell: i for i, cell in enumerate(cells(k))}
    weights = np.zeros(2**k)
    for cell in cells(k):
        if cell[knob]:
            continue
        size = sum(cell)
        w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
        with_knob = tuple(True if i == knob else on for i, on in enumerate(cell))
        weights[index[with_knob]] += w
        weights[index[cell]] -= w
    return weights


@dataclass(frozen=True)
class Contrast:
    kind: str  # "main effect", "interaction", "shapley", "gap"
    name: str
    weights: np.ndarray


def contrasts(knobs: list[str]) -> list[Contrast]:
    k = len(knobs)
    out = [Contrast("main effect", knob, main_effect_weights(k, i)) for i, knob in enumerate(knobs)]
    out += [
        Contrast("interaction", f"{knobs[i]} x {knobs[j]}", interaction_weights(k, i, j))
        for i, j in itertools.combinations(range(k), 2)
    ]
    out += [Contrast("shapley", knob, shapley_weights(k, i)) for i, knob in enumerate(knobs)]
    gap = np.zeros(2**k)
    gap[0], gap[-1] = -1.0, 1.0
    out.append(Contrast("gap", "all on - all off", gap))
    return out


def cell_mean_draws(values: dict[tuple[bool, ...], np.ndarray], k: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, 2^k) cell means, each cell's seeds resampled with replacement on their own."""
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, 2**k))
    for i, cell in enumerate(cells(k)):
        array = values[cell]
        draws[:, i] = array[rng.integers(0, array.size, (resamples, array.size))].mean(1)
    return draws


def attribution_table(
    values: dict[tuple[bool, ...], np.ndarray],
    knobs: list[str],
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """One row per contrast: estimate, stratified bootstrap interval, and for Shapley values
    the share of the gap (with its interval from the same resamples)."""
    k = len(knobs)
    arrays = {cell: _as_array(values[cell], f"cell {cell}") for cell in cells(k)}
    means = np.array([arrays[cell].mean() for cell in cells(k)])
    draws = cell_mean_draws(arrays, k, resamples, seed)
    tail = (1 - confidence) / 2
    gap_estimate, gap_draws = means[-1] - means[0], draws[:, -1] - draws[:, 0]
    rows = []
    for contrast in contrasts(knobs):
        estimate, sampled = float(contrast.weights @ means), draws @ contrast.weights
        low, high = np.quantile(sampled, [tail, 1 - tail])
        row = {"kind": contrast.kind, "name": contrast.name, "estimate": estimate, "ci_low": low, "ci_high": high}
        if contrast.kind == "shapley":
            with np.errstate(divide="ignore", invalid="ignore"):
                shares = sampled / gap_draws
            finite = shares[np.isfinite(shares)]
            row["share"] = estimate / gap_estimate if gap_estimate else np.nan
            row["share_low"], row["share_high"] = (
                np.quantile(finite, [tail, 1 - tail]) if finite.size else (np.nan, np.nan)
            )
        rows.append(row)
    return pd.DataFrame(rows)


def bootstrap_p_greater(
    values: dict[tuple[bool, ...], np.ndarray],
    k: int,
    weights: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """One-sided p-value for 'weights . cell means > 0': a Wald z with the stratified bootstrap
    standard error (the contrast is a sum of independent cell means, so it is close to
    normal). Not the share of resamples below 0: that cannot fall below 1 / (resamples + 1),
    which the small levels of early looks need."""
    arrays = {cell: _as_array(values[cell], f"cell {cell}") for cell in cells(k)}
    estimate = float(weights @ np.array([arrays[cell].mean() for cell in cells(k)]))
    spread = float(np.std(cell_mean_draws(arrays, k, resamples, seed) @ weights, ddof=1))
    if spread == 0:
        return 0.0 if estimate > 0 else 1.0
    return float(norm.sf(estimate / spread))


# The article's attribution: the 16 cells of its four switches and the outcome metrics
# (per-seed column, label) whose example 1 -> 3 gap is attributed.
ARTICLE_CELLS = tuple(factorial_variant(*levels) for levels in cells(len(FACTORIAL_KNOBS)))
ARTICLE_METRICS = (
    ("late_return", "late return"),
    ("success", "success rate"),
    ("soft_diverged", "sustained soft divergence rate"),
)


def article_attribution(summaries: Mapping[str, pd.DataFrame]) -> dict[str, list[dict]]:
    """Main effects, interactions and Shapley shares of the example 1 -> 3 gap, per metric, from
    each cell's per-seed summary (reports.analysis.metrics.per_seed), as JSON-ready records."""
    k = len(FACTORIAL_KNOBS)
    tables = {}
    for column, _label in ARTICLE_METRICS:
        values = {levels: summaries[factorial_variant(*levels)][column].to_numpy(dtype=float) for levels in cells(k)}
        table = attribution_table(values, list(FACTORIAL_KNOBS))
        tables[column] = table.replace({np.nan: None}).to_dict("records")
    return tables
