"""Property 3: replay breaks the temporal correlation of the states an agent learns from."""

from __future__ import annotations

import numpy as np
import pytest

from ablations.collect import record
from ablations.helpers import over, pooled_sweep_verdict
from ablations.verdicts import enforce
from agents.catalogue.presets import REPLAY_CAPACITIES, VARIANTS, capacity_variant, get_variant
from reports.analysis import stats
from reports.analysis.metrics import seed_summary

pytestmark = pytest.mark.decorrelation

NO_REPLAY = [name for name, v in VARIANTS.items() if not v.config.uses_replay]
REPLAY = [name for name, v in VARIANTS.items() if v.config.uses_replay]
SWEEP = [capacity_variant(capacity) for capacity in REPLAY_CAPACITIES]
# "Near 1" for consecutive env states, stated before measuring: above the midpoint of [0, 1].
NEAR_ONE = 0.5


def decorrelation_bound(capacity: int, window_updates: int, batch_size: int, env_steps_per_update: int) -> float:
    """How far from 0 the measured lag-1 autocorrelation may lie under uniform replay.

    Two independent uniform draws from a fixed buffer are uncorrelated, exactly. The measured
    value departs from 0 in two ways: estimation noise, about 1/sqrt(n) for n sampled states
    (3 standard errors allowed), and the buffer drifting while the window's updates sample it,
    allowed up to the fraction of the buffer that the window's inserts replace.
    """
    noise = 3 / np.sqrt(window_updates * batch_size)
    drift = min(1.0, window_updates * env_steps_per_update / capacity)
    return float(noise + drift)


def _full(run):
    """Checkpoints whose whole measurement window sampled a full buffer: the window's first
    update came after the buffer had filled."""
    config, frame = run.config, run.checkpoints
    window_start = frame["env_step"] - config.diagnostic_window * config.env_steps_per_update
    return frame[(window_start >= config.replay_capacity) & frame["state_autocorrelation"].notna()]


@over(NO_REPLAY)
def test_consecutive_states_are_correlated_without_replay(variant_run, record_property):
    """Without replay the states used for learning are consecutive env states: the mean lag-1
    autocorrelation over seeds exceeds 0.5."""
    per_seed = variant_run.checkpoints.groupby("seed")["state_autocorrelation"].mean().dropna()
    verdict = stats.location_above(per_seed, NEAR_ONE, statistic=np.mean)
    record(record_property, runs=[variant_run], verdict=verdict, property="decorrelation", bound=NEAR_ONE)
    enforce(verdict, f"{variant_run.variant}: lag-1 autocorrelation of training states > {NEAR_ONE}")


@over(REPLAY)
def test_uniform_replay_decorrelates_once_full(variant_run, record_property):
    """With the buffer full, the mean lag-1 autocorrelation over seeds lies below the bound
    derived from the capacity, the batch and the measurement window."""
    config = variant_run.config
    capacity = config.replay_capacity
    bound = decorrelation_bound(capacity, config.diagnostic_window, config.batch_size, config.env_steps_per_update)
    if bound >= 1:
        pytest.skip(f"capacity {capacity} is too small for a bound below 1 (bound {bound:.3g})")
    full = _full(variant_run)
    if full.empty:
        pytest.skip(f"the buffer (capacity {capacity:,}) never filled in {variant_run.config.total_env_steps:,} steps")
    per_seed = full.groupby("seed")["state_autocorrelation"].mean()
    verdict = stats.location_below(per_seed, bound, statistic=np.mean)
    record(
        record_property, runs=[variant_run], verdict=verdict, property="decorrelation", bound=bound, capacity=capacity
    )
    enforce(verdict, f"{variant_run.variant}: lag-1 autocorrelation below {bound:.3g} once the buffer is full")


@over(REPLAY)
def test_mean_sample_age_is_half_the_capacity(variant_run, record_property):
    """Uniform sampling from a full buffer of N transitions gives ages 0..N-1 with mean
    (N - 1) / 2 and standard error N / sqrt(12 n) over n samples: every full checkpoint
    lies within 5 standard errors."""
    config = variant_run.config
    full = _full(variant_run)
    if full.empty:
        pytest.skip(f"the buffer (capacity {config.replay_capacity:,}) never filled")
    capacity = config.replay_capacity
    samples = config.diagnostic_window * config.batch_size
    expected, standard_error = (capacity - 1) / 2, capacity / np.sqrt(12 * samples)
    deviations = ((full["mean_sample_age"] - expected) / standard_error).abs()
    record(
        record_property,
        runs=[variant_run],
        property="decorrelation",
        expected_age=expected,
        standard_error=standard_error,
        worst_deviation_se=float(deviations.max()),
        checkpoints=len(full),
    )
    assert deviations.max() < 5, (
        f"mean sample age strays {deviations.max():.1f} standard errors from (N - 1) / 2 = {expected:.1f}"
    )


@pytest.mark.variants(*SWEEP)
def test_capacity_sweep_lowers_correlation(ablation_runs, record_property):
    """Correlation falls as replay capacity grows (one-sided Spearman test over seeds x
    capacities; no replay counts as capacity 1). Sample age, return and divergence are
    recorded per capacity."""
    runs = [ablation_runs.get(get_variant(name)) for name in SWEEP]
    capacities, correlations, table = [], [], {}
    for capacity, run in zip(REPLAY_CAPACITIES, runs):
        summary = seed_summary(run)
        late = summary["late_state_autocorrelation"]
        capacities += [capacity or 1] * len(summary)
        correlations += late.tolist()
        table[str(capacity or "none")] = {
            "autocorrelation_mean": float(late.mean()),
            "mean_sample_age": float(run.checkpoints.groupby("seed")["mean_sample_age"].last().mean()),
            "late_return_iqm": stats.iqm(summary["late_return"]),
            "soft_divergence_rate": float(summary["soft_diverged"].mean()) if "soft_diverged" in summary else None,
        }
    x, y = np.log10(np.asarray(capacities, dtype=float)), np.asarray(correlations)
    finite = np.isfinite(y)
    verdict = pooled_sweep_verdict(stats.spearman_trend(x[finite], y[finite], decreasing=True), len(SWEEP))
    record(record_property, runs=runs, verdict=verdict, property="decorrelation", sweep=table)
    enforce(verdict, "lag-1 autocorrelation of training states falls as replay capacity grows")
