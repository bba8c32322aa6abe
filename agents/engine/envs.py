"""Batches of environments, one per seed (training) or per (seed, episode) (evaluation).

Resets happen in the same step as the episode end: ``step`` returns the true next
observation of every env (what goes into a replay buffer) and, separately, the observation
each env continues from (the reset observation where an episode ended). gymnasium's vector
envs instead reset on the *next* step and emit a transition that is not a real one; doing
it here by hand means no such transition exists. ``terminated`` and ``truncated`` stay apart.

CartPole-v1, MountainCar-v0 and Acrobot-v1 are stepped for all envs at once by hand-written
numpy batches (float64 physics, one gymnasium-style generator per env), proven identical to
gymnasium's envs by the tests; every other env id goes through ``gymnasium.make``.
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
    except gym.error.DependencyNotInstalled as exc:
        hint = ' (Box2D envs: pip install "dqn-ablations[box2d]")' if "box2d" in str(exc).lower() else ""
        raise ConfigError(
            f"env_id={env_id!r} is invalid: its dependencies are not installed ({exc}){hint}"
        ) from None
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


class _SeededBatch:
    """Shared bookkeeping of the hand-written batches: one gymnasium-style generator per env,
    the elapsed steps behind the time limit, and resets in the step that ends an episode."""

    def __init__(self, spec: EnvSpec, num_envs: int):
        self.spec = spec
        self.num_envs = num_envs
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._rngs: list[np.random.Generator] = []
        self._obs = np.zeros((num_envs, spec.obs_dim), dtype=np.float32)

    def _reset_one(self, i: int) -> None:  # draws env i's start state and sets self._obs[i]
        raise NotImplementedError

    def reset(self, seeds: list[int]) -> np.ndarray:
        if len(seeds) != self.num_envs:
            raise ValueError(f"seeds has {len(seeds)} entries for {self.num_envs} envs")
        self._rngs = [seeding.np_random(int(seed))[0] for seed in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
            self._elapsed[i] = 0
        return self._obs.copy()

    def _finish(self, next_obs: np.ndarray, reward: np.ndarray, terminated: np.ndarray) -> StepResult:
        self._elapsed += 1
        limit = self.spec.max_episode_steps
        truncated = np.zeros(self.num_envs, dtype=bool) if limit is None else self._elapsed >= limit
        self._obs = next_obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            self._reset_one(int(i))
            self._elapsed[i] = 0
        return StepResult(next_obs, reward, terminated, truncated, self._obs.copy())

    def close(self) -> None:
        pass


class CartPoleBatch(_SeededBatch):
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
        super().__init__(spec, num_envs)
        self._state = np.zeros((num_envs, 4), dtype=np.float64)

    def _reset_one(self, i: int) -> None:
        self._state[i] = self._rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
        self._obs[i] = self._state[i]

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
        nx, nth = new_state[:, 0], new_state[:, 2]
        terminated = (
            (nx < -self.x_threshold)
            | (nx > self.x_threshold)
            | (nth < -self.theta_threshold_radians)
            | (nth > self.theta_threshold_radians)
        )
        # Every step before and at termination pays 1 (CartPole-v1, sutton_barto_reward=False).
        reward = np.ones(self.num_envs, dtype=np.float64)
        return self._finish(new_state.astype(np.float32), reward, terminated)


class MountainCarBatch(_SeededBatch):
    """MountainCar-v0 for n envs at once, operation for operation as gymnasium's MountainCarEnv
    (float64 state; numpy's cos equals math.cos on the positions the env reaches: the tests
    compare whole trajectories with gymnasium's)."""

    min_position, max_position, max_speed = -1.2, 0.6, 0.07
    goal_position, goal_velocity = 0.5, 0
    force, gravity = 0.001, 0.0025

    def __init__(self, spec: EnvSpec, num_envs: int):
        super().__init__(spec, num_envs)
        self._state = np.zeros((num_envs, 2), dtype=np.float64)

    def _reset_one(self, i: int) -> None:
        self._state[i] = (self._rngs[i].uniform(low=-0.6, high=-0.4), 0.0)
        self._obs[i] = self._state[i]

    def step(self, actions: np.ndarray) -> StepResult:
        position, velocity = self._state[:, 0].copy(), self._state[:, 1].copy()
        velocity += (np.asarray(actions, dtype=np.int64) - 1) * self.force + np.cos(3 * position) * (-self.gravity)
        velocity = np.clip(velocity, -self.max_speed, self.max_speed)
        position += velocity
        position = np.clip(position, self.min_position, self.max_position)
        velocity[(position == self.min_position) & (velocity < 0)] = 0.0
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        self._state = np.stack((position, velocity), axis=1)
        return self._finish(self._state.astype(np.float32), np.full(self.num_envs, -1.0), terminated)


def _pow2(x: np.ndarray) -> np.ndarray:
    """x**2 as gymnasium's Acrobot computes it on numpy float64 *scalars*: libm's pow(x, 2.0).
    Array `x**2` multiplies x * x (correctly rounded; libm's pow differs in about 1 case in
    1,000), and array np.power takes SVML on AVX-512 CPUs (differs in about 1 in 40), so each
    element goes through math.pow, which is libm's pow; the loop is over agents, so short."""
    return np.array([math.pow(v, 2.0) for v in x.tolist()], dtype=np.float64)


def rk4_step(dsdt, y0, dt: float):
    """One RK4 step over [0, dt], as gymnasium's rk4 with t = [0, dt], in its order of operations.
    The same expressions serve numpy arrays (envs.py) and torch tensors (torch_envs.py)."""
    dt = dt - 0
    dt2 = dt / 2.0
    k1 = dsdt(y0)
    k2 = dsdt(y0 + dt2 * k1)
    k3 = dsdt(y0 + dt2 * k2)
    k4 = dsdt(y0 + dt * k3)
    return y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


class AcrobotBatch(_SeededBatch):
    """Acrobot-v1 for n envs at once: gymnasium's AcrobotEnv ("book" dynamics, one RK4 step of
    0.2 s, wrapped angles, bounded velocities), every expression in the env's own order so the
    float64 results are bit-identical (tests/test_envs.py compares whole trajectories)."""

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi
    AVAIL_TORQUE = np.array([-1.0, 0.0, 1.0])

    def __init__(self, spec: EnvSpec, num_envs: int):
        super().__init__(spec, num_envs)
        self._state = np.zeros((num_envs, 4), dtype=np.float64)

    def _reset_one(self, i: int) -> None:
        # The env keeps its start state in float32 and computes the first observation from it
        # in float32; later states are float64.
        start = self._rngs[i].uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)
        self._state[i] = start
        self._obs[i] = np.array(
            [np.cos(start[0]), np.sin(start[0]), np.cos(start[1]), np.sin(start[1]), start[2], start[3]],
            dtype=np.float32,
        )

    def _dsdt(self, y: np.ndarray) -> np.ndarray:
        m1, m2 = self.LINK_MASS_1, self.LINK_MASS_2
        l1, lc1, lc2 = self.LINK_LENGTH_1, self.LINK_COM_POS_1, self.LINK_COM_POS_2
        I1 = I2 = self.LINK_MOI
        g = 9.8
        pi = math.pi
        a = y[:, 4]
        theta1, theta2, dtheta1, dtheta2 = y[:, 0], y[:, 1], y[:, 2], y[:, 3]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * np.cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * np.cos(theta2)) + I2
        phi2 = m2 * lc2 * g * np.cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * _pow2(dtheta2) * np.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * np.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * np.cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * _pow2(dtheta1) * np.sin(theta2) - phi2) / (
            m2 * lc2**2 + I2 - _pow2(d2) / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return np.stack((dtheta1, dtheta2, ddtheta1, ddtheta2, np.zeros_like(a)), axis=1)

    @staticmethod
    def _wrap(x: np.ndarray, low: float, high: float) -> np.ndarray:
        x, diff = x.copy(), high - low
        while (over := x > high).any():
            x[over] = x[over] - diff
        while (under := x < low).any():
            x[under] = x[under] + diff
        return x

    def step(self, actions: np.ndarray) -> StepResult:
        y0 = np.concatenate((self._state, self.AVAIL_TORQUE[np.asarray(actions)][:, None]), axis=1)
        ns = rk4_step(self._dsdt, y0, self.dt)[:, :4]
        ns[:, 0] = self._wrap(ns[:, 0], -math.pi, math.pi)
        ns[:, 1] = self._wrap(ns[:, 1], -math.pi, math.pi)
        for column, bound in ((2, self.MAX_VEL_1), (3, self.MAX_VEL_2)):
            # min(max(x, -bound), bound) as the env's bound() computes it.
            x = np.where(-bound > ns[:, column], -bound, ns[:, column])
            ns[:, column] = np.where(bound < x, bound, x)
        self._state = ns
        terminated = -np.cos(ns[:, 0]) - np.cos(ns[:, 1] + ns[:, 0]) > 1.0
        reward = np.where(terminated, 0.0, -1.0)
        obs = np.stack(
            (np.cos(ns[:, 0]), np.sin(ns[:, 0]), np.cos(ns[:, 1]), np.sin(ns[:, 1]), ns[:, 2], ns[:, 3]), axis=1
        ).astype(np.float32)
        return self._finish(obs, reward, terminated)


# Hand-written batches, each proven step for step equal to gymnasium's env (tests/test_envs.py).
BATCHED_ENVS = {"CartPole-v1": CartPoleBatch, "MountainCar-v0": MountainCarBatch, "Acrobot-v1": AcrobotBatch}


def make_env_batch(spec: EnvSpec, num_envs: int):
    """The fastest exact implementation for env_id: a hand-written batch where one exists
    (BATCHED_ENVS), else gymnasium's envs stepped one by one."""
    batch = BATCHED_ENVS.get(spec.env_id)
    return batch(spec, num_envs) if batch is not None else GymnasiumBatch(spec, num_envs)
