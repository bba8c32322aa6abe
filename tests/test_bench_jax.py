"""The JAX peer of the bench (agents/bench_jax.py): skipped without the `bench` extra."""

import pytest

from agents.catalogue.presets import get_variant

jax = pytest.importorskip("jax")

from agents.textbook import bench_jax  # noqa: E402


def test_the_peer_runs_the_bench_schedule_one_update_per_step_from_learning_starts():
    config = bench_jax.peer_config(get_variant("article-target").config)
    result = bench_jax.measure(2, 200, config)
    assert result["updates"] == 200 - config.learning_starts + 1
    assert result["compile_s"] > 0 and result["agent_steps_per_s"] > 0


def test_the_cartpole_physics_match_gymnasium_on_one_step():
    import gymnasium as gym
    import jax.numpy as jnp
    import numpy as np

    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    for action in (1, 0, 1, 1):
        expected, *_ = env.step(action)
        state, *_ = bench_jax.cartpole_step(jax.random.key(0), jnp.asarray(obs), jnp.int32(0), jnp.int32(action))
        np.testing.assert_allclose(np.asarray(state), expected, rtol=1e-5, atol=1e-6)
        obs = expected


def test_a_config_the_peer_does_not_implement_is_named():
    with pytest.raises(ValueError, match="double_q=True is invalid for the JAX peer"):
        bench_jax.peer_config(get_variant("article-target").config.replace(double_q=True))
