"""The torch envs on the seed axis (agents/engine/torch_envs.py) step exactly as gymnasium's envs."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.engine.envs import CartPoleBatch, EnvSpec, GymnasiumBatch, env_spec
from agents.engine.torch_envs import TorchAcrobot, TorchCartPole, TorchMountainCar, make_torch_env_batch
from tests.test_envs import controller_actions, pump_actions


class ShortCartPoles(GymnasiumBatch):
    """gymnasium's CartPole-v1 with another time limit, stepped one by one."""

    def __init__(self, spec: EnvSpec, num_envs: int):
        super().__init__(spec, num_envs)
        self._envs = [gym.make(spec.env_id, max_episode_steps=spec.max_episode_steps) for _ in range(num_envs)]


def assert_same_states(ours, theirs):
    """The envs' full float64 states, not only the float32 observations: a last-bit difference
    (a trig function that rounds otherwise) shows here at once."""
    states = np.stack([np.asarray(env.unwrapped.state, dtype=np.float64) for env in theirs._envs])
    np.testing.assert_array_equal(ours._state.numpy(), states)


@pytest.mark.parametrize(("noise", "limit"), [(1.0, 500), (0.0, 500), (0.3, 37)])
def test_torch_cartpole_is_identical_to_gymnasium(noise, limit, monkeypatch):
    """Random and controlled actions across terminations and the time limit (the default 500 and a
    short one), with blocks of 4 reset draws so every env refills its draws."""
    monkeypatch.setattr("agents.engine.torch_envs.RESET_BLOCK", 4)
    spec = EnvSpec("CartPole-v1", 4, 2, limit)
    n = 7
    ours, theirs = TorchCartPole(spec, n), ShortCartPoles(spec, n)
    seeds = [0, 1, 2, 12345, 2**31 - 1, 99, 5]
    obs = ours.reset(seeds)
    np.testing.assert_array_equal(obs, theirs.reset(seeds))
    rng = np.random.default_rng(5)
    ends = np.zeros(n, dtype=np.int64)
    truncations = 0
    for _ in range(2_500):
        actions = controller_actions(obs, rng, noise)
        a, b = ours.step(actions), theirs.step(actions)
        for name in ("next_obs", "reward", "terminated", "truncated", "obs"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert_same_states(ours, theirs)
        ends += a.terminated | a.truncated
        truncations += int(a.truncated.sum())
        obs = a.obs
    assert ends.min() >= 4, "an env never refilled its reset draws"
    if noise < 1:
        assert truncations > 0, "the time limit was never reached"


@pytest.mark.parametrize(
    ("batch", "velocity_column", "steps"), [(TorchMountainCar, 1, 2_500), (TorchAcrobot, 5, 1_500)]
)
def test_torch_mountain_car_and_acrobot_are_identical_to_gymnasium(batch, velocity_column, steps, monkeypatch):
    """Pumping with random actions mixed in: goals (swing-ups), MountainCar's left wall, the time
    limit, and refills of the reset draws."""
    monkeypatch.setattr("agents.engine.torch_envs.RESET_BLOCK", 4)
    spec = env_spec(batch.env_id)
    n = 5
    ours, theirs = batch(spec, n), GymnasiumBatch(spec, n)
    seeds = [0, 1, 7, 2**31 - 1, 424242]
    obs = ours.reset(seeds)
    np.testing.assert_array_equal(obs, theirs.reset(seeds))
    rng = np.random.default_rng(11)
    ends = np.zeros(n, dtype=np.int64)
    terminations = truncations = 0
    for _ in range(steps):
        actions = pump_actions(obs[:, velocity_column], rng, 0.3)
        a, b = ours.step(actions), theirs.step(actions)
        for name in ("next_obs", "reward", "terminated", "truncated", "obs"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert_same_states(ours, theirs)
        ends += a.terminated | a.truncated
        terminations += int(a.terminated.sum())
        truncations += int(a.truncated.sum())
        obs = a.obs
    assert ends.min() >= 4 and terminations > 0
    if batch is TorchMountainCar:
        assert truncations > 0


def test_an_env_steps_alike_whatever_its_neighbours():
    spec = env_spec("CartPole-v1")
    rng = np.random.default_rng(0)
    alone, wide = TorchCartPole(spec, 1), TorchCartPole(spec, 33)
    np.testing.assert_array_equal(alone.reset([9])[0], wide.reset(list(range(33)))[9])
    for _ in range(600):
        actions = rng.integers(0, 2, 33)
        a, b = alone.step(actions[9:10]), wide.step(actions)
        for name in ("next_obs", "terminated", "truncated", "obs"):
            np.testing.assert_array_equal(getattr(a, name)[0], getattr(b, name)[9], err_msg=name)


def test_the_torch_batches_exist_for_the_three_classic_control_envs():
    assert isinstance(make_torch_env_batch(env_spec("CartPole-v1"), 2, "cpu"), TorchCartPole)
    assert isinstance(make_torch_env_batch(env_spec("MountainCar-v0"), 2, "cpu"), TorchMountainCar)
    assert isinstance(make_torch_env_batch(env_spec("Acrobot-v1"), 2, "cpu"), TorchAcrobot)
    assert make_torch_env_batch(EnvSpec("Taxi-v3", 1, 6, 200), 2, "cpu") is None
    with pytest.raises(ValueError, match="env_id='Acrobot-v1' is invalid for TorchCartPole"):
        TorchCartPole(env_spec("Acrobot-v1"), 2)
    assert CartPoleBatch.tau == TorchCartPole.c.tau


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_cartpole_steps_on_a_cuda_device():
    spec = env_spec("CartPole-v1")
    env = TorchCartPole(spec, 64, "cuda")
    env.reset(list(range(64)))
    result = env.step(np.zeros(64, dtype=np.int64))
    assert env.tensors[0].device.type == "cuda" and result.next_obs.shape == (64, 4)
