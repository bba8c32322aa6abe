"""A correct plain-PyTorch DQN, written as a user would: the yardstick every probe should pass.

A small MLP, a uniform replay buffer, a target network copied every `target_sync` updates,
epsilon-greedy exploration decaying linearly, and gymnasium's two flags kept apart: the
bootstrap term is dropped only when the episode *terminated*; a time-limit *truncation* still
bootstraps from the next state, and the next episode starts from the observation `reset`
returns. Tuned to learn tiny environments in a few thousand steps (update every step from the
100th on, Adam at 1e-3).

    python -m ablations probe examples/byo/correct_dqn.py:train
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EXPECTED_CAUSE = None  # no bug: passes every probe

GAMMA = 0.99


class QNetwork(nn.Module):
    """Observation batch (B, *obs_shape) -> Q-values (B, n_actions); images are flattened."""

    def __init__(self, obs_size: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(obs_size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_actions)
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs.reshape(obs.shape[0], -1).float())


class ReplayBuffer:
    """Fixed-size ring of transitions in numpy arrays, sampled uniformly with the seed's generator."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], rng: np.random.Generator):
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.next_slot, self.rng = capacity, 0, 0, rng

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.next_slot
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.next_slot = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int):
        idx = self.rng.integers(0, self.size, size=batch_size)
        return (
            torch.from_numpy(self.obs[idx]),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_obs[idx]),
            torch.from_numpy(self.terminated[idx]),
        )


def train(
    env,
    total_steps: int,
    seed: int,
    *,
    gamma: float = GAMMA,
    lr: float = 1e-3,
    batch_size: int = 64,
    learning_starts: int = 100,
    target_sync: int = 100,
    buffer_size: int = 50_000,
    exploration_fraction: float = 0.3,
    epsilon_end: float = 0.05,
) -> QNetwork:
    """Train on `env` (a gymnasium env or its registered id) for `total_steps`; return the Q-network."""
    torch.set_num_threads(1)
    env = gym.make(env) if isinstance(env, str) else env
    rng = np.random.default_rng(seed)
    obs_shape = env.observation_space.shape
    n_actions = int(env.action_space.n)

    with torch.random.fork_rng(devices=[]):  # the seed's own init stream; the global RNG is left as it was
        torch.manual_seed(seed)
        q_net = QNetwork(int(np.prod(obs_shape)), n_actions)
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=lr)
    replay = ReplayBuffer(min(buffer_size, max(total_steps, 1)), obs_shape, rng)

    obs, _ = env.reset(seed=seed)
    updates = 0
    for step in range(total_steps):
        epsilon = max(epsilon_end, 1.0 - (1.0 - epsilon_end) * step / max(exploration_fraction * total_steps, 1))
        if rng.random() < epsilon:
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(q_net(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax(1).item())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, reward, next_obs, float(terminated))  # truncation is not terminal
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        if step + 1 >= learning_starts and replay.size >= batch_size:
            s, a, r, s2, term = replay.sample(batch_size)
            with torch.no_grad():
                target = r + gamma * (1.0 - term) * target_net(s2).max(1).values
            q_sa = q_net(s).gather(1, a[:, None]).squeeze(1)
            loss = F.mse_loss(q_sa, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            if updates % target_sync == 0:
                target_net.load_state_dict(q_net.state_dict())
    q_net.gamma = gamma  # the probes read the discount the agent was trained with
    return q_net.eval()
