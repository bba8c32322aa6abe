import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from reports.analysis import stats as S

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_iqm_on_tiny_exact_cases():
    assert S.iqm([1, 2, 3, 4]) == 2.5  # middle two
    assert S.iqm([0, 0, 0, 0, 100, 100, 100, 100]) == 50.0
    assert S.iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == 4.5  # the outlier is cut
    assert S.iqm([7.0]) == 7.0


@given(st.lists(finite, min_size=4, max_size=40))
def test_iqm_lies_between_the_quartiles(values):
    q1, q3 = np.percentile(values, [25, 75])
    assert q1 - 1e-6 <= S.iqm(values) <= q3 + 1e-6


def test_iqm_rejects_empty_and_non_finite_input():
    with pytest.raises(ValueError, match="empty"):
        S.iqm([])
    with pytest.raises(ValueError, match="non-finite"):
        S.iqm([1.0, float("nan")])


def test_probability_of_improvement_exact_cases():
    assert S.probability_of_improvement([2, 3], [0, 1]) == 1.0
    assert S.probability_of_improvement([0, 1], [2, 3]) == 0.0
    assert S.probability_of_improvement([1, 1], [1, 1]) == 0.5
    assert S.probability_of_improvement([1, 3], [2]) == 0.5


@given(st.lists(finite, min_size=1, max_size=15), st.lists(finite, min_size=1, max_size=15))
def test_probability_of_improvement_matches_mann_whitney_u(x, y):
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    assert S.probability_of_improvement(x, y) == pytest.approx(u / (len(x) * len(y)))
    assert S.probability_of_improvement(x, y) + S.probability_of_improvement(y, x) == pytest.approx(1.0)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 1), (17, 40)])
def test_wilson_interval_matches_the_closed_form(k, n):
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    interval = S.wilson_interval(k, n)
    assert interval.estimate == p
    assert interval.low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert interval.high == pytest.approx(min(1.0, centre + half), abs=1e-12)


def test_wilson_interval_validates_counts():
    with pytest.raises(ValueError, match="trials=0"):
        S.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes=5"):
        S.wilson_interval(5, 3)


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible():
    values = np.random.default_rng(1).normal(10, 2, 30)
    first, second = S.bootstrap_ci(values), S.bootstrap_ci(values)
    assert first == second
    assert first.low <= first.estimate <= first.high
    assert first.high - first.low < 3
    constant = S.bootstrap_ci([4.0, 4.0, 4.0])
    assert (constant.low, constant.estimate, constant.high) == (4.0, 4.0, 4.0)


def test_bootstrap_interval_covers_a_known_mean_most_of_the_time():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(60):
        interval = S.bootstrap_ci(rng.normal(0, 1, 25), statistic=np.mean)
        covered += interval.low <= 0 <= interval.high
    assert covered >= 48  # nominal 95%; percentile bootstrap at n=25 undercovers a little


def test_stratified_bootstrap_resamples_each_group():
    interval = S.stratified_bootstrap_ci([5, 6, 7, 8], [1, 2, 3, 4], S.probability_of_improvement)
    assert interval.estimate == 1.0 and interval.high == 1.0 and interval.low == 1.0


def test_compare_greater_supported_refuted_and_inconclusive():
    rng = np.random.default_rng(3)
    low, high = rng.normal(0, 1, 20), rng.normal(3, 1, 20)
    assert S.compare_greater(high, low).verdict == S.SUPPORTED
    assert S.compare_greater(low, high).verdict == S.REFUTED
    tiny = S.compare_greater([1.0, 2.0], [1.5, 0.5])
    assert tiny.verdict == S.INCONCLUSIVE and tiny.n == 2


def test_rate_claims_use_exact_binomial_tests():
    # 0 successes in 14 trials: P(X = 0 | p = 0.2) = 0.8^14 = 0.044 < 0.05.
    verdict = S.rate_below(0, 14, 0.2)
    assert verdict.verdict == S.SUPPORTED and verdict.p_value == pytest.approx(0.8**14)
    assert S.rate_below(0, 13, 0.2).verdict == S.INCONCLUSIVE  # 0.8^13 = 0.055
    assert S.rate_below(10, 10, 0.2).verdict == S.REFUTED
    assert S.rate_above(10, 10, 0.5).verdict == S.SUPPORTED  # 0.5^10
    assert S.rate_above(0, 10, 0.5).verdict == S.REFUTED


def test_compare_rates_uses_fisher_exact():
    verdict = S.compare_rates_greater(9, 10, 1, 10)
    assert verdict.p_value == pytest.approx(stats.fisher_exact([[9, 1], [1, 9]], alternative="greater").pvalue)
    assert verdict.verdict == S.SUPPORTED and verdict.effect_size == pytest.approx(0.8)
    assert verdict.ci_low < 0.8 < verdict.ci_high


def test_power_estimates():
    # Noether: (1.645 + 0.842)^2 / (6 * 0.25^2) = 16.5 -> 17 per group for P(X > Y) = 0.75.
    assert S.seeds_needed_for_improvement(0.75) == 17
    assert S.seeds_needed_for_improvement(0.5) is None
    assert S.seeds_needed_for_rates(0.8, 0.2) < S.seeds_needed_for_rates(0.6, 0.4)
    # Rate below 0.2 when the truth is 0: the exact test first rejects at n = 14.
    assert S.seeds_needed_for_rate_below(0.2, 0.0) == 14


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.55, 0.95))
def test_noether_sample_size_gives_about_the_stated_power(p):
    n = S.seeds_needed_for_improvement(p)
    assert n >= 2
    if n > 5:
        assert S.seeds_needed_for_improvement(p, power=0.9) >= n


def test_location_claims_use_an_exact_sign_test():
    # 6 of 6 above: p = 0.5^6 = 0.0156.
    verdict = S.location_above([300, 310, 320, 330, 340, 350], 250)
    assert verdict.verdict == S.SUPPORTED and verdict.p_value == pytest.approx(0.5**6)
    assert verdict.effect_size == pytest.approx(325.0)  # IQM of the middle four
    # 3 seeds can never settle a sign test at alpha = 0.05.
    assert S.location_above([300, 310, 320], 250).verdict == S.INCONCLUSIVE
    assert S.location_above([10, 20, 30, 40, 50, 60], 250).verdict == S.REFUTED
    assert S.location_below([10, 20, 30, 40, 50, 60], 250).verdict == S.SUPPORTED
    # Values on the threshold carry no sign.
    assert S.location_above([250, 250, 250], 250).verdict == S.INCONCLUSIVE


def test_spearman_trend_detects_a_monotone_relation():
    x = np.repeat([0, 1, 2, 3], 6)
    y = -x + np.random.default_rng(0).normal(0, 0.3, x.size)
    assert S.spearman_trend(x, y, decreasing=True).verdict == S.SUPPORTED
    assert S.spearman_trend(x, y, decreasing=False).verdict == S.REFUTED


def test_mann_whitney_is_exact_for_small_samples_with_ties():
    # 3 vs 3, complete separation: exactly 1 of the C(6, 3) = 20 splits is as extreme.
    assert S.mann_whitney_greater([5, 6, 7], [1, 1, 1]) == pytest.approx(1 / 20)
    assert S.compare_greater([5, 6, 7], [1, 1, 1]).verdict == S.INCONCLUSIVE
    # Larger samples agree with scipy's test.
    rng = np.random.default_rng(4)
    x, y = rng.normal(1, 1, 20), rng.normal(0, 1, 20)
    assert S.mann_whitney_greater(x, y) == pytest.approx(stats.mannwhitneyu(x, y, alternative="greater").pvalue)


def test_spearman_trend_on_few_points_uses_permutations():
    # 4 points in perfect order: 1 of the 24 pairings is as extreme, p = 1/24 one-sided.
    verdict = S.spearman_trend([1, 2, 3, 4], [4, 3, 2, 1], decreasing=True)
    assert verdict.effect_size == -1.0
    assert verdict.p_value == pytest.approx(1 / 24, abs=0.01)
    assert verdict.verdict == S.SUPPORTED
    # 3 points can never reach p < 0.05 (1 of 6 pairings).
    assert S.spearman_trend([1, 2, 3], [3, 2, 1], decreasing=True).verdict == S.INCONCLUSIVE


def test_holm_on_a_tiny_exact_case():
    # Sorted p: 0.01 (x4 = 0.04), 0.03 (x3 = 0.09), 0.04 (x2 = 0.08 -> 0.09, monotone), 0.5 (x1).
    np.testing.assert_allclose(S.holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])
    assert S.holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # 2 x 0.8 caps at 1; monotone after
    assert S.holm([0.5, 0.5, 0.5]).max() == 1.0


def test_stage_levels_spend_exactly_alpha():
    assert S.stage_levels([20]) == [pytest.approx(S.ALPHA)]
    levels = S.stage_levels([20, 40, 80])
    assert sum(levels) == pytest.approx(S.ALPHA)
    # O'Brien-Fleming spends almost nothing at the first look and most at the last.
    assert levels[0] < 1e-3 < levels[1] < levels[2]
    assert S.seed_stages(20, 80) == [20, 40, 80] and S.seed_stages(20, 100) == [20, 40, 80, 100]
    assert S.seed_stages(20, 20) == [20]
    with pytest.raises(ValueError, match="must be increasing"):
        S.stage_levels([40, 20])


def test_conditional_power_on_tiny_exact_cases():
    c = stats.norm.isf(0.025)
    # The current trend lands exactly on the bar at t = 1: a coin flip.
    assert S.conditional_power(stats.norm.sf(c * 0.5), 0.25, 0.025) == pytest.approx(0.5)
    # No effect seen halfway: Phi(-c / sqrt(1/2)).
    assert S.conditional_power(0.5, 0.5, 0.025) == pytest.approx(stats.norm.cdf(-c * math.sqrt(2)))
    assert S.conditional_power(0.0, 0.5, 0.025) == 1.0 and S.conditional_power(1.0, 0.5, 0.025) == 0.0
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="fraction"):
            S.conditional_power(0.1, fraction, 0.025)


def test_conditional_power_matches_a_simulated_brownian_motion():
    """B(1) = B(t) + N(drift (1 - t), 1 - t) with B(t) = z sqrt(t) and drift z / sqrt(t)."""
    p, t, level = 0.2, 0.4, 0.01
    z = stats.norm.isf(p)
    rest = np.random.default_rng(3).normal(z / math.sqrt(t) * (1 - t), math.sqrt(1 - t), 400_000)
    simulated = np.mean(z * math.sqrt(t) + rest > stats.norm.isf(level))
    assert abs(S.conditional_power(p, t, level) - simulated) < 4 * math.sqrt(0.25 / rest.size)


def test_fisher_power_matches_enumeration_with_scipy():
    n, p1, p2, alpha = 6, 0.9, 0.3, 0.05
    expected = 0.0
    for x1 in range(n + 1):
        for x2 in range(n + 1):
            table = [[x1, n - x1], [x2, n - x2]]
            if stats.fisher_exact(table, alternative="greater").pvalue <= alpha:
                expected += stats.binom.pmf(x1, n, p1) * stats.binom.pmf(x2, n, p2)
    assert S.fisher_power(n, p1, p2, alpha) == pytest.approx(expected, rel=1e-9)
    needed = S.seeds_needed_for_rates(0.9, 0.6)
    assert S.fisher_power(needed, 0.9, 0.6) >= 0.8 > S.fisher_power(needed - 1, 0.9, 0.6)
    assert S.seeds_needed_for_rates(0.3, 0.6) is None


def test_spearman_seeds_needed_use_the_spearman_variance():
    # Bonett & Wright: n = 3 + (1 + rho^2 / 2) (z / atanh(rho))^2; larger than Pearson's n.
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.8)
    rho = 0.5
    assert S.seeds_needed_for_spearman(rho) == math.ceil(1.125 * (z / math.atanh(rho)) ** 2 + 3)
    assert S.seeds_needed_for_spearman(rho) > math.ceil((z / math.atanh(rho)) ** 2 + 3)


def test_stratified_permutation_is_exact_in_the_limit_and_calibrated_under_the_null():
    # One stratum, 2 vs 2, complete separation: 1 of the C(4, 2) = 6 splits is as extreme.
    assert S.stratified_permutation_greater([([5, 6], [1, 2])]) == pytest.approx(1 / 6, abs=0.01)
    # Two such strata: both must be extreme at once for the mean to be, 1/36.
    assert S.stratified_permutation_greater([([5, 6], [1, 2])] * 2) == pytest.approx(1 / 36, abs=0.005)
    rng = np.random.default_rng(7)
    p_values = [
        S.stratified_permutation_greater([(rng.normal(0, 1, 6), rng.normal(0, 1, 6)) for _ in range(3)], resamples=499)
        for _ in range(300)
    ]
    # Under the null, P(p <= 0.1) is 0.1 up to Monte Carlo error (3 standard errors of 300 draws).
    assert abs(np.mean(np.asarray(p_values) <= 0.1) - 0.1) < 3 * math.sqrt(0.09 / 300)


def test_stratified_rank_test_uses_a_normal_approximation_that_agrees_with_permutation():
    rng = np.random.default_rng(3)
    shifted = [(rng.normal(0.3, 1, 20), rng.normal(0, 1, 20)) for _ in range(4)]
    tied = [(rng.integers(0, 3, 20).astype(float), rng.integers(0, 3, 20).astype(float)) for _ in range(8)]
    for strata in (shifted, tied):
        assert S.stratified_rank_greater(strata) == pytest.approx(S.stratified_permutation_greater(strata), abs=0.006)
    # Far in the tail the approximation reaches levels a 9,999-resample permutation cannot.
    separated = [(rng.normal(3, 1, 20), rng.normal(0, 1, 20)) for _ in range(4)]
    assert S.stratified_rank_greater(separated) < 1e-6 < 1 / 10_000 <= S.stratified_permutation_greater(separated)


def test_seeds_to_settle_is_the_fewest_at_which_complete_separation_passes_the_first_look():
    from math import comb

    from reports.analysis.stats import mann_whitney_greater, seeds_to_settle, stage_levels

    assert seeds_to_settle(38) == 8
    level = stage_levels([8, 16])[0] / 38
    assert 1 / comb(16, 8) <= level < 1 / comb(14, 7)
    # The exact test reaches that p: every seed of one variant above every seed of the other.
    assert mann_whitney_greater(np.arange(8) + 100.0, np.arange(8)) == pytest.approx(1 / comb(16, 8))
    assert seeds_to_settle(1) < seeds_to_settle(38) < seeds_to_settle(1_000)
