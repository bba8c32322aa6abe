import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.config import ConfigError
from agents.engine.envs import (
    AcrobotBatch,
    CartPoleBatch,
    GymnasiumBatch,
    MountainCarBatch,
    _pow2,
    env_spec,
    make_env_batch,
)


def controller_actions(obs, rng, noise):
    """A PD-like balance controller with random flips: long episodes that hit the 500 limit."""
    good = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
    flip = rng.random(len(obs)) < noise
    return np.where(flip, 1 - good, good)


@pytest.mark.parametrize("noise", [0.5, 0.05, 0.0])
def test_cartpole_batch_is_identical_to_gymnasium(noise):
    spec = env_spec("CartPole-v1")
    n = 6
    ours, theirs = CartPoleBatch(spec, n), GymnasiumBatch(spec, n)
    seeds = [0, 1, 2, 12345, 2**31 - 1, 99]
    obs = ours.reset(seeds)
    np.testing.assert_array_equal(obs, theirs.reset(seeds))
    rng = np.random.default_rng(5)
    ends = truncations = 0
    for _ in range(6_000):
        actions = controller_actions(obs, rng, noise)
        a, b = ours.step(actions), theirs.step(actions)
        for name in ("next_obs", "reward", "terminated", "truncated", "obs"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        ends += int((a.terminated | a.truncated).sum())
        truncations += int(a.truncated.sum())
        obs = a.obs
    assert ends > 20
    if noise == 0.0:
        assert truncations > 0, "the time limit was never reached"


def pump_actions(velocity: np.ndarray, rng, noise):
    """Push with the velocity (energy pumping: reaches MountainCar's goal, swings Acrobot up),
    with random actions mixed in (the left wall, the time limit, the idle torque)."""
    good = np.where(velocity > 0, 2, 0)
    return np.where(rng.random(len(velocity)) < noise, rng.integers(0, 3, len(velocity)), good)


@pytest.mark.parametrize(
    ("env_id", "batch", "velocity_column"), [("MountainCar-v0", MountainCarBatch, 1), ("Acrobot-v1", AcrobotBatch, 5)]
)
@pytest.mark.parametrize("noise", [1.0, 0.3, 0.0])
def test_hand_written_batches_are_identical_to_gymnasium(env_id, batch, velocity_column, noise):
    spec = env_spec(env_id)
    n = 5
    ours, theirs = batch(spec, n), GymnasiumBatch(spec, n)
    assert type(make_env_batch(spec, n)) is batch
    seeds = [0, 1, 7, 2**31 - 1, 424242]
    obs = ours.reset(seeds)
    np.testing.assert_array_equal(obs, theirs.reset(seeds))
    rng = np.random.default_rng(11)
    terminations = truncations = 0
    for _ in range(3_000):
        actions = pump_actions(obs[:, velocity_column], rng, noise)
        a, b = ours.step(actions), theirs.step(actions)
        for name in ("next_obs", "reward", "terminated", "truncated", "obs"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        terminations += int(a.terminated.sum())
        truncations += int(a.truncated.sum())
        obs = a.obs
    # Both ends of an episode happen: random play hits the time limit, pumping reaches the goal.
    assert truncations > 0 if noise == 1.0 else terminations > 5


def test_acrobot_square_rounds_as_numpy_scalar_power_does():
    # Gymnasium squares numpy float64 scalars (libm's pow); array x * x and array np.power
    # (SVML on AVX-512 CPUs) each round some of these values differently.
    x = np.random.default_rng(5).uniform(-30.0, 30.0, 20_000)
    expected = np.array([value**2 for value in x])  # iterating yields numpy float64 scalars
    np.testing.assert_array_equal(_pow2(x), expected)
    assert (x * x != expected).any(), "no value where x * x and libm's pow differ: the check proves nothing"


@pytest.mark.integration
def test_the_equality_checks_hold_at_numpy_baseline_dispatch_too():
    # numpy picks its loops by CPU at import (np.power takes SVML on AVX-512), so an equality
    # that holds on one CI machine can fail on another. Rerun the checks above in a process with
    # every dispatched SIMD feature of this CPU switched off: both ends are checked here.
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        pytest.skip("this numpy does not expose its CPU dispatch (numpy._core._multiarray_umath)")
    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    if not found:
        pytest.skip("numpy dispatches nothing above its baseline on this CPU: this process is the baseline run")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(found)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "identical or square", __file__]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, f"with {found} off:\n{result.stdout[-4000:]}"


def test_step_returns_the_real_next_state_not_the_reset_state():
    spec = env_spec("CartPole-v1")
    env = CartPoleBatch(spec, 1)
    env.reset([3])
    while True:
        result = env.step(np.array([0]))
        if result.terminated[0]:
            break
    # The terminal observation is outside the bounds; the reset observation is near zero.
    assert abs(result.next_obs[0, 2]) > 12 * 2 * np.pi / 360 or abs(result.next_obs[0, 0]) > 2.4
    assert np.all(np.abs(result.obs[0]) <= 0.05)


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0"])
def test_other_discrete_envs_are_described(env_id):
    spec = env_spec(env_id)
    reference = gym.make(env_id)
    assert spec.obs_dim == reference.observation_space.shape[0]
    assert spec.num_actions == reference.action_space.n


@pytest.mark.parametrize(
    "env_id,message",
    [
        ("NoSuchEnv-v0", "env_id='NoSuchEnv-v0' is invalid: not a registered"),
        ("Pendulum-v1", "env_id='Pendulum-v1' is invalid: its action space"),
        ("Blackjack-v1", "env_id='Blackjack-v1' is invalid: its observation space"),
    ],
)
def test_unsupported_envs_are_rejected_by_name(env_id, message):
    with pytest.raises(ConfigError, match=message):
        env_spec(env_id)
