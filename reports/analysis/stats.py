"""Small, pure statistics for ablation verdicts (after rliable and scipy.stats).

Every function takes plain arrays and returns plain floats or small dataclasses, so each can
be checked on tiny exact cases. Resampling uses an explicit numpy Generator seed: the same
inputs always give the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

ALPHA = 0.05  # fixed before any result was looked at
BOOTSTRAP_RESAMPLES = 2_000
BOOTSTRAP_SEED = 20_250_130
# Spearman trends over at most this many points take a permutation p-value.
PERMUTATION_SPEARMAN_POINTS = 30
PERMUTATIONS = 9_999
# Verdicts that rest on a bootstrap distribution alone need this many seeds per group.
MIN_BOOTSTRAP_SEEDS = 5



class Verdict(StrEnum):
    """What a test of a claim concluded: supported, refuted (only the test in the opposite
    direction rejecting), or inconclusive; ERROR marks a claim whose evidence crashed, which is
    never a verdict on the data."""

    SUPPORTED = "supported"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


SUPPORTED, REFUTED, INCONCLUSIVE, ERROR = Verdict.SUPPORTED, Verdict.REFUTED, Verdict.INCONCLUSIVE, Verdict.ERROR


def _as_array(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty: a statistic needs at least one value")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values: {array[~np.isfinite(array)][:3].tolist()}")
    return array


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy's trim_mean with 25% cut per side)."""
    return float(stats.trim_mean(_as_array(values, "values"), 0.25))


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(values, statistic=iqm, confidence: float = 0.95, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Percentile bootstrap interval of statistic(values), resampling seeds with replacement."""
    array = _as_array(values, "values")
    estimate = float(statistic(array))
    if array.size == 1 or np.all(array == array[0]):
        return Interval(estimate, estimate, estimate)
    result = stats.bootstrap(
        (array,),
        lambda sample, axis: np.apply_along_axis(statistic, axis, sample),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs: the Mann-Whitney U statistic over n * m."""
    a, b = _as_array(x, "x"), _as_array(y, "y")
    greater = (a[:, None] > b[None, :]).sum()
    ties = (a[:, None] == b[None, :]).sum()
    return float((greater + 0.5 * ties) / (a.size * b.size))


def stratified_bootstrap_ci(x, y, statistic, confidence: float = 0.95, seed: int = BOOTSTRAP_SEED) -> Interval:
    """Interval of statistic(x, y), resampling each group's seeds independently (stratified)."""
    a, b = _as_array(x, "x"), _as_array(y, "y")
    estimate = float(statistic(a, b))
    rng = np.random.default_rng(seed)
    draws = np.empty(BOOTSTRAP_RESAMPLES)
    for i in range(BOOTSTRAP_RESAMPLES):
        draws[i] = statistic(rng.choice(a, a.size), rng.choice(b, b.size))
    tail = (1 - confidence) / 2
    return Interval(estimate, float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail)))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a rate (scipy's binomtest(...).proportion_ci(method='wilson'))."""
    if trials < 1:
        raise ValueError(f"trials={trials!r} is invalid: need at least one trial")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes!r} is invalid: must lie in [0, trials={trials}]")
    ci = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / trials, float(ci.low), float(ci.high))


# Up to this many seeds in all, Mann-Whitney p-values come from the exact permutation
# distribution (ties included); scipy's normal approximation is unreliable there with ties.
EXACT_PERMUTATION_SEEDS = 16


def mann_whitney_greater(x, y) -> float:
    """One-sided p-value for 'x tends to be larger than y' (Mann-Whitney U)."""
    a, b = _as_array(x, "x"), _as_array(y, "y")
    if a.size + b.size <= EXACT_PERMUTATION_SEEDS:
        result = stats.permutation_test(
            (a, b),
            lambda u, v: stats.mannwhitneyu(u, v).statistic,
            permutation_type="independent",
            alternative="greater",
            n_resamples=np.inf,
        )
        return float(result.pvalue)
    return float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)


def seeds_needed_for_improvement(p_improvement: float, alpha: float = ALPHA, power: float = 0.8) -> int | None:
    """Seeds per variant for a one-sided Mann-Whitney test to detect P(X > Y) = p with the
    given power (Noether 1987: n = (z_alpha + z_beta)^2 / (6 (p - 1/2)^2) per group of two
    equal groups). None where the observed effect is null or in the other direction."""
    if not p_improvement > 0.5:
        return None
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return max(2, math.ceil(z**2 / (6 * (p_improvement - 0.5) ** 2)))


def fisher_power(n: int, p1: float, p2: float, alpha: float = ALPHA) -> float:
    """Exact power of the one-sided Fisher test of 'rate 1 > rate 2' with n seeds per group,
    by enumerating every outcome (x1, x2): conditional on x1 + x2 = t the test rejects when
    x1 reaches the hypergeometric critical value of that t."""
    x = np.arange(n + 1)
    x1, x2 = np.meshgrid(x, x, indexing="ij")
    # One-sided Fisher p-value of each table: P(X1 >= x1 | X1 + X2 = x1 + x2), hypergeometric.
    p_values = stats.hypergeom.sf(x1 - 1, 2 * n, x1 + x2, n)
    probability = np.outer(stats.binom.pmf(x, n, p1), stats.binom.pmf(x, n, p2))
    return float(probability[p_values <= alpha].sum())


def seeds_needed_for_rates(
    p1: float, p2: float, alpha: float = ALPHA, power: float = 0.8, limit: int = 400
) -> int | None:
    """Smallest n per group at which the one-sided Fisher exact test of p1 > p2 reaches the
    given power, by exact enumeration (fisher_power). None where p1 <= p2 or beyond `limit`."""
    if not p1 > p2:
        return None
    for n in range(2, limit + 1):
        if fisher_power(n, p1, p2, alpha) >= power:
            return n
    return None


def seeds_needed_for_rate_below(bound: float, rate: float, alpha: float = ALPHA, power: float = 0.8) -> int | None:
    """Smallest n for which an exact one-sided binomial test of 'rate < bound' has the given
    power when the true rate is `rate`. None where rate >= bound."""
    if not rate < bound:
        return None
    for n in range(2, 10_001):
        # Largest success count that still rejects H0: rate >= bound at level alpha.
        k_max = int(stats.binom.ppf(alpha, n, bound))
        while k_max >= 0 and stats.binom.cdf(k_max, n, bound) > alpha:
            k_max -= 1
        if k_max >= 0 and stats.binom.cdf(k_max, n, rate) >= power:
            return n
    return None


@dataclass(frozen=True)
class Decision:
    """The outcome of testing one claim, in the project's vocabulary: its verdict and numbers."""

    verdict: Verdict
    statistic: str
    effect_size: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    seeds_needed: int | None = None
    # The one-sided p-value of the opposite direction: a refutation rests on it.
    p_opposite: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": str(self.verdict)}


def decide(p_claimed: float, p_opposite: float, alpha: float = ALPHA) -> str:
    """Supported if the one-sided test in the claimed direction rejects at alpha, refuted if
    the test in the opposite direction does, inconclusive otherwise."""
    if p_claimed < alpha:
        return SUPPORTED
    if p_opposite < alpha:
        return REFUTED
    return INCONCLUSIVE


def compare_greater(x, y, alpha: float = ALPHA) -> Decision:
    """Claim 'x is larger than y' over seeds: one-sided Mann-Whitney U, effect size
    P(X > Y) with a stratified bootstrap interval."""
    a, b = _as_array(x, "x"), _as_array(y, "y")
    p_claimed, p_opposite = mann_whitney_greater(a, b), mann_whitney_greater(b, a)
    effect = stratified_bootstrap_ci(a, b, probability_of_improvement)
    verdict = decide(p_claimed, p_opposite, alpha)
    needed = seeds_needed_for_improvement(effect.estimate, alpha) if verdict == INCONCLUSIVE else None
    return Decision(
        verdict,
        "P(X > Y)",
        effect.estimate,
        effect.low,
        effect.high,
        p_claimed,
        int(min(a.size, b.size)),
        needed,
        p_opposite,
    )


def compare_rates_greater(successes_x: int, n_x: int, successes_y: int, n_y: int, alpha: float = ALPHA) -> Decision:
    """Claim 'rate x is larger than rate y': one-sided Fisher exact test; effect size the rate
    difference with a Newcombe (Wilson-based) interval."""
    table = [[successes_x, n_x - successes_x], [successes_y, n_y - successes_y]]
    p_claimed = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p_opposite = float(stats.fisher_exact(table, alternative="less").pvalue)
    wx, wy = wilson_interval(successes_x, n_x), wilson_interval(successes_y, n_y)
    diff = wx.estimate - wy.estimate
    # Newcombe's hybrid score interval for a difference of two proportions.
    low = diff - math.sqrt((wx.estimate - wx.low) ** 2 + (wy.high - wy.estimate) ** 2)
    high = diff + math.sqrt((wx.high - wx.estimate) ** 2 + (wy.estimate - wy.low) ** 2)
    verdict = decide(p_claimed, p_opposite, alpha)
    needed = seeds_needed_for_rates(wx.estimate, wy.estimate, alpha) if verdict == INCONCLUSIVE else None
    return Decision(verdict, "rate difference", diff, low, high, p_claimed, int(min(n_x, n_y)), needed, p_opposite)


def rate_below(successes: int, trials: int, bound: float, alpha: float = ALPHA) -> Decision:
    """Claim 'the true rate is below bound': exact one-sided binomial test; Wilson interval."""
    p_claimed = float(stats.binomtest(successes, trials, bound, alternative="less").pvalue)
    p_opposite = float(stats.binomtest(successes, trials, bound, alternative="greater").pvalue)
    rate = wilson_interval(successes, trials)
    verdict = decide(p_claimed, p_opposite, alpha)
    needed = seeds_needed_for_rate_below(bound, rate.estimate, alpha) if verdict == INCONCLUSIVE else None
    return Decision(verdict, "rate", rate.estimate, rate.low, rate.high, p_claimed, trials, needed, p_opposite)


def rate_above(successes: int, trials: int, bound: float, alpha: float = ALPHA) -> Decision:
    """Claim 'the true rate is above bound': rate_below on the complementary outcome."""
    below = rate_below(trials - successes, trials, 1 - bound, alpha)
    rate = wilson_interval(successes, trials)
    return Decision(
        below.verdict,
        "rate",
        rate.estimate,
        rate.low,
        rate.high,
        below.p_value,
        trials,
        below.seeds_needed,
        below.p_opposite,
    )


def _sign_test_verdict(values, threshold: float, statistic, greater: bool, alpha: float) -> Decision:
    array = _as_array(values, "values")
    interval = bootstrap_ci(array, statistic)
    above, below = int(np.sum(array > threshold)), int(np.sum(array < threshold))
    hits, misses = (above, below) if greater else (below, above)
    informative = hits + misses  # values equal to the threshold carry no sign
    if informative == 0:
        p_claimed = p_opposite = 1.0
    else:
        p_claimed = float(stats.binomtest(hits, informative, 0.5, alternative="greater").pvalue)
        p_opposite = float(stats.binomtest(misses, informative, 0.5, alternative="greater").pvalue)
    verdict = decide(p_claimed, p_opposite, alpha)
    needed = None
    if verdict == INCONCLUSIVE and hits > misses:
        needed = seeds_needed_for_rate_below(0.5, misses / informative, alpha)
    name = getattr(statistic, "__name__", "statistic")
    return Decision(
        verdict, name, interval.estimate, interval.low, interval.high, p_claimed, int(array.size), needed, p_opposite
    )


def location_above(values, threshold: float, statistic=iqm, alpha: float = ALPHA) -> Decision:
    """Claim 'values typically exceed threshold': exact one-sided sign test over seeds (valid
    at any n, and honest about small n: with 3 seeds the smallest p is 1/8). The effect size
    is statistic(values), by default the IQM, with a percentile bootstrap interval."""
    return _sign_test_verdict(values, threshold, statistic, True, alpha)


def location_below(values, threshold: float, statistic=iqm, alpha: float = ALPHA) -> Decision:
    """Claim 'values typically fall below threshold': the sign test of location_above, mirrored."""
    return _sign_test_verdict(values, threshold, statistic, False, alpha)


def spearman_trend(x, y, decreasing: bool, alpha: float = ALPHA) -> Decision:
    """Claim 'y falls (or rises) as x grows': one-sided Spearman rank correlation test; the
    effect size is rho with a bootstrap interval over (x, y) pairs."""
    a, b = _as_array(x, "x"), _as_array(y, "y")
    alternative, opposite = ("less", "greater") if decreasing else ("greater", "less")
    if a.size <= PERMUTATION_SPEARMAN_POINTS:
        # Few points: scipy's t approximation is loose, so permute the pairings instead.
        # Spearman's rho is Pearson's r of the ranks, which vectorises over permutations.
        ranks = (stats.rankdata(a), stats.rankdata(b))

        def rho(u, v, axis=-1):
            u = u - u.mean(axis=axis, keepdims=True)
            v = v - v.mean(axis=axis, keepdims=True)
            return (u * v).sum(axis) / np.sqrt((u * u).sum(axis) * (v * v).sum(axis))

        def p_value(side: str) -> float:
            result = stats.permutation_test(
                ranks,
                rho,
                vectorized=True,
                permutation_type="pairings",
                alternative=side,
                n_resamples=PERMUTATIONS,
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
            return float(result.pvalue)

        p_claimed, p_opposite = p_value(alternative), p_value(opposite)
    else:
        p_claimed = float(stats.spearmanr(a, b, alternative=alternative).pvalue)
        p_opposite = float(stats.spearmanr(a, b, alternative=opposite).pvalue)
    rho = float(stats.spearmanr(a, b).statistic)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = []
    for _ in range(BOOTSTRAP_RESAMPLES // 4):
        idx = rng.integers(0, a.size, a.size)
        if np.ptp(a[idx]) > 0 and np.ptp(b[idx]) > 0:
            draws.append(stats.spearmanr(a[idx], b[idx]).statistic)
    low, high = (float(q) for q in np.quantile(draws, [alpha / 2, 1 - alpha / 2])) if draws else (rho, rho)
    verdict = decide(p_claimed, p_opposite, alpha)
    needed = None
    if verdict == INCONCLUSIVE and rho != 0 and (rho < 0) == decreasing:
        needed = seeds_needed_for_spearman(rho, alpha)
    return Decision(verdict, "spearman rho", rho, low, high, p_claimed, int(a.size), needed, p_opposite)


def seeds_needed_for_spearman(rho: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Points for a one-sided Spearman test to detect rho with the given power: Fisher's z of
    rho with Bonett & Wright's (2000) variance for Spearman, (1 + rho^2 / 2) / (n - 3), not
    Pearson's 1 / (n - 3)."""
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    r = min(abs(rho), 0.999)
    return max(4, math.ceil((1 + r * r / 2) * (z / math.atanh(r)) ** 2 + 3))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def obrien_fleming_spending(fraction: float, alpha: float = ALPHA) -> float:
    """Lan-DeMets O'Brien-Fleming alpha spent by information fraction t (one-sided):
    2 (1 - Phi(z_{1 - alpha/2} / sqrt(t))); spends almost nothing early and alpha at t = 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is invalid: must lie in (0, 1]")
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(fraction)))


def stage_levels(seed_counts, alpha: float = ALPHA) -> list[float]:
    """Nominal level of each look of a group-sequential design with these cumulative seed
    counts: the increments of the O'Brien-Fleming spending function. They sum to alpha, so
    by the union bound the chance of any false verdict over all looks stays <= alpha whatever
    the correlation between looks (conservative, and valid for any test statistic)."""
    counts = list(seed_counts)
    if not counts or any(b <= a for a, b in zip(counts, counts[1:])):
        raise ValueError(f"seed_counts={counts!r} is invalid: must be increasing")
    spent = [obrien_fleming_spending(n / counts[-1], alpha) for n in counts]
    return [spent[0]] + [b - a for a, b in zip(spent, spent[1:])]


def seeds_to_settle(directions: int, alpha: float = ALPHA, growth: int = 2, limit: int = 1_000) -> int:
    """The fewest seeds per variant at which the strongest possible effect (every seed of one
    variant above every seed of the other) passes the first look of a two-look design (n, growth
    x n): its exact one-sided Mann-Whitney p, 1 / C(2n, n), must be at most the look's
    O'Brien-Fleming level over Holm's first step, `directions` tests. With 38 directions (19
    changes x 2) at alpha 0.05: level(8 of 16 seeds) = 0.0056, / 38 = 1.5e-4 >= 1 / C(16, 8) =
    7.8e-5, while 7 seeds give 2.9e-4: 8 seeds."""
    if directions < 1 or growth < 2:
        raise ValueError(f"directions={directions!r}, growth={growth!r} is invalid: need >= 1 and >= 2")
    for n in range(2, limit):
        if 1 / math.comb(2 * n, n) <= stage_levels([n, growth * n], alpha)[0] / directions:
            return n
    raise ValueError(f"directions={directions!r} is invalid: no seed count up to {limit} can settle it")


# Non-binding futility stop for seeds on demand: at a look before the last, a claim whose
# conditional power under the current trend is below this in both directions stops as
# inconclusive. 10% is the usual stochastic-curtailment threshold (Lan, Simon & Halperin 1982).
# Non-binding: the look levels are spent as if no claim ever stopped, so stopping can only
# cost power, never add a false verdict; it saves the seeds a claim could not use.
FUTILITY_POWER = 0.10
# ... and only from half the maximum seeds on: at a quarter the current trend is too noisy (a
# 0.6 SD effect, 96% power at 80 seeds, would stop at 20 seeds 7% of the time, at 40 seeds 3%).
FUTILITY_FROM = 0.5


def conditional_power(p_value: float, fraction: float, final_level: float) -> float:
    """Chance that a one-sided test, at p-value p after a fraction t of the maximum seeds, ends
    below final_level at t = 1 if the effect seen so far is the true one (the current trend).
    Its z = Phi^-1(1 - p) as a Brownian motion B(t) = z sqrt(t) with drift z / sqrt(t) gives
    CP = Phi((z / sqrt(t) - c) / sqrt(1 - t)), c = Phi^-1(1 - final_level)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} is invalid: must lie in (0, 1), a look before the last")
    if not 0 < final_level < 1:
        raise ValueError(f"final_level={final_level!r} is invalid: must lie in (0, 1)")
    z = stats.norm.isf(min(max(p_value, 0.0), 1.0))
    c = stats.norm.isf(final_level)
    return float(stats.norm.cdf((z / math.sqrt(fraction) - c) / math.sqrt(1 - fraction)))


def seed_stages(initial: int, maximum: int) -> list[int]:
    """Cumulative seed counts of the looks: double from `initial` until `maximum` (the last
    look uses exactly `maximum`)."""
    if maximum <= initial:
        return [initial]
    stages = [initial]
    while stages[-1] * 2 < maximum:
        stages.append(stages[-1] * 2)
    return stages + [maximum]


# Stratified rank tests with at least this many seeds in every group use the normal
# approximation; below it, labels are permuted. A Monte Carlo p-value cannot fall below
# 1 / (resamples + 1), which would make the small levels of early looks unreachable.
STRATIFIED_NORMAL_SEEDS = 10


def stratified_rank_greater(strata, resamples: int = PERMUTATIONS, seed: int = BOOTSTRAP_SEED) -> float:
    """One-sided p-value for 'x tends to exceed y' pooled over strata [(x_s, y_s), ...]: the
    statistic is the sum over strata of P(X > Y) (ties half), as in van Elteren's test with
    equal stratum weights. With >= STRATIFIED_NORMAL_SEEDS seeds per group: its normal
    approximation with the tie-corrected variance of each U; otherwise labels are permuted
    within each stratum (Monte Carlo, valid at any size). The design holds every other factor
    fixed inside a stratum."""
    arrays = [(_as_array(x, "x"), _as_array(y, "y")) for x, y in strata]
    if min(min(a.size, b.size) for a, b in arrays) >= STRATIFIED_NORMAL_SEEDS:
        observed, variance = 0.0, 0.0
        for a, b in arrays:
            n, m = a.size, b.size
            _, counts = np.unique(np.concatenate([a, b]), return_counts=True)
            ties = float(np.sum(counts**3 - counts)) / ((n + m) * (n + m - 1))
            observed += probability_of_improvement(a, b) - 0.5
            variance += (n * m / 12.0) * ((n + m + 1) - ties) / (n * m) ** 2
        if variance == 0:
            return 1.0
        return float(stats.norm.sf(observed / math.sqrt(variance)))
    return stratified_permutation_greater(arrays, resamples, seed)


def stratified_permutation_greater(strata, resamples: int = PERMUTATIONS, seed: int = BOOTSTRAP_SEED) -> float:
    """One-sided p-value for 'x tends to exceed y' pooled over strata [(x_s, y_s), ...]: the
    statistic is the mean over strata of P(X > Y), and the null distribution permutes the
    group labels within each stratum (Monte Carlo, valid at any sample size; ties get mid-ranks).
    The design holds every other factor fixed inside a stratum."""
    rng = np.random.default_rng(seed)
    observed = 0.0
    null = np.zeros(resamples)
    for x, y in strata:
        a, b = _as_array(x, "x"), _as_array(y, "y")
        ranks = stats.rankdata(np.concatenate([a, b]))
        offset = a.size * (a.size + 1) / 2
        scale = a.size * b.size
        observed += (ranks[: a.size].sum() - offset) / scale
        # Rank sums of a random subset of size |a|: U / (n m) is P(X > Y) with ties counted half.
        picks = rng.permuted(np.tile(np.arange(ranks.size), (resamples, 1)), axis=1)[:, : a.size]
        null += (ranks[picks].sum(1) - offset) / scale
    return float((1 + np.sum(null >= observed - 1e-12)) / (resamples + 1))
