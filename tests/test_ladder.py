"""The one-knob ladder: every rung is a valid config that changes one knob of the base."""

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.catalogue.presets import VARIANTS, get_variant
from agents.config import AgentConfig
from agents.diagnosis.ladder import one_knob_ladder

# The fields one switch may set together (agents/diagnosis/ladder.py says why each belongs to one knob).
ONE_KNOB = {
    "replay": {"replay_capacity", "batch_size", "learning_starts"},
    "no-replay": {"replay_capacity", "batch_size", "learning_starts", "n_step"},
    "target": {"target_network", "target_sync_period", "target_sync_unit"},
    "no-target": {"target_network", "target_sync_period", "target_sync_unit", "target_tau", "double_q"},
    "eps-decay": {"epsilon_start", "epsilon_end", "epsilon_decay_steps"},
    "eps-constant": {"epsilon_start", "epsilon_decay_steps"},
    # The training step's size: both schedule fields divided together, the updates per env step kept.
    "burst-x0.25": {"env_steps_per_update", "gradient_steps"},
}


def changed_fields(a: AgentConfig, b: AgentConfig) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def check_ladder(base: AgentConfig) -> None:
    rungs, _ = one_knob_ladder(base)
    assert len({r.key for r in rungs}) == len(rungs)
    assert len({r.config for r in rungs}) == len(rungs)  # no two rungs train the same config
    for rung in rungs:
        changed = changed_fields(base, rung.config)
        assert changed, rung.key
        assert set(rung.fields) == changed and len(rung.fields) == len(changed), (rung.key, rung.fields)
        assert changed <= ONE_KNOB.get(rung.key, changed if len(changed) == 1 else set()), (rung.key, changed)
        if len(changed) > 1:  # a rung that sets several fields names every one in its sentence
            assert all(name in rung.description for name in changed), (rung.key, rung.description)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_preset_has_a_one_knob_ladder(name):
    check_ladder(get_variant(name).config)


def test_example_3_ladder():
    rungs, skipped = one_knob_ladder(get_variant("article-target").config)
    keys = [r.key for r in rungs]
    assert keys == [
        "no-terminal-masking",
        "bootstrap-on-truncation",
        "no-replay",
        "no-target",
        "sync-x0.01",
        "sync-x0.1",
        "sync-x0.3",
        "sync-x3",
        "sync-x10",
        "double-q",
        "huber",
        "clip",
        "lr-x0.01",
        "lr-x0.1",
        "lr-x0.3",
        "lr-x3",
        "lr-x10",
        "eps-decay",
        "gamma-0.9",
        # Added with issue 37's rungs: the batch toward 64-256 and the width toward 256 (Revisiting
        # Rainbow); no budget or schedule rung on a 50k-step CartPole run updating every step.
        "batch-x2",
        "batch-x4",
        "width-256",
    ]
    assert skipped == [
        "learning start: 64 is within the first 10% of the run",
        "steps x4: the budget is already at least CartPole-v1's typical 50,000 (rl-zoo)",
        "update schedule: already one gradient update per env step",
        "smaller bursts: the base trains in bursts of fewer than 4 updates or every fewer than 4 env steps",
    ]
    by_key = {r.key: r.config for r in rungs}
    assert by_key["sync-x0.1"].target_sync_period == 10 and by_key["sync-x10"].target_sync_period == 1000
    assert by_key["lr-x3"].learning_rate == pytest.approx(3e-3)
    assert by_key["no-replay"].batch_size == 1 and by_key["no-replay"].replay_capacity is None


def test_a_bug_the_base_has_gets_a_rung_that_fixes_it_and_nothing_else():
    base = get_variant("article-target").config.replace(bug_stale_target=True, bug_no_zero_grad=True)
    by_key = {r.key: r for r in one_knob_ladder(base)[0]}
    assert by_key["no-bug-stale-target"].config == base.replace(bug_stale_target=False)
    assert by_key["no-bug-no-zero-grad"].config == base.replace(bug_no_zero_grad=False)
    assert "never synced again" in by_key["no-bug-stale-target"].description
    assert not any(r.key.startswith("no-bug-") for r in one_knob_ladder(get_variant("article-target").config)[0])


def test_a_short_horizon_gets_both_discount_rungs_and_a_usual_one_the_other():
    short = {r.key: r.config.gamma for r in one_knob_ladder(AgentConfig(gamma=0.5))[0] if r.key.startswith("gamma")}
    assert short == {"gamma-0.9": 0.9, "gamma-0.99": 0.99}
    usual = [r.key for r in one_knob_ladder(AgentConfig(gamma=0.99))[0] if r.key.startswith("gamma")]
    assert usual == ["gamma-0.9"]


def test_knobs_without_a_valid_rung_are_listed_with_the_reason():
    rungs, skipped = one_knob_ladder(get_variant("article-naive").config)
    keys = {r.key for r in rungs}
    assert "target" in keys and "replay" in keys and "terminal-masking" in keys
    assert not keys & {"double-q", "sync-x0.1", "sync-x10"}
    assert any(line.startswith("double Q: needs a target network") for line in skipped)
    sync_lines = [line for line in skipped if line.startswith("sync period")]
    assert sync_lines == ["sync period: the base has no target network"]
    # Removing a target network that double Q relies on removes double Q with it.
    no_target = {r.key: r.config for r in one_knob_ladder(get_variant("replay-target-double").config)[0]}["no-target"]
    assert no_target.target_network == "none" and not no_target.double_q


@settings(max_examples=60, deadline=None)
@given(
    replay=st.booleans(),
    target=st.sampled_from(["none", "hard", "polyak"]),
    period=st.integers(1, 5000),
    double=st.booleans(),
    lr=st.floats(1e-5, 1e-1),
    clip=st.one_of(st.none(), st.floats(0.1, 100)),
    decay=st.integers(0, 5000),
    every=st.integers(1, 600),
    steps=st.integers(1, 600),
    hidden=st.lists(st.integers(1, 600), min_size=1, max_size=3),
)
def test_any_valid_base_gets_valid_one_knob_rungs(
    replay, target, period, double, lr, clip, decay, every, steps, hidden
):
    fields = {"learning_rate": lr, "max_grad_norm": clip, "epsilon_start": 1.0, "epsilon_decay_steps": decay}
    fields.update(env_steps_per_update=every, gradient_steps=steps, hidden_sizes=tuple(hidden))
    if not replay:
        fields.update(replay_capacity=None, batch_size=1, learning_starts=1)
    fields.update(
        target_network=target,
        target_sync_period=period if target != "none" else None,
        target_tau=0.01 if target == "polyak" else None,
        double_q=double and target != "none",
    )
    check_ladder(AgentConfig(**fields))


def test_a_polyak_target_gets_tau_rungs_and_sync_rungs_only_on_an_interval():
    every_update = AgentConfig(target_network="polyak", target_tau=0.005)
    rungs, skipped = one_knob_ladder(every_update)
    taus = {r.key: r.config.target_tau for r in rungs if r.key.startswith("tau")}
    assert taus == {"tau-x0.1": pytest.approx(0.0005), "tau-x10": pytest.approx(0.05), "tau-x100": pytest.approx(0.5)}
    assert not any(r.key.startswith("sync") for r in rungs)
    assert any("averages after every update" in line for line in skipped)
    # SB3's tau < 1 on an interval of env steps: both grids, the period in its own unit.
    sb3 = AgentConfig(target_network="polyak", target_tau=0.1, target_sync_period=250, target_sync_unit="env_steps")
    by_key = {r.key: r for r in one_knob_ladder(sb3)[0]}
    assert by_key["sync-x0.1"].config.target_sync_period == 25 and by_key["sync-x0.1"].config.target_tau == 0.1
    assert by_key["sync-x0.1"].description == "Averaging the target every 25 env steps instead of 250"
    assert by_key["tau-x10"].config.target_tau == 1.0 and "full copy" in by_key["tau-x10"].description
    assert "tau-x100" not in by_key  # also 1: the same config as tau-x10, one rung
    assert "tau-x100: the same config as tau-x10" in one_knob_ladder(sb3)[1]
    # A hard target has no tau rung.
    assert not [r for r in one_knob_ladder(AgentConfig())[0] if r.key.startswith("tau")]


def test_the_bugs_a_config_switches_on_are_named():
    from ablations.diagnosis.rungs import bugs_in_config

    assert bugs_in_config(get_variant("article-naive").config) == ["unmasked-terminals"]
    assert bugs_in_config(get_variant("article-target").config) == ["time-limit-terminal"]
    assert bugs_in_config(get_variant("cell-m1-d0-r1-t1").config) == []
    assert "stale-target" in bugs_in_config(get_variant("bug-stale-target").config)


def test_bug_matches_rank_the_signature_the_base_shows():
    import pandas as pd

    from ablations.diagnosis.rungs import bug_matches

    rng = np.random.default_rng(0)
    neighbours = [
        pd.DataFrame({"late_max_abs_q": rng.normal(50, 5, 10), "late_return": rng.normal(200, 20, 10)})
        for _ in range(4)
    ]
    # Values far above and return far below the neighbours: unmasked terminals' signature.
    base = pd.DataFrame({"late_max_abs_q": [500.0] * 5, "late_return": [20.0] * 5})
    matches = bug_matches(base, neighbours)
    assert matches[0]["bug"] in ("unmasked-terminals", "terminal-shift") and matches[0]["matches"]
    ordinary = pd.DataFrame({"late_max_abs_q": [50.0] * 5, "late_return": [200.0] * 5})
    assert not any(m["matches"] for m in bug_matches(ordinary, neighbours))
    # A base that never updated has no values to compare (all NaN): that feature is skipped,
    # without a warning, and the return alone still scores.
    never_updated = pd.DataFrame({"late_max_abs_q": [np.nan] * 5, "late_return": [20.0] * 5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scored = bug_matches(never_updated, neighbours)
    assert scored and all(np.isfinite(m["score"]) for m in scored)


def test_the_learning_rate_grid_reaches_a_rate_100x_too_large():
    base = get_variant("article-target").config.replace(learning_rate=0.5)
    rates = sorted(r.config.learning_rate for r in one_knob_ladder(base)[0] if r.key.startswith("lr-"))
    assert rates[0] == pytest.approx(0.005) and rates[-1] == pytest.approx(5.0)
    assert any("0.005" in r.description for r in one_knob_ladder(base)[0] if r.key == "lr-x0.01")


def test_a_late_learning_start_gets_a_rung_and_a_sync_beyond_the_run_none():
    base = get_variant("article-target").config.replace(total_env_steps=10_000, learning_starts=20_000)
    rungs, skipped = one_knob_ladder(base)
    early = {r.key: r for r in rungs}["early-start"]
    assert early.config.learning_starts == 200 and "200 instead of 20000" in early.description
    assert any("longer than the run's 0" in line for line in skipped)


def rungs_by_key(base: AgentConfig) -> dict:
    return {r.key: r for r in one_knob_ladder(base)[0]}


def test_a_budget_below_the_envs_typical_one_gets_a_4x_rung_that_changes_the_budget_only():
    base = AgentConfig(env_id="Acrobot-v1", total_env_steps=10_000, epsilon_start=1.0, epsilon_decay_fraction=0.1)
    rung = rungs_by_key(base)["steps-x4"]
    assert rung.fields == ("total_env_steps",) and rung.config == base.replace(total_env_steps=40_000)
    assert rung.config.decay_steps == 4 * base.decay_steps  # a fraction of the run keeps its share
    assert "100,000" in rung.description
    # At or above the typical budget, or on an env without one: no rung, and the reason.
    _, skipped = one_knob_ladder(base.replace(total_env_steps=100_000))
    assert "steps x4: the budget is already at least Acrobot-v1's typical 100,000 (rl-zoo)" in skipped
    assert "steps-x4" in rungs_by_key(base.replace(total_env_steps=99_999))
    _, skipped = one_knob_ladder(AgentConfig(env_id="tests.tiny_env:TinyChain-v0", total_env_steps=400))
    assert "steps x4: no typical budget is known for tests.tiny_env:TinyChain-v0" in skipped


@pytest.mark.parametrize(
    "every,steps,expected",
    [
        # 50 updates every 200 env steps: 4x more often, or 4x the updates, each up to 1 per env step;
        # and bursts a quarter the size at the same 0.25 per env step.
        (200, 50, {"train-every-x0.25": (50, 50), "grad-steps-x4": (200, 200), "burst-x0.25": (50, 12)}),
        # CleanRL's every 10 env steps: every 2, or 4 updates each.
        (10, 1, {"train-every-x0.25": (2, 1), "grad-steps-x4": (10, 4)}),
        # SB3's every 4 env steps: every step, or 4 updates each (both 1 per env step).
        (4, 1, {"train-every-x0.25": (1, 1), "grad-steps-x4": (4, 4)}),
        # 8 updates every env step: a quarter of the updates, or training every 4 env steps.
        (1, 8, {"grad-steps-x0.25": (1, 2), "train-every-x4": (4, 8)}),
        # Already 1 per env step: only the smaller bursts.
        (4, 4, {"burst-x0.25": (1, 1)}),
        (1, 1, {}),
    ],
)
def test_update_schedule_rungs_move_toward_one_update_per_env_step(every, steps, expected):
    base = AgentConfig(env_steps_per_update=every, gradient_steps=steps)
    got = {
        key: (r.config.env_steps_per_update, r.config.gradient_steps)
        for key, r in rungs_by_key(base).items()
        if key.startswith(("train-every", "grad-steps", "burst"))
    }
    assert got == expected


def test_batch_rungs_double_and_quadruple_up_to_256_where_replay_holds_them():
    assert {k: r.config.batch_size for k, r in rungs_by_key(AgentConfig(batch_size=32)).items() if "batch" in k} == {
        "batch-x2": 64,
        "batch-x4": 128,
    }
    rungs, skipped = one_knob_ladder(AgentConfig(batch_size=128))
    assert [r.config.batch_size for r in rungs if r.key.startswith("batch")] == [256]
    assert "batch-x4: the same config as batch-x2" in skipped
    assert "batch size: the base's 256 is already at least 256" in one_knob_ladder(AgentConfig(batch_size=256))[1]
    small_buffer = AgentConfig(batch_size=64, replay_capacity=100, learning_starts=50)
    assert any(line.startswith("batch-x2: replay_capacity=100 is invalid") for line in one_knob_ladder(small_buffer)[1])
    no_replay = AgentConfig(replay_capacity=None, batch_size=1, learning_starts=1)
    assert "batch size: the base has no replay (a batch of its latest transition)" in one_knob_ladder(no_replay)[1]


@pytest.mark.parametrize(
    "hidden,wide",
    [((24, 24), (256, 256)), ((64,), (256, 256)), ((512, 128), (512, 256)), ((64, 64, 64), (256, 256, 256))],
)
def test_the_width_rung_widens_every_layer_to_256_and_a_single_layer_to_two(hidden, wide):
    rung = rungs_by_key(AgentConfig(hidden_sizes=hidden))["width-256"]
    assert rung.config.hidden_sizes == wide and rung.fields == ("hidden_sizes",)


def test_a_wide_network_gets_no_width_rung():
    _, skipped = one_knob_ladder(AgentConfig(hidden_sizes=(256, 256)))
    assert "network: every one of the base's 2 hidden layers already has >= 256 units" in skipped


def test_replay_without_a_target_gets_the_target_rung():
    rung = rungs_by_key(AgentConfig(target_network="none"))["target"]
    assert rung.config.target_network == "hard" and "target_network" in rung.fields


def test_a_decay_that_ends_at_random_gets_cleanrls_schedule():
    rung = rungs_by_key(AgentConfig(epsilon_start=1.0, epsilon_end=0.6, epsilon_decay_steps=1_000))["eps-decay"]
    assert (rung.config.epsilon_end, rung.config.epsilon_decay_steps) == (0.05, 25_000)
    assert "instead of ending at 0.6" in rung.description
