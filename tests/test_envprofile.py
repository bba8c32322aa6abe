"""Env profiles: one place for what success, divergence and collapse mean on an env."""

import pytest

from agents.config import AgentConfig, ConfigError
from agents.engine.envs import env_spec
from agents.engine.loop import train
from agents.envprofile import env_profile, require_success_threshold
from agents.results import RunResult
from reports.analysis.metrics import per_seed, soft_divergence_bound
from tests.conftest import NEEDS_BOX2D

TINY = "tests.tiny_env:TinyChain-v0"


def test_profiles_come_from_the_env_and_the_suites_cartpole_definition():
    cartpole = env_profile("CartPole-v1")
    assert (cartpole.success_threshold, cartpole.max_abs_reward, cartpole.max_episode_steps) == (250.0, 1.0, 500)
    assert cartpole.collapse_peak == 400.0 and "suite" in cartpole.success_source
    acrobot = env_profile("Acrobot-v1")
    assert acrobot.success_threshold == -100.0 and "registered" in acrobot.success_source
    assert acrobot.collapse_peak is None
    given = env_profile("Acrobot-v1", success_threshold=-150.0, max_abs_reward=2.0)
    assert (given.success_threshold, given.max_abs_reward) == (-150.0, 2.0)


@NEEDS_BOX2D
def test_lunar_lander_takes_gymnasiums_threshold_and_bounds_reward_by_what_training_sees():
    lander = env_profile("LunarLander-v3")
    assert lander.success_threshold == 200.0 and "registered" in lander.success_source
    assert lander.max_episode_steps == 1000 and lander.max_abs_reward is None and lander.collapse_peak is None


def test_a_user_registered_env_trains_and_its_reward_bound_is_the_largest_seen():
    spec = env_spec(TINY)
    assert (spec.obs_dim, spec.num_actions, spec.max_episode_steps) == (2, 2, 20)
    profile = env_profile(TINY)
    assert profile.success_threshold is None and profile.max_abs_reward is None
    with pytest.raises(ConfigError, match="has no success threshold.*success_threshold = "):
        require_success_threshold(profile)
    config = AgentConfig(env_id=TINY, total_env_steps=400, eval_period=200, eval_episodes=2, learning_starts=64)
    run = RunResult.from_record("tiny", train(config, [0, 1]))
    assert run.meta["env_profile"]["env_id"] == TINY
    assert run.checkpoints["max_abs_reward_seen"].max() == 2.0
    assert soft_divergence_bound(run.env_profile, 0.99, 0.0, run.checkpoints) == pytest.approx(200.0)
    summary = per_seed(run.checkpoints, run.env_profile, 0.99)
    assert "soft_diverged" in summary and "success" not in summary


@pytest.mark.parametrize(
    "env_id,match",
    [("no_such_module:Env-v0", "its module cannot be imported"), ("NoSuchEnv-v0", "not a registered gymnasium")],
)
def test_unknown_envs_and_modules_are_one_line_errors(env_id, match):
    for check in (env_spec, env_profile):
        with pytest.raises(ConfigError, match=match) as caught:
            check(env_id)
        assert "\n" not in str(caught.value)


def test_each_seed_gets_the_first_outcome_whose_rule_it_meets():
    import pandas as pd

    from reports.analysis.metrics import SEED_OUTCOMES, seed_outcomes

    summary = pd.DataFrame(
        {
            # hard-diverged, converged, collapsed (reached 100, ended at 20), soft-diverged, never learned,
            # and a converged seed that also overflowed later: hard divergence comes first.
            "late_return": [5.0, 150.0, 20.0, 30.0, 10.0, 120.0],
            "best_return": [50.0, 160.0, 100.0, 40.0, 60.0, 200.0],
            "hard_diverged": [True, False, False, False, False, True],
            "soft_diverged": [True, True, False, True, False, True],
        }
    )
    outcomes = seed_outcomes(summary, success_threshold=100.0).tolist()
    assert outcomes == [
        "hard-diverged",
        "converged",
        "learned then collapsed",
        "soft-diverged",
        "never learned",
        "hard-diverged",
    ]
    assert set(outcomes) == set(SEED_OUTCOMES)


def test_overestimation_is_q_minus_the_discounted_return_on_states_whose_return_is_whole():
    import numpy as np

    from agents.engine.measurements import _overestimation

    # Seed 0: one episode terminated after 3 steps (every state counts). Seed 1: cut by the time
    # limit after 10 steps; with gamma 0.5 a state needs ln(0.05) / ln(0.5) = 4.3 steps left.
    steps = 10
    rewards = np.zeros((steps, 2))
    live = np.zeros((steps, 2), dtype=bool)
    rewards[:3, 0], live[:3, 0] = 1.0, True
    rewards[:, 1], live[:, 1] = 1.0, True
    q = np.full((steps, 2), 2.0)
    q[:3, 0] = [3.0, 2.0, 1.0]
    result = _overestimation(q, rewards, live, np.array([True, False]), np.array([0.5, 0.5]), episodes=1)
    # Seed 0: G = 1.75, 1.5, 1 -> Q - G = 1.25, 0.5, 0.
    assert result[0] == pytest.approx((1.25 + 0.5 + 0.0) / 3)
    # Seed 1: states t = 0..5 have 10 - t >= 5 rewards left; G_t = sum_k<10-t 0.5^k = 2 - 0.5^(9 - t).
    expected = np.mean([2.0 - (2.0 - 0.5 ** (9 - t)) for t in range(6)])
    assert result[1] == pytest.approx(expected)


def test_a_seeds_overestimation_is_bit_identical_alone_and_beside_others():
    """A seed's sum over its visited states must not depend on the seed count, nor on how long
    its neighbours' evaluations ran (its rows past its own end are zeros): a multi-axis sum and
    numpy's pairwise sum of a longer row both regroup its terms and changed its last bits."""
    import numpy as np

    from agents.engine.measurements import _overestimation

    rng = np.random.default_rng(3)
    width, episodes = 5, 4
    lengths = rng.integers(40, 200, size=(width, episodes))  # past 128 entries: pairwise regroups
    steps = int(lengths.max())
    live = np.arange(steps)[:, None] < lengths.reshape(-1)[None, :]
    q = rng.normal(size=live.shape)
    rewards = np.where(live, rng.random(live.shape), 0.0)  # nothing is earned after an episode ends
    terminated, gamma = np.ones(width * episodes, dtype=bool), np.full(width, 0.9)
    together = _overestimation(q, rewards, live, terminated, gamma, episodes)
    for seed in range(width):
        own, mine = slice(seed * episodes, (seed + 1) * episodes), int(lengths[seed].max())
        alone = _overestimation(
            q[:mine, own], rewards[:mine, own], live[:mine, own], terminated[own], gamma[:1], episodes
        )
        assert alone[0] == together[seed]


def test_profiles_stamp_a_typical_budget_the_goal_and_sparsity_with_their_sources():
    budgets = {env: env_profile(env).typical_budget for env in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")}
    assert budgets == {"CartPole-v1": 50_000, "Acrobot-v1": 100_000, "MountainCar-v0": 120_000}
    assert env_profile("LunarLander-v3").typical_budget == 100_000  # the registration needs no Box2D
    acrobot, car, cartpole = (env_profile(env) for env in ("Acrobot-v1", "MountainCar-v0", "CartPole-v1"))
    assert "rl-baselines3-zoo" in acrobot.typical_budget_source and "CleanRL" in acrobot.typical_budget_source
    assert (acrobot.goal_steps, car.goal_steps, cartpole.goal_steps) == (100, 110, None)
    assert (acrobot.sparse_reward, car.sparse_reward, cartpole.sparse_reward) == (False, True, False)
    assert "registered reward_threshold" in car.goal_steps_source and "rarely" in car.sparse_reward_source
    tiny = env_profile(TINY)
    assert (tiny.typical_budget, tiny.goal_steps, tiny.sparse_reward) == (None, None, False)
    assert "unknown" in tiny.typical_budget_source


def test_a_profile_recorded_before_the_budget_fields_still_loads():
    from agents.envprofile import EnvProfile

    new = ("typical", "goal", "sparse")
    old = {k: v for k, v in env_profile("Acrobot-v1").to_dict().items() if not k.startswith(new)}
    loaded = EnvProfile.from_dict(old)
    assert loaded.typical_budget is None and loaded.sparse_reward is False and loaded.max_episode_steps == 500


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0"])
def test_sparse_means_random_actions_are_not_expected_to_reach_the_goal_once_in_the_typical_budget(env_id):
    # The definition on the env itself: uniformly random episodes (seeded), the share ending at the
    # goal (terminated, not truncated), times the typical budget's number of full-length episodes.
    import gymnasium as gym
    import numpy as np

    profile = env_profile(env_id)
    env, rng = gym.make(env_id), np.random.default_rng(0)
    episodes, goals = 60, 0
    for episode in range(episodes):
        env.reset(seed=episode)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        goals += terminated
    expected = goals / episodes * profile.typical_budget / profile.max_episode_steps
    assert profile.sparse_reward == (expected < 1)
