"""CartPole-v1 and MountainCar-v0 for n envs as float64 torch ops on the seed axis: the fast and
compiled paths' envs on a device.

The physics are agents/engine/envs.py's CartPoleBatch and MountainCarBatch (gymnasium's
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

import numpy as np
import torch
from gymnasium.utils import seeding

from agents.engine.envs import CartPoleBatch, EnvSpec, MountainCarBatch, StepResult

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

    def _draw(self, envs: np.ndarray) -> None:
        """Refill the reset table of the given envs from their generators."""
        for i in envs:
            self._table[i] = torch.from_numpy(self._draw_starts(self._rngs[i])).to(self.device)
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
        return self._observe(self._state).cpu().numpy()

    def _finish(self, new_state: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor) -> StepResult:
        self._elapsed += 1
        if self._limit is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = self._elapsed >= self._limit
        state = new_state
        ended_envs = np.flatnonzero((terminated | truncated).cpu().numpy())
        if ended_envs.size:
            state = new_state.clone()
            index = torch.from_numpy(ended_envs).to(self.device)
            state[index] = self._next_starts(ended_envs)
            self._elapsed[index] = 0
        self._state = state
        self.tensors = (self._observe(new_state), reward, terminated, truncated, self._observe(state))
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


# Envs with a torch implementation on the seed axis.
TORCH_ENVS = {"CartPole-v1": TorchCartPole, "MountainCar-v0": TorchMountainCar}


def make_torch_env_batch(spec: EnvSpec, num_envs: int, device):
    """The torch batch for spec.env_id, or None where there is none (envs.make_env_batch then)."""
    batch = TORCH_ENVS.get(spec.env_id)
    return batch(spec, num_envs, device) if batch is not None else None
