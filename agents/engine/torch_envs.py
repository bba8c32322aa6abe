"""CartPole-v1, MountainCar-v0 and Acrobot-v1 for n envs as float64 torch ops on the seed axis: the fast and
compiled paths' envs on a device.

The physics are agents/engine/envs.py's CartPoleBatch, MountainCarBatch and AcrobotBatch (gymnasium's
equations, the time limit, the reset in the step an episode ends) written as tensor operations
on the envs' device, so stepping n envs costs the same few kernels at any n and the state can
live on a GPU. Two things keep them bit-identical to gymnasium on the CPU
(tests/test_torch_envs.py steps them beside gymnasium's envs across terminations and the time
limit):

- cos and sin. gymnasium takes them from the C library (numpy on float64 scalars). torch's CPU
  kernels take SLEEF/VML's vector versions for whole vectors and the C library's for the tail,
  and neither rounds like glibc everywhere (glibc's are not correctly rounded either: about 3 in
  1,000 sines in CartPole's angle range differ from the correctly rounded value), so on the CPU
  the trig calls go through numpy, on a zero-copy view; on another device they are the
  device's own (within an ulp of glibc's, not identical).
- the reset draws. Every env keeps its own gymnasium generator; each reset draws its start
  state from it. They are drawn ahead in blocks (RESET_BLOCK resets per env; numpy's uniform gives
  the same numbers in one call of n as in n calls of one), so a step with episode ends gathers
  rows from a table instead of calling a generator per env.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from gymnasium.utils import seeding

from agents.engine.envs import AcrobotBatch, CartPoleBatch, EnvSpec, MountainCarBatch, StepResult, _pow2, rk4_step

# Resets drawn ahead per env; the table is refilled for an env that has used them all.
RESET_BLOCK = 64


def _cos_sin(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin as gymnasium computes them (the C library's) on the CPU; the device's elsewhere."""
    if theta.device.type == "cpu":
        values = theta.numpy()
        return torch.from_numpy(np.cos(values)), torch.from_numpy(np.sin(values))
    return torch.cos(theta), torch.sin(theta)


class _TorchBatch:
    """What the torch batches share: each env's reset draws taken ahead from its own gymnasium
    generator, the elapsed steps behind the time limit, the reset in the step that ends an
    episode, and the StepResult interface of envs.py's batches (numpy arrays, zero-copy views on
    the CPU) with the same values as tensors (`tensors`)."""

    env_id = ""
    state_dim = 0

    def __init__(self, spec: EnvSpec, num_envs: int, device="cpu"):
        if spec.env_id != self.env_id:
            raise ValueError(f"env_id={spec.env_id!r} is invalid for {type(self).__name__}: it steps {self.env_id}")
        self.spec, self.num_envs, self.device = spec, num_envs, torch.device(device)
        self._limit = spec.max_episode_steps
        self._rngs: list[np.random.Generator] = []

    def _draw_starts(self, rng: np.random.Generator) -> np.ndarray:
        """RESET_BLOCK start states (RESET_BLOCK, state_dim) float64, as that many resets draw them."""
        raise NotImplementedError

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        """The float32 observation of states (n, state_dim)."""
        return state.float()

    def _observe_starts(self, starts: torch.Tensor) -> torch.Tensor:
        """The float32 observation of start states (an env may compute it another way)."""
        return self._observe(starts)

    def draw_resets(self, envs: np.ndarray) -> torch.Tensor:
        """The next RESET_BLOCK start states of each given env from its generator, (len(envs),
        RESET_BLOCK, state_dim) float64: what its next RESET_BLOCK resets draw."""
        return torch.from_numpy(np.stack([self._draw_starts(self._rngs[i]) for i in envs])).to(self.device)

    def _draw(self, envs: np.ndarray) -> None:
        """Refill the reset table of the given envs from their generators."""
        self._table[torch.from_numpy(envs).to(self.device)] = self.draw_resets(envs)
        self._used[envs] = 0

    def _next_starts(self, envs: np.ndarray) -> torch.Tensor:
        """The next start state of each given env, (len(envs), state_dim) float64."""
        exhausted = envs[self._used[envs] == RESET_BLOCK]
        if exhausted.size:
            self._draw(exhausted)
        index = torch.from_numpy(envs).to(self.device)
        starts = self._table[index, torch.from_numpy(self._used[envs]).to(self.device)]
        self._used[envs] += 1
        return starts

    def reset(self, seeds: list[int]) -> np.ndarray:
        if len(seeds) != self.num_envs:
            raise ValueError(f"seeds has {len(seeds)} entries for {self.num_envs} envs")
        self._rngs = [seeding.np_random(int(seed))[0] for seed in seeds]
        shape = (self.num_envs, RESET_BLOCK, self.state_dim)
        self._table = torch.empty(shape, dtype=torch.float64, device=self.device)
        self._used = np.zeros(self.num_envs, dtype=np.int64)
        self._draw(np.arange(self.num_envs))
        self._state = self._next_starts(np.arange(self.num_envs))
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        return self._observe_starts(self._state).cpu().numpy()

    def _finish(self, new_state: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor) -> StepResult:
        self._elapsed += 1
        if self._limit is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = self._elapsed >= self._limit
        state, next_obs = new_state, self._observe(new_state)
        obs = next_obs
        ended_envs = np.flatnonzero((terminated | truncated).cpu().numpy())
        if ended_envs.size:
            state, obs = new_state.clone(), next_obs.clone()
            index = torch.from_numpy(ended_envs).to(self.device)
            starts = self._next_starts(ended_envs)
            state[index], obs[index] = starts, self._observe_starts(starts)
            self._elapsed[index] = 0
        self._state = state
        self.tensors = (next_obs, reward, terminated, truncated, obs)
        return StepResult(*(t.cpu().numpy() for t in self.tensors))

    def close(self) -> None:
        pass


class TorchCartPole(_TorchBatch):
    """CartPole-v1 for n envs on a torch device (envs.CartPoleBatch's physics)."""

    env_id, state_dim = "CartPole-v1", 4
    c = CartPoleBatch  # gymnasium's constants, one definition

    def _draw_starts(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low=-0.05, high=0.05, size=(RESET_BLOCK, 4))

    def step(self, actions) -> StepResult:
        c = self.c
        state = self._state
        x, x_dot, theta, theta_dot = state[:, 0], state[:, 1], state[:, 2], state[:, 3]
        actions = torch.as_tensor(actions, device=self.device)
        force = torch.where(actions == 1, c.force_mag, -c.force_mag).to(torch.float64)
        costheta, sintheta = _cos_sin(theta)
        # CartPoleBatch.step's expressions, in its order (gymnasium's).
        temp = (force + c.polemass_length * theta_dot.square() * sintheta) / c.total_mass
        thetaacc = (c.gravity * sintheta - costheta * temp) / (
            c.length * (4.0 / 3.0 - c.masspole * costheta.square() / c.total_mass)
        )
        xacc = temp - c.polemass_length * thetaacc * costheta / c.total_mass
        new_state = torch.stack(
            (x + c.tau * x_dot, x_dot + c.tau * xacc, theta + c.tau * theta_dot, theta_dot + c.tau * thetaacc), dim=1
        )
        nx, nth = new_state[:, 0], new_state[:, 2]
        terminated = (nx < -c.x_threshold) | (nx > c.x_threshold) | (nth < -c.theta_threshold_radians)
        terminated |= nth > c.theta_threshold_radians
        reward = torch.ones(self.num_envs, dtype=torch.float64, device=self.device)
        return self._finish(new_state, reward, terminated)


def _cos(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.cos(x.numpy())) if x.device.type == "cpu" else torch.cos(x)


class TorchMountainCar(_TorchBatch):
    """MountainCar-v0 for n envs on a torch device (envs.MountainCarBatch's physics)."""

    env_id, state_dim = "MountainCar-v0", 2
    c = MountainCarBatch

    def _draw_starts(self, rng: np.random.Generator) -> np.ndarray:
        return np.stack((rng.uniform(low=-0.6, high=-0.4, size=RESET_BLOCK), np.zeros(RESET_BLOCK)), axis=1)

    def step(self, actions) -> StepResult:
        c = self.c
        position, velocity = self._state[:, 0], self._state[:, 1]
        actions = torch.as_tensor(actions, device=self.device)
        velocity = velocity + ((actions - 1).to(torch.float64) * c.force + _cos(3 * position) * (-c.gravity))
        velocity = velocity.clamp(-c.max_speed, c.max_speed)
        position = (position + velocity).clamp(c.min_position, c.max_position)
        velocity = torch.where((position == c.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= c.goal_position) & (velocity >= c.goal_velocity)
        reward = torch.full((self.num_envs,), -1.0, dtype=torch.float64, device=self.device)
        return self._finish(torch.stack((position, velocity), dim=1), reward, terminated)


def _numpy_on_cpu(function, torch_function, x: torch.Tensor) -> torch.Tensor:
    """function (numpy's, the C library's) on the CPU; torch_function on another device."""
    return torch.from_numpy(function(x.numpy())) if x.device.type == "cpu" else torch_function(x)


class TorchAcrobot(_TorchBatch):
    """Acrobot-v1 for n envs on a torch device (envs.AcrobotBatch's "book" dynamics, one RK4 step,
    wrapped angles, bounded velocities, every expression in its order). Its start states are
    float32 and their observation is computed in float32, as gymnasium does."""

    env_id, state_dim = "Acrobot-v1", 4
    c = AcrobotBatch

    def _draw_starts(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low=-0.1, high=0.1, size=(RESET_BLOCK, 4)).astype(np.float32).astype(np.float64)

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        s0, s1 = state[:, 0], state[:, 1]
        cos = functools.partial(_numpy_on_cpu, np.cos, torch.cos)
        sin = functools.partial(_numpy_on_cpu, np.sin, torch.sin)
        return torch.stack((cos(s0), sin(s0), cos(s1), sin(s1), state[:, 2], state[:, 3]), dim=1).float()

    def _observe_starts(self, starts: torch.Tensor) -> torch.Tensor:
        if starts.device.type != "cpu":
            return self._observe(starts.float())
        # AcrobotBatch._reset_one's float32 arithmetic, row by row (resets are rare).
        rows = []
        for start in starts.numpy().astype(np.float32):
            rows.append([np.cos(start[0]), np.sin(start[0]), np.cos(start[1]), np.sin(start[1]), start[2], start[3]])
        return torch.from_numpy(np.array(rows, dtype=np.float32).reshape(-1, 6))

    def _dsdt(self, y: torch.Tensor) -> torch.Tensor:
        c = self.c
        m1, m2 = c.LINK_MASS_1, c.LINK_MASS_2
        l1, lc1, lc2 = c.LINK_LENGTH_1, c.LINK_COM_POS_1, c.LINK_COM_POS_2
        I1 = I2 = c.LINK_MOI
        g = 9.8
        pi = math.pi
        cos = functools.partial(_numpy_on_cpu, np.cos, torch.cos)
        sin = functools.partial(_numpy_on_cpu, np.sin, torch.sin)
        pow2 = functools.partial(_numpy_on_cpu, _pow2, torch.square)
        a = y[:, 4]
        theta1, theta2, dtheta1, dtheta2 = y[:, 0], y[:, 1], y[:, 2], y[:, 3]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos(theta2)) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * pow2(dtheta2) * sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * pow2(dtheta1) * sin(theta2) - phi2) / (
            m2 * lc2**2 + I2 - pow2(d2) / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2, torch.zeros_like(a)), dim=1)

    @staticmethod
    def _wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        diff = high - low
        while bool((over := x > high).any()):
            x = torch.where(over, x - diff, x)
        while bool((under := x < low).any()):
            x = torch.where(under, x + diff, x)
        return x

    def step(self, actions) -> StepResult:
        c = self.c
        actions = torch.as_tensor(actions, device=self.device)
        torque = torch.tensor(c.AVAIL_TORQUE, dtype=torch.float64, device=self.device)[actions]
        y0 = torch.cat((self._state, torque[:, None]), dim=1)
        ns = rk4_step(self._dsdt, y0, c.dt)[:, :4]
        columns = [self._wrap(ns[:, 0], -math.pi, math.pi), self._wrap(ns[:, 1], -math.pi, math.pi)]
        for column, bound in ((2, c.MAX_VEL_1), (3, c.MAX_VEL_2)):
            x = torch.where(-bound > ns[:, column], -bound, ns[:, column])
            columns.append(torch.where(bound < x, bound, x))
        ns = torch.stack(columns, dim=1)
        cos = functools.partial(_numpy_on_cpu, np.cos, torch.cos)
        terminated = -cos(ns[:, 0]) - cos(ns[:, 1] + ns[:, 0]) > 1.0
        reward = torch.where(terminated, 0.0, -1.0).to(torch.float64)
        return self._finish(ns, reward, terminated)


def cartpole_physics(state: torch.Tensor, action: torch.Tensor, elapsed: torch.Tensor, limit: int):
    """CartPole's Euler step for every env with torch's own trig, for compiled graphs (the fused
    path, the bench's step graph): within an ulp of gymnasium's, not identical (TorchCartPole is).
    Returns the next state, terminated, truncated and the elapsed steps after it."""
    c = CartPoleBatch
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = torch.where(action == 1, c.force_mag, -c.force_mag).to(state.dtype)
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = (force + c.polemass_length * theta_dot.square() * sin) / c.total_mass
    theta_acc = (c.gravity * sin - cos * temp) / (c.length * (4.0 / 3.0 - c.masspole * cos.square() / c.total_mass))
    x_acc = temp - c.polemass_length * theta_acc * cos / c.total_mass
    new = torch.stack(
        (x + c.tau * x_dot, x_dot + c.tau * x_acc, theta + c.tau * theta_dot, theta_dot + c.tau * theta_acc), 1
    )
    terminated = (new[:, 0].abs() > c.x_threshold) | (new[:, 2].abs() > c.theta_threshold_radians)
    elapsed = elapsed + 1
    return new, terminated, elapsed >= limit, elapsed


# Envs with a torch implementation on the seed axis.
TORCH_ENVS = {"CartPole-v1": TorchCartPole, "MountainCar-v0": TorchMountainCar, "Acrobot-v1": TorchAcrobot}


def make_torch_env_batch(spec: EnvSpec, num_envs: int, device):
    """The torch batch for spec.env_id, or None where there is none (envs.make_env_batch then)."""
    batch = TORCH_ENVS.get(spec.env_id)
    return batch(spec, num_envs, device) if batch is not None else None
