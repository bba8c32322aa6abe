import numpy as np
import pandas as pd
import pytest
import torch

from agents.catalogue.presets import get_variant
from agents.config import AgentConfig, ConfigError
from agents.engine.bellman import td_targets
from agents.engine.family import SeedKnobs
from agents.engine.loop import train, train_family
from agents.engine.measurements import lag1_autocorrelation
from agents.engine.networks import MLPParams
from tests.conftest import NEEDS_BOX2D

SHORT = dict(total_env_steps=1_500, eval_period=500, eval_episodes=2)


def run(variant_or_config, seeds, **changes):
    config = variant_or_config if isinstance(variant_or_config, AgentConfig) else get_variant(variant_or_config).config
    return train(config.replace(**{**SHORT, **changes}), seeds, trace=True)


def per_seed(record, index):
    frame = pd.DataFrame(record.checkpoints)
    return frame[frame["seed"] == record.seeds[index]].drop(columns="seed").reset_index(drop=True)


# --- seed isolation and determinism -----------------------------------------------------------


@pytest.mark.parametrize("variant", ["article-naive", "article-target", "replay-target-huber-clip"])
def test_seed_alone_and_in_a_batch_of_16_are_bit_identical(variant):
    batch = run(variant, list(range(100, 116)))
    alone = run(variant, [107])
    i = batch.seeds.index(107)
    np.testing.assert_array_equal(batch.trace_actions[:, i], alone.trace_actions[:, 0])
    np.testing.assert_array_equal(batch.trace_losses[:, i], alone.trace_losses[:, 0])
    pd.testing.assert_frame_equal(per_seed(batch, i), per_seed(alone, 0))


def test_odd_network_shapes_keep_seeds_isolated():
    """Hidden widths that misalign the stacked slices still give each seed its solo result."""
    config = get_variant("article-target").config.replace(hidden_sizes=(37, 19), batch_size=50, learning_starts=50)
    batch, alone = run(config, [1, 2, 3]), run(config, [2])
    np.testing.assert_array_equal(batch.trace_losses[:, 1], alone.trace_losses[:, 0])


def test_same_seed_twice_is_identical_and_different_seeds_differ():
    first, second = run("article-target", [5, 6]), run("article-target", [5, 6])
    np.testing.assert_array_equal(first.trace_actions, second.trace_actions)
    np.testing.assert_array_equal(first.trace_losses, second.trace_losses)
    pd.testing.assert_frame_equal(pd.DataFrame(first.checkpoints), pd.DataFrame(second.checkpoints))
    assert not np.array_equal(first.trace_losses[:, 0], first.trace_losses[:, 1])
    assert not np.array_equal(first.trace_actions[:, 0], first.trace_actions[:, 1])


def test_seeds_are_validated():
    with pytest.raises(ValueError, match="seeds=\\[\\] is invalid"):
        train(AgentConfig(total_env_steps=10), [])
    with pytest.raises(ValueError, match="must be distinct"):
        train(AgentConfig(total_env_steps=10), [1, 1])
    with pytest.raises(ValueError, match="seed=-1 is invalid"):
        train(AgentConfig(total_env_steps=10), [-1])


# --- TD targets on hand-built transitions -----------------------------------------------------


def constant_q_params(values, k=1):
    """A 1-hidden-layer net whose Q(s, .) equals `values` for every state (zero weights)."""
    hidden, actions = 3, len(values)
    return MLPParams(
        [torch.zeros(k, hidden, 2), torch.zeros(k, actions, hidden)],
        [torch.zeros(k, hidden), torch.tensor(values, dtype=torch.float32).repeat(k, 1)],
    )


# Transitions: (terminated, truncated) = (F, F), (T, F), (F, T), (T, T); reward 1.
TERM = torch.tensor([[False, True, False, True]])
TRUNC = torch.tensor([[False, False, True, True]])


@pytest.mark.parametrize(
    "masking,bootstrap_truncation,expected_bootstrapped",
    [
        (True, True, [1, 0, 1, 0]),  # correct gymnasium semantics: only real ends stop the bootstrap
        (True, False, [1, 0, 0, 0]),  # old-gym done: the time limit is treated as terminal too
        (False, True, [1, 1, 1, 1]),  # article example 1: done is ignored entirely
        (False, False, [1, 1, 0, 0]),  # truncation masked, termination not
    ],
)
def test_td_target_masking_and_truncation_switches(masking, bootstrap_truncation, expected_bootstrapped):
    config = AgentConfig(gamma=0.5, terminal_masking=masking, bootstrap_on_truncation=bootstrap_truncation)
    online = constant_q_params([2.0, 6.0])
    y = td_targets(SeedKnobs.of([config], "cpu"), online, online, torch.ones(1, 4), torch.zeros(1, 4, 2), TERM, TRUNC)
    assert y[0].tolist() == [1.0 + 0.5 * 6.0 * b for b in expected_bootstrapped]


def test_td_target_uses_the_target_network_and_double_q_selection():
    online = constant_q_params([5.0, 1.0])  # online prefers action 0
    target = constant_q_params([2.0, 8.0])  # target's max is at action 1
    reward, nxt = torch.zeros(1, 4), torch.zeros(1, 4, 2)
    plain = AgentConfig(gamma=1.0)
    assert (
        td_targets(SeedKnobs.of([plain], "cpu"), online, target, reward, nxt, TERM & False, TRUNC & False)[0].tolist()
        == [8.0] * 4
    )
    double = plain.replace(double_q=True)
    # Double Q: the online net picks action 0, the target net values it at 2.
    assert (
        td_targets(SeedKnobs.of([double], "cpu"), online, target, reward, nxt, TERM & False, TRUNC & False)[0].tolist()
        == [2.0] * 4
    )
    no_target = plain.replace(target_network="none", target_sync_period=None)
    assert (
        td_targets(SeedKnobs.of([no_target], "cpu"), online, None, reward, nxt, TERM & False, TRUNC & False)[0].tolist()
        == [5.0] * 4
    )


# --- divergence handling -----------------------------------------------------------------------


def test_a_non_finite_seed_stops_cleanly_without_touching_its_neighbours():
    config = get_variant("article-target").config

    def poison(step, updates, online, target):
        if updates == 300:
            online.weights[0][1, 0, 0] = float("nan")

    poisoned = train(config.replace(**SHORT), [0, 1, 2], trace=True, on_update=poison)
    clean = run("article-target", [0, 1, 2])
    frame = pd.DataFrame(poisoned.checkpoints)
    seed1 = frame[frame["seed"] == 1]
    first_bad_step = 64 + 300  # update u happens at env step learning_starts + u - 1; NaN seen next update
    assert seed1["diverged"].iloc[-1] and seed1["diverged_step"].iloc[-1] == first_bad_step
    assert seed1[seed1["env_step"] > first_bad_step][["eval_return", "max_abs_q", "loss"]].isna().all().all()
    for index in (0, 2):
        np.testing.assert_array_equal(poisoned.trace_losses[:, index], clean.trace_losses[:, index])
        pd.testing.assert_frame_equal(per_seed(poisoned, index), per_seed(clean, index))


def test_a_run_whose_every_seed_diverges_ends_early_and_records_it():
    config = get_variant("article-naive").config.replace(learning_rate=1e4)
    record = train(config.replace(total_env_steps=20_000, eval_period=1_000, eval_episodes=1), [0, 1])
    frame = pd.DataFrame(record.checkpoints)
    assert frame.groupby("seed")["diverged"].last().all()
    assert (frame.groupby("seed")["diverged_step"].last() > 0).all()
    assert frame["env_step"].max() < 20_000


# --- diagnostics ----------------------------------------------------------------------------


def test_diagnostics_tell_replay_from_no_replay():
    naive = pd.DataFrame(run("article-naive", [0, 1]).checkpoints)
    replay = pd.DataFrame(run("article-target", [0, 1], replay_capacity=1_000).checkpoints)
    last = lambda f: f[f["env_step"] == f["env_step"].max()]  # noqa: E731
    # Consecutive env states are correlated, but the naive agent's ~10-step episodes cut the
    # chains often; uniform replay from a full buffer leaves no correlation.
    assert (last(naive)["state_autocorrelation"] > 0.4).all()
    assert (last(replay)["state_autocorrelation"].abs() < 0.1).all()
    assert (last(naive)["mean_sample_age"] == 0).all()
    assert (last(replay)["mean_sample_age"] > 200).all()
    assert (last(replay)["replay_fill"] == 1.0).all() and last(naive)["replay_fill"].isna().all()
    # Hard sync every 100 updates: the lag is updates since the last multiple of 100.
    updates = last(replay)["gradient_updates"].iloc[0]
    assert (last(replay)["target_lag_updates"] == updates % 100).all()
    assert last(naive)["target_lag_updates"].isna().all()


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, -0.6])
def test_lag1_autocorrelation_recovers_an_ar1_coefficient(phi):
    rng = np.random.default_rng(0)
    n = 20_000
    x = np.zeros((2, n, 3))
    noise = rng.standard_normal((2, n, 3))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    estimate = lag1_autocorrelation(torch.from_numpy(x)).numpy()
    # Standard error of the estimate is about sqrt((1 - phi^2) / n) per dimension: < 0.01 here.
    np.testing.assert_allclose(estimate, phi, atol=0.03)


def test_lag1_autocorrelation_of_a_constant_sequence_is_nan():
    assert torch.isnan(lag1_autocorrelation(torch.ones(1, 50, 2))).all()


def test_episode_log_has_real_episode_ends():
    record = run("article-target", [0])
    episodes = pd.DataFrame(record.episodes)
    assert len(episodes) > 10
    assert (episodes["terminated"] | episodes["truncated"]).all()
    assert (episodes["episode_return"] == episodes["episode_length"]).all()  # CartPole pays 1 per step
    assert episodes["env_step"].is_monotonic_increasing


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0", pytest.param("LunarLander-v3", marks=NEEDS_BOX2D)])
def test_other_discrete_envs_train(env_id):
    record = run("article-target", [0, 1], env_id=env_id, total_env_steps=400, eval_period=200, eval_episodes=1)
    frame = pd.DataFrame(record.checkpoints)
    assert len(frame) == 4 and np.isfinite(frame["max_abs_q"]).all()


@pytest.mark.parametrize(
    "env_id,match", [("NoSuchEnv-v0", "env_id='NoSuchEnv-v0'"), ("Pendulum-v1", "env_id='Pendulum-v1'")]
)
def test_train_rejects_unusable_envs_by_name(env_id, match):
    with pytest.raises(ConfigError, match=match):
        train(AgentConfig(env_id=env_id, total_env_steps=10), [0])


# --- variant families: every knob that may differ, each seed as it would be alone -----------------

REPLAY_FAMILY = {
    "article-replay": get_variant("article-replay").config,  # no target network
    "article-target": get_variant("article-target").config,  # hard, C = 100
    "sync-period-10": get_variant("sync-period-10").config,  # hard, C = 10
    "replay-polyak": get_variant("replay-polyak").config,  # polyak
    "replay-target-double": get_variant("replay-target-double").config,  # double Q
    "huber-clip": get_variant("replay-target-huber-clip").config,  # Huber loss, clipping
    "capacity-1000": get_variant("capacity-1000").config,  # another replay capacity
    "clip-always-active": get_variant("article-target").config.replace(max_grad_norm=0.1),
    "unmasked-old-gym": get_variant("article-target").config.replace(terminal_masking=False),
    "gamma-lr-epsilon": get_variant("article-target").config.replace(
        gamma=0.95, learning_rate=3e-4, epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=800
    ),
    # Multi-step returns beside one-step members (and another n on a small, wrapping buffer).
    "n-step-3": get_variant("article-target").config.replace(n_step=3),
    "n-step-5-capacity-100": get_variant("article-replay").config.replace(n_step=5, replay_capacity=100),
    # Injected bugs as per-seed switches beside bug-free members.
    "bug-target-gradient": get_variant("article-replay").config.replace(bug_target_gradient=True),
    "bug-greedy-gather": get_variant("article-target").config.replace(bug_greedy_gather=True),
    "bug-no-zero-grad": get_variant("article-target").config.replace(bug_no_zero_grad=True, max_grad_norm=1.0),
    "bug-stale-target": get_variant("article-target").config.replace(bug_stale_target=True),
    "bug-terminal-shift": get_variant("article-target").config.replace(bug_terminal_shift=True),
    # Target syncs counted in env steps (before or after the step's update) beside syncs counted
    # in updates; exploration as a fraction of the run with a random warm-up.
    "sync-env-steps": get_variant("article-target").config.replace(target_sync_unit="env_steps", target_sync_period=70),
    "sync-env-steps-after": get_variant("article-target").config.replace(
        target_sync_unit="env_steps_after_updates", target_sync_period=70
    ),
    "fraction-warm-up": get_variant("article-target").config.replace(
        epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_fraction=0.3, random_warmup=True
    ),
    # Every seed hard-diverges within 100 steps: its rows stop there, as alone.
    "diverges": get_variant("article-replay").config.replace(
        learning_rate=50.0, gamma=1.0, terminal_masking=False, bootstrap_on_truncation=True
    ),
}
NO_REPLAY_FAMILY = {
    "article-naive": get_variant("article-naive").config,
    "naive-masked": get_variant("naive-masked").config,
    # Another learning rate between members that share one: Adam's per-seed rates in three runs.
    "naive-lr-x3": get_variant("article-naive").config.replace(learning_rate=3e-3),
    "target-only": get_variant("target-only").config,
    "capacity-none": get_variant("capacity-none").config,
}


# Bursts of updates on CleanRL's clock (the family shares the schedule), every target rule.
_BURSTS = get_variant("article-target").config.replace(
    env_steps_per_update=8, gradient_steps=-1, step_clock="step_index", learning_starts=100
)
BURST_FAMILY = {
    "hard-updates": _BURSTS,
    "hard-env-steps": _BURSTS.replace(target_sync_unit="env_steps", target_sync_period=40),
    "hard-env-steps-after": _BURSTS.replace(target_sync_unit="env_steps_after_updates", target_sync_period=40),
    "polyak": _BURSTS.replace(target_network="polyak"),
    "polyak-tau-0.1-every-2-updates": _BURSTS.replace(target_network="polyak", target_tau=0.1, target_sync_period=2),
    "polyak-env-steps": _BURSTS.replace(target_network="polyak", target_sync_unit="env_steps", target_sync_period=16),
    "polyak-env-steps-after": _BURSTS.replace(
        target_network="polyak", target_sync_unit="env_steps_after_updates", target_sync_period=24
    ),
    "no-target": _BURSTS.replace(target_network="none"),
}


@pytest.mark.parametrize(
    "family", [REPLAY_FAMILY, NO_REPLAY_FAMILY, BURST_FAMILY], ids=["replay", "no-replay", "bursts"]
)
def test_each_member_of_a_mixed_family_is_bit_identical_to_its_solo_run(family):
    seeds = [5, 6]
    configs = {name: config.replace(**SHORT) for name, config in family.items()}
    records = train_family([(config, seeds) for config in configs.values()], trace=True)
    for (name, config), together in zip(configs.items(), records):
        alone = train(config, seeds, trace=True)
        np.testing.assert_array_equal(together.trace_actions, alone.trace_actions, err_msg=name)
        np.testing.assert_array_equal(together.trace_losses, alone.trace_losses, err_msg=name)
        pd.testing.assert_frame_equal(pd.DataFrame(together.checkpoints), pd.DataFrame(alone.checkpoints), obj=name)
        pd.testing.assert_frame_equal(pd.DataFrame(together.episodes), pd.DataFrame(alone.episodes), obj=name)
    diverged = pd.DataFrame(records[list(configs).index("diverges")].checkpoints) if "diverges" in configs else None
    if diverged is not None:
        assert diverged["diverged"].all() and diverged["env_step"].max() < 200


def test_a_seed_of_one_variant_is_the_same_alone_and_beside_two_others():
    """Seed 107 of article-target alone, and in a family with article-replay and replay-polyak
    that also use seed 107 (the same seed in different variants is a different agent)."""
    a, b, c = (get_variant(n).config.replace(**SHORT) for n in ("article-target", "article-replay", "replay-polyak"))
    together = train_family([(b, [107, 3]), (a, [107]), (c, [107, 9])], trace=True)[1]
    alone = train(a, [107], trace=True)
    np.testing.assert_array_equal(together.trace_losses, alone.trace_losses)
    pd.testing.assert_frame_equal(pd.DataFrame(together.checkpoints), pd.DataFrame(alone.checkpoints))


def test_configs_that_cannot_share_a_seed_axis_are_refused_by_name():
    a = get_variant("article-target").config
    with pytest.raises(ConfigError, match="batch_size=32 is invalid in this family"):
        train_family([(a, [0]), (a.replace(batch_size=32, learning_starts=64), [0])])
    with pytest.raises(ConfigError, match="replay_capacity=10000 is invalid in this family"):
        SeedKnobs.of([get_variant("article-naive").config, a.replace(batch_size=1, learning_starts=1)], "cpu")


def test_n_step_windows_stop_at_episode_ends_and_at_the_newest_transition():
    """A hand-filled buffer of capacity 6 after 8 inserts (slots hold inserts 6, 7, 2, 3, 4, 5):
    insert 3 is truncated, insert 5 terminated; gamma 0.5, n = 3."""
    from agents.engine.replay import ReplayBuffer, n_step_batch

    config = get_variant("article-target").config.replace(gamma=0.5, n_step=3, replay_capacity=6, batch_size=6)
    knobs = SeedKnobs.of([config], "cpu")
    buffer = ReplayBuffer(1, 6, 1, torch.device("cpu"))
    for t in range(8):
        reward, obs = torch.tensor([float(t + 1)]), torch.tensor([[float(t)]])
        buffer.add(obs, torch.tensor([0]), reward, obs + 100, torch.tensor([t == 5]), torch.tensor([t == 3]), t)
    indices = torch.tensor([[2, 3, 4, 5, 0, 1]])  # inserts 2, 3, 4, 5, 6, 7
    window = n_step_batch(buffer, indices, buffer.gather(indices), knobs)
    # insert 2: r 3 + 0.5 * 4, stops at the truncation of insert 3 (its s' is 103), discount 0.25
    # insert 3: truncated itself, one step; insert 4: 5 + 0.5 * 6, ends at the termination of 5
    # insert 5: terminated, one step; insert 6: 7 + 0.5 * 8, insert 7 is the newest; insert 7: one step.
    assert window["reward"].tolist() == [[5.0, 4.0, 8.0, 6.0, 11.0, 8.0]]
    assert window["discount"].tolist() == [[0.25, 0.5, 0.25, 0.5, 0.25, 0.5]]
    assert window["next_obs"].squeeze(2).tolist() == [[103.0, 103.0, 105.0, 105.0, 107.0, 107.0]]
    assert window["terminated"].tolist() == [[False, False, True, True, False, False]]
    assert window["truncated"].tolist() == [[True, True, False, False, False, False]]


def test_the_diagnostic_window_measures_about_window_updates_before_each_checkpoint():
    from agents.engine.recorder import in_diagnostic_window

    def measured_updates(config: AgentConfig) -> int:
        """Updates that fall in the window before the checkpoint at 2 * eval_period."""
        period = config.eval_period
        return sum(
            config.gradient_steps
            for step in range(period + 1, 2 * period + 1)
            if config.trains_at(config.clock(step - 1)) and in_diagnostic_window(config, step)
        )

    one_per_step = AgentConfig(eval_period=1_000, diagnostic_window=100, learning_starts=1)
    assert measured_updates(one_per_step) == 100
    # SB3's zoo CartPole: a burst of 128 every 256 env steps; one burst, not all of them.
    bursts = one_per_step.replace(env_steps_per_update=256, gradient_steps=128)
    assert measured_updates(bursts) == 128
    # Four updates every four steps (the zoo's Acrobot): 25 bursts, 100 updates.
    assert measured_updates(one_per_step.replace(env_steps_per_update=4, gradient_steps=4)) == 100
