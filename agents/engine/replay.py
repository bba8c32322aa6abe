"""Replay: a ring buffer per seed (stacked on the seed axis) and per-seed uniform streams.

All seeds insert in lockstep; each seed samples its own indices from its own generator. Seeds
of a variant family may have different capacities: then each seed writes at its own position
and samples from its own fill level (storage is sized for the largest).
"""

from __future__ import annotations

import numpy as np
import torch

from agents.engine.family import SeedKnobs


class UniformBlocks:
    """Per-seed U[0, 1) draws of a fixed width, fetched from each seed's generator in blocks.

    Drawing rng.random((block, width)) yields the same numbers as `block` successive
    rng.random(width) calls, so a reader that draws one row at a time sees the same stream;
    blocks only cut the per-step Python cost from K calls to K calls per block.
    """

    def __init__(self, generators: list[np.random.Generator], width: int, block: int = 256):
        self.generators = generators
        self.width = width
        self.block = block
        self._rows = np.empty((len(generators), 0, width))
        self._next = 0

    def next(self) -> np.ndarray:
        """The next row of every seed, shape (K, width)."""
        if self._next == self._rows.shape[1]:
            self._rows = np.stack([g.random((self.block, self.width)) for g in self.generators])
            self._next = 0
        row = self._rows[:, self._next]
        self._next += 1
        return row

    def rows(self, n: int) -> np.ndarray:
        """The next n rows of every seed, shape (n, K, width): what n calls of next() return."""
        if self._next + n <= self._rows.shape[1]:
            block = self._rows[:, self._next : self._next + n].swapaxes(0, 1)
            self._next += n
            return block
        return np.stack([self.next() for _ in range(n)])


def uniform_indices(uniforms: np.ndarray, size: int) -> np.ndarray:
    """floor(u * size): uniform slot indices in [0, size) from U[0, 1) draws."""
    return (uniforms * size).astype(np.int64)


class ReplayBuffer:
    """K ring buffers of `capacity` transitions; slot t % capacity holds the t-th insert."""

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "insert_step")

    def __init__(self, num_seeds: int, capacity, obs_dim: int, device: torch.device):
        # One capacity for every seed (an int), or one per seed (an array of K).
        per_seed = np.asarray(capacity, dtype=np.int64).reshape(-1)
        if per_seed.size not in (1, num_seeds) or per_seed.min() < 1:
            raise ValueError(f"capacity={capacity!r} is invalid: must be >= 1, one value or one per seed")
        self.capacities = None if per_seed.size == 1 else per_seed
        capacity = int(per_seed.max())
        self.capacity = capacity
        self.num_seeds = num_seeds
        self.inserted = 0
        k = num_seeds
        self.obs = torch.zeros((k, capacity, obs_dim), dtype=torch.float32, device=device)
        self.next_obs = torch.zeros((k, capacity, obs_dim), dtype=torch.float32, device=device)
        self.action = torch.zeros((k, capacity), dtype=torch.int64, device=device)
        self.reward = torch.zeros((k, capacity), dtype=torch.float32, device=device)
        self.terminated = torch.zeros((k, capacity), dtype=torch.bool, device=device)
        self.truncated = torch.zeros((k, capacity), dtype=torch.bool, device=device)
        # Env step (0-based) at which each transition was inserted, for sample age.
        self.insert_step = torch.zeros((k, capacity), dtype=torch.int64, device=device)
        self.position = 0  # next slot to write
        self.size = 0  # slots written so far, at most capacity
        self._seed_offset = torch.arange(k, device=device).unsqueeze(1) * capacity

    def add(self, obs, action, reward, next_obs, terminated, truncated, env_step: int) -> None:
        """Insert one transition per seed; every argument has the seed axis first."""
        self.inserted += 1
        if self.capacities is not None:
            # Each seed at its own ring position: (seed, slot) pairs, advanced indexing.
            seeds = torch.arange(self.num_seeds, device=self.obs.device)
            slots = torch.from_numpy((self.inserted - 1) % self.capacities).to(self.obs.device)
            for name, value in zip(self.FIELDS, (obs, action, reward, next_obs, terminated, truncated)):
                getattr(self, name)[seeds, slots] = value
            self.insert_step[seeds, slots] = env_step
            self.size = min(self.size + 1, self.capacity)
            return
        p = self.position
        self.obs[:, p] = obs
        self.action[:, p] = action
        self.reward[:, p] = reward
        self.next_obs[:, p] = next_obs
        self.terminated[:, p] = terminated
        self.truncated[:, p] = truncated
        self.insert_step[:, p] = env_step
        self.position = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def gather(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Transitions at slot indices (K, B): each field (K, B, ...)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        # index_select on a flat (K * capacity) view is several times faster than advanced
        # indexing with a (K, 1) seed index broadcast against (K, B) slot indices.
        flat = (indices + self._seed_offset).reshape(-1)
        shape = indices.shape
        out = {}
        for name in self.FIELDS:
            store = getattr(self, name)
            rows = store.view(-1, *store.shape[2:]).index_select(0, flat)
            out[name] = rows.view(*shape, *store.shape[2:])
        return out

    def fill(self) -> np.ndarray | int:
        """Slots written per seed (an int when every seed has the same capacity)."""
        if self.capacities is None:
            return self.size
        return np.minimum(self.inserted, self.capacities)

    def sample_indices(self, uniforms: np.ndarray) -> torch.Tensor:
        """Uniform slot indices over the written slots, (K, B), from U[0, 1) draws (K, B)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        fill = self.fill()
        size = fill if self.capacities is None else fill[:, None]
        return torch.from_numpy(uniform_indices(uniforms, size)).to(self.obs.device)


def n_step_batch(buffer: ReplayBuffer, indices: torch.Tensor, first: dict, knobs: SeedKnobs) -> dict:
    """The sampled transitions extended to multi-step windows: from slot i, the following slots
    in insertion order while the window has fewer than the seed's n steps, no episode has ended
    (terminated or truncated: a window never crosses an episode boundary; a truncation ends it
    and bootstraps from its true next state unless old-gym done masks it) and the buffer holds
    a later transition. Returns the batch with reward = sum_j gamma^j r_j (accumulated left to
    right in float32), next_obs, terminated and truncated of the window's last transition, and
    `discount` = gamma^m (float32 products; gamma itself for m = 1)."""
    device = indices.device
    if buffer.capacities is None:
        capacity = buffer.capacity
    else:
        capacity = torch.as_tensor(buffer.capacities, device=device).view(-1, 1)
    newest = (buffer.inserted - 1) % capacity
    later = (newest - indices) % capacity  # transitions inserted after slot i
    n_step = torch.as_tensor(knobs.n_step, device=device).view(-1, 1)
    discount = torch.ones_like(first["reward"]) * knobs.gamma
    reward = first["reward"]
    next_obs, terminated, truncated = first["next_obs"], first["terminated"], first["truncated"]
    open_window = ~(terminated | truncated)
    for j in range(1, knobs.max_n_step):
        use = open_window & (later >= j) & (n_step > j)
        if not bool(use.any()):
            break
        step = buffer.gather((indices + j) % capacity)
        reward = torch.where(use, reward + discount * step["reward"], reward)
        discount = torch.where(use, discount * knobs.gamma, discount)
        next_obs = torch.where(use.unsqueeze(2), step["next_obs"], next_obs)
        terminated = torch.where(use, step["terminated"], terminated)
        truncated = torch.where(use, step["truncated"], truncated)
        open_window = use & ~(step["terminated"] | step["truncated"])
    window = {"reward": reward, "next_obs": next_obs, "terminated": terminated, "truncated": truncated}
    return {**first, **window, "discount": discount}


def sample_batch(buffer: ReplayBuffer, uniforms: UniformBlocks, knobs: SeedKnobs, uses_replay: bool) -> dict:
    """Each seed's batch: B uniform draws from its buffer, or (no replay) the transition just
    stored in its single slot; extended to multi-step windows where a seed uses them."""
    if uses_replay:
        indices = buffer.sample_indices(uniforms.next())
    else:
        indices = torch.zeros((buffer.num_seeds, 1), dtype=torch.int64, device=buffer.obs.device)
    batch = buffer.gather(indices)
    if knobs.max_n_step > 1:
        batch = n_step_batch(buffer, indices, batch, knobs)
    return batch
