"""Property 2: the target network lags the online network exactly as configured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablations.collect import record
from ablations.helpers import over, pooled_sweep_verdict
from ablations.verdicts import enforce
from agents.catalogue.presets import SYNC_PERIODS, VARIANTS, get_variant, sync_period_variant
from agents.engine.loop import train
from reports.analysis import stats
from reports.analysis.metrics import seed_summary

pytestmark = pytest.mark.target_lag

# Variants whose target follows its schedule (a stale-target bug never syncs: checked apart).
HARD = [n for n, v in VARIANTS.items() if v.config.target_network == "hard" and not v.config.bug_stale_target]
POLYAK = [n for n, v in VARIANTS.items() if v.config.target_network == "polyak" and not v.config.bug_stale_target]
STALE = [n for n, v in VARIANTS.items() if v.config.bug_stale_target]
SWEEP = [sync_period_variant(period) for period in SYNC_PERIODS]
# Instrumented runs check the mechanism, not learning: two seeds, a few sync periods long.
PROBE_SEEDS = [0, 1]


def _instrumented(config, updates: int, check, seeds=PROBE_SEEDS) -> None:
    """Train briefly; check(env_step, updates, online, target) sees the nets after every update."""
    steps = config.learning_starts + (updates - 1) * config.env_steps_per_update
    train(config.replace(total_env_steps=steps, eval_episodes=0, eval_period=steps), seeds, on_update=check)


# Every hard-sync variant updating every env step, and example 3 updating every 4 env steps
# (where lag in env steps and lag in updates differ).
SAWTOOTH_CASES = [(name, 1) for name in HARD] + [("article-target", 4)]


@pytest.mark.parametrize(
    "name,env_steps_per_update",
    SAWTOOTH_CASES,
    ids=[f"{name}-update-every-{'step' if k == 1 else f'{k}-steps'}" for name, k in SAWTOOTH_CASES],
)
def test_hard_sync_sawtooth(name, env_steps_per_update, ablation_settings, record_property):
    """Online-target distance is exactly 0 right after each sync; the target is untouched
    between syncs; lag is counted in updates and in env steps (they differ when updates are
    not every step)."""
    config = ablation_settings.configure(get_variant(name).config).replace(env_steps_per_update=env_steps_per_update)
    period = config.target_sync_period
    state = {"sync_step": None, "sync_update": 0, "previous": None}
    lag_updates, lag_steps, distances = [], [], []

    def check(env_step, update, online, target):
        distance = target.distance(online)
        if update % period == 0:
            assert torch.equal(distance, torch.zeros_like(distance)), f"distance {distance} after sync {update}"
            assert all(torch.equal(t, o) for t, o in zip(target.tensors(), online.tensors()))
            state["sync_step"], state["sync_update"] = env_step, update
        else:
            assert bool((distance > 0).all()), f"online equals target at update {update} without a sync"
            if state["previous"] is not None:
                assert all(torch.equal(t, p) for t, p in zip(target.tensors(), state["previous"].tensors()))
        state["previous"] = target.clone()
        lag_updates.append(update - state["sync_update"])
        lag_steps.append(None if state["sync_step"] is None else env_step - state["sync_step"])
        distances.append(float(distance.mean()))

    # Two full sync cycles (at least 200 updates), so every lag value occurs after a sync.
    _instrumented(config, max(2 * period, 200) + 1, check)
    assert max(lag_updates) == period - 1
    synced = [s for s in lag_steps if s is not None]
    if synced:
        assert max(synced) == (period - 1) * env_steps_per_update
    record(
        record_property,
        property="target_lag",
        variants=name,
        sync_period=period,
        env_steps_per_update=env_steps_per_update,
        lag_updates=lag_updates[:400],
        lag_env_steps=lag_steps[:400],
        online_target_distance=distances[:400],
    )


@over(POLYAK)
def test_polyak_contraction(variant_run, record_property):
    """target <- (1 - tau) target + tau online after every update, to the last bit."""
    config = variant_run.config
    tau = config.target_tau
    state = {"previous": None}
    distances = []

    def check(env_step, update, online, target):
        if state["previous"] is not None:
            expected = [b.mul(1 - tau).add(o, alpha=tau) for b, o in zip(state["previous"].tensors(), online.tensors())]
            assert all(torch.equal(t, e) for t, e in zip(target.tensors(), expected)), f"update {update}"
        state["previous"] = target.clone()
        distances.append(float(target.distance(online).mean()))

    _instrumented(config, 300, check)
    record(
        record_property,
        runs=[variant_run],
        property="target_lag",
        tau=tau,
        effective_lag_updates=1 / tau,
        online_target_distance=distances,
    )


def test_sync_every_update_equals_no_target_network(ablation_settings, record_property):
    """C = 1 copies after every update, so each TD target uses the online network as it is:
    the run is bit-identical to the same agent without a target network."""
    with_target = ablation_settings.configure(get_variant(sync_period_variant(1)).config)
    without = with_target.replace(target_network="none", target_sync_period=None)
    steps = min(ablation_settings.env_steps, 1_500)
    a = train(with_target.replace(total_env_steps=steps, eval_episodes=0), PROBE_SEEDS, trace=True)
    b = train(without.replace(total_env_steps=steps, eval_episodes=0), PROBE_SEEDS, trace=True)
    np.testing.assert_array_equal(a.trace_actions, b.trace_actions)
    np.testing.assert_array_equal(a.trace_losses, b.trace_losses)
    record(record_property, property="target_lag", variants="sync-period-1", steps=steps, identical=True)


@pytest.mark.variants(*SWEEP)
def test_sync_period_sweep_steadies_the_target(ablation_runs, record_property):
    """A longer sync period holds the target still: the relative drift of the TD targets per
    update falls as C grows (one-sided Spearman test over seeds x periods). A relative measure,
    so a period cannot win by keeping its Q-values small; the batch TD-target variance (which
    grows with Q^2), max |Q| and returns are recorded per C beside it."""
    runs = [ablation_runs.get(get_variant(name)) for name in SWEEP]
    periods, drifts, table = [], [], {}
    for period, run in zip(SYNC_PERIODS, runs):
        summary = seed_summary(run)
        periods += [period] * len(summary)
        drifts += summary["late_target_drift"].tolist()
        table[str(period)] = {
            "target_drift_median": float(summary["late_target_drift"].median()),
            "td_target_var_median": float(summary["late_td_target_var"].median()),
            "peak_max_abs_q_median": float(summary["peak_max_abs_q"].median()),
            "late_return_iqm": stats.iqm(summary["late_return"]),
        }
    x, y = np.log10(np.asarray(periods, dtype=float)), np.asarray(drifts)
    finite = np.isfinite(y)
    verdict = pooled_sweep_verdict(stats.spearman_trend(x[finite], y[finite], decreasing=True), len(SYNC_PERIODS))
    record(record_property, runs=runs, verdict=verdict, property="target_lag", sweep=table)
    enforce(verdict, "the TD targets' relative drift per update falls as the sync period C grows")


@pytest.mark.parametrize("name", STALE)
def test_a_stale_target_keeps_its_first_copy(name, ablation_settings, record_property):
    """bug_stale_target: the target equals the initial network after every update, however many
    sync periods pass, while the online network moves away from it."""
    config = ablation_settings.configure(get_variant(name).config)
    state: dict = {}

    def check(step, update, online, target):
        if "first" not in state:
            state["first"] = target.clone()
        assert all(torch.equal(t, f) for t, f in zip(target.tensors(), state["first"].tensors()))
        state["distance"] = float(target.distance(online).min())

    _instrumented(config, 3 * (config.target_sync_period or 1) + 1, check)
    record(record_property, property="target_lag", variant=name, final_distance=state["distance"])
    assert state["distance"] > 0
