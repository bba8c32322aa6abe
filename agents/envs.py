"""Batches of environments, one per seed (training) or per (seed, episode) (evaluation).

Resets happen in the same step as the episode end: ``step`` returns the true next
observation of every env (what goes into a replay buffer) and, separately, the observation
each env continues from (the reset observation where an episode ended). gymnasium's vector
envs instead reset on the *next* step and emit a transition that is not a real one; doing
it here by hand means no such transition exists. ``terminated`` and ``truncated`` stay apart.

CartPole-v1 is stepped for all envs at once by ``CartPoleBatch`` (numpy, float64 physics,
one gymnasium-style generator per env), proven identical to gymnasium's CartPole-v1 by the
tests; every other env id goes through ``gymnasium.make``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from agents.config import ConfigError


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    obs_dim: int
    num_actions: int
    max_episode_steps: int | None


@dataclass
class StepResult:
    next_obs: np.ndarray  # (n, obs_dim) float32: the real s' of each transition
    reward: np.ndarray  # (n,) float64
    terminated: np.ndarray  # (n,) bool: a true end, no bootstrap
    truncated: np.ndarray  # (n,) bool: a time limit, the state still has a value
    obs: np.ndarray  # (n, obs_dim) float32: where each env continues (reset obs after an end)


def env_spec(env_id: str) -> EnvSpec:
    """Check that env_id names a gymnasium env DQN can train on, and describe it."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise ConfigError(f"env_id={env_id!r} is invalid: not a registered gymnasium environment ({exc})") from None
    except ModuleNotFoundError as exc:  # "module:EnvName-v0" ids import their module first
        raise ConfigError(f"env_id={env_id!r} is invalid: its module cannot be imported ({exc.msg})") from None
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(
                f"env_id={env_id!r} is invalid: its action space {env.action_space} is not Discrete; "
                "DQN needs a finite set of actions"
            )
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ConfigError(
                f"env_id={env_id!r} is invalid: its observation space {space} is not a flat Box; "
                "the MLP Q-network needs a 1-D vector observation"
            )
        max_steps = env.spec.max_episode_steps if env.spec is not None else None
        return EnvSpec(env_id, int(space.shape[0]), int(env.action_space.n), max_steps)
    finally:
        env.close()


class GymnasiumBatch:
    """n independent gymnasium envs stepped one after another, reset in the same step."""

    def __init__(self, spec: EnvSpec, num_envs: int):
        self.spec = spec
        self.num_envs = num_envs
        self._envs = [gym.make(spec.env_id) for _ in range(num_envs)]
        self._obs = np.zeros((num_envs, spec.obs_dim), dtype=np.float32)

    def reset(self, seeds: list[int]) -> np.ndarray:
        for i, (env, seed) in enumerate(zip(self._envs, seeds, strict=True)):
            self._obs[i] = env.reset(seed=int(seed))[0]
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> StepResult:
        n = self.num_envs
        next_obs = np.empty((n, self.spec.obs_dim), dtype=np.float32)
        reward = np.empty(n, dtype=np.float64)
        terminated = np.empty(n, dtype=bool)
        truncated = np.empty(n, dtype=bool)
        for i, env in enumerate(self._envs):
            next_obs[i], reward[i], terminated[i], truncated[i], _ = env.step(int(actions[i]))
            if terminated[i] or truncated[i]:
                # Seedless reset: the env continues its own generator, as gymnasium does.
                self._obs[i] = env.reset()[0]
            else:
                self._obs[i] = next_obs[i]
        return StepResult(next_obs, reward, terminated, truncated, self._obs.copy())

    def close(self) -> None:
        for env in self._envs:
            env.close()


class CartPoleBatch:
    """CartPole-v1 for n envs at once: gymnasium's physics in float64, one generator per env.

    Written by hand because stepping n gymnasium envs costs n Python calls per step, which
    dominated multi-seed training; the arithmetic below mirrors gymnasium's CartPoleEnv
    operation for operation so results are bit-identical (tests/test_envs.py proves it).
    """

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(self, spec: EnvSpec, num_envs: int):
        self.spec = spec
        self.num_envs = num_envs
        self.max_episode_steps = spec.max_episode_steps
        self._state = np.zeros((num_envs, 4), dtype=np.float64)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._rngs: list[np.random.Generator] = []

    def _reset_one(self, i: int) -> None:
        self._state[i] = self._rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
        self._elapsed[i] = 0

    def reset(self, seeds: list[int]) -> np.ndarray:
        if len(seeds) != self.num_envs:
            raise ValueError(f"seeds has {len(seeds)} entries for {self.num_envs} envs")
        self._rngs = [seeding.np_random(int(seed))[0] for seed in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._state.astype(np.float32)

    def step(self, actions: np.ndarray) -> StepResult:
        x, x_dot, theta, theta_dot = self._state.T
        force = np.where(np.asarray(actions) == 1, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        # Explicit Euler, as CartPole-v1's default kinematics_integrator.
        new_state = np.stack(
            (
                x + self.tau * x_dot,
                x_dot + self.tau * xacc,
                theta + self.tau * theta_dot,
                theta_dot + self.tau * thetaacc,
            ),
            axis=1,
        )
        self._state = new_state
        self._elapsed += 1
        nx, nth = new_state[:, 0], new_state[:, 2]
        terminated = (
            (nx < -self.x_threshold)
            | (nx > self.x_threshold)
            | (nth < -self.theta_threshold_radians)
            | (nth > self.theta_threshold_radians)
        )
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self._elapsed >= self.max_episode_steps
        # Every step before and at termination pays 1 (CartPole-v1, sutton_barto_reward=False).
        reward = np.ones(self.num_envs, dtype=np.float64)
        next_obs = new_state.astype(np.float32)
        for i in np.flatnonzero(terminated | truncated):
            self._reset_one(int(i))
        return StepResult(next_obs, reward, terminated, truncated, self._state.astype(np.float32))

    def close(self) -> None:
        pass


def make_env_batch(spec: EnvSpec, num_envs: int) -> GymnasiumBatch | CartPoleBatch:
    """The fastest exact implementation for env_id: CartPoleBatch for CartPole-v1, else gymnasium."""
    if spec.env_id == "CartPole-v1":
        return CartPoleBatch(spec, num_envs)
    return GymnasiumBatch(spec, num_envs)
