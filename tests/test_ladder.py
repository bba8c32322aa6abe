"""The one-knob ladder: every rung is a valid config that changes one knob of the base."""

import dataclasses

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
    ]
    assert skipped == ["learning start: 64 is within the first 10% of the run"]
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
)
def test_any_valid_base_gets_valid_one_knob_rungs(replay, target, period, double, lr, clip, decay):
    fields = {"learning_rate": lr, "max_grad_norm": clip, "epsilon_start": 1.0, "epsilon_decay_steps": decay}
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
