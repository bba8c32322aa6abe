"""The article's example 3 as a reader would write it: replay plus a target network.

Example 2 with a second network: a deep copy of the Q-network computes the bootstrap term and
is overwritten with the online weights every `target_update_freq` updates. Old gym API (the
probes run it through their shim), the article's fixed 10 % epsilon over actions 0 and 1.

Two entry points, one line apart:
- `train_as_published` masks with old gym's `done`, as the article does, so a time-limit
  truncation is stored as terminal.
- `train` masks only real terminal states: old gym marks a time-limit cut with
  `info["TimeLimit.truncated"]`, and a careful reader of the old API stores
  `done and not info.get("TimeLimit.truncated", False)`. Everything else is identical.

Expected on the probe battery, read from the code before any run:
- `train`: PASS every probe (terminal states masked, truncations bootstrapped, next state and
  reset observation stored, one greedy action per observation batch).
- `train_as_published`: FAIL the time-limit probe (and the truncating branch of the
  terminate-or-truncate probe), cause named: the time limit stored as terminal; PASS the rest.
"""

from __future__ import annotations

import copy
import random
from collections import deque

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

# Written before any run (docs/byo-cases.md): `train` tells time limits apart, `train_as_published`
# masks with old gym's done.
EXPECTED_CAUSES = {"train": None, "train_as_published": "time_limit_as_terminal"}

try:
    import gym  # old gym (<= 0.25), as the reader had it
except ImportError:  # gymnasium: the probes register old-API envs under their own ids
    import gymnasium as gym


class QNetwork(nn.Module):
    def __init__(self, state_size: int, action_size: int):
        super().__init__()
        self.fc1 = nn.Linear(state_size, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, action_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if x.dim() > 1 else x  # a batch of images or vectors -> (B, state_size)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class ReplayBuffer:
    def __init__(self, capacity: int, rng: random.Random):
        self.buffer: deque = deque(maxlen=capacity)
        self.rng = rng

    def push(self, experience: tuple) -> None:
        self.buffer.append(experience)

    def sample(self, batch_size: int):
        batch = self.rng.sample(self.buffer, batch_size)
        states, actions, rewards, next_states, dones = zip(*batch)
        return np.array(states), np.array(actions), np.array(rewards), np.array(next_states), np.array(dones)

    def __len__(self) -> int:
        return len(self.buffer)


def choose_action(q_network: QNetwork, state, rng: random.Random, epsilon: float = 0.1) -> int:
    if rng.random() < epsilon:
        return rng.randint(0, 1)  # as in the article: two actions assumed
    with torch.no_grad():
        return int(torch.argmax(q_network(torch.tensor(state, dtype=torch.float).flatten())).item())


def _train(
    env,
    total_steps: int,
    seed: int,
    mask_time_limits_as_terminal: bool,
    learning_rate: float = 1e-3,
    gamma: float = 0.99,
    replay_buffer_size: int = 10_000,
    batch_size: int = 64,
    target_update_freq: int = 100,
) -> QNetwork:
    torch.set_num_threads(1)
    env = gym.make(env) if isinstance(env, str) else env
    rng = random.Random(seed)
    state_size = int(np.prod(env.observation_space.shape))
    action_size = env.action_space.n
    with torch.random.fork_rng(devices=[]):  # the seed's own init stream
        torch.manual_seed(seed)
        q_network = QNetwork(state_size, action_size)
    target_network = copy.deepcopy(q_network)
    optimizer = optim.Adam(q_network.parameters(), lr=learning_rate)
    criterion = nn.MSELoss()
    replay_buffer = ReplayBuffer(replay_buffer_size, rng)

    update_counter = 0
    steps = 0
    first_reset = True
    while steps < total_steps:
        state = env.reset(seed=seed) if first_reset else env.reset()
        first_reset = False
        done = False
        while not done and steps < total_steps:
            action = choose_action(q_network, state, rng)
            next_state, reward, done, info = env.step(action)
            steps += 1
            if mask_time_limits_as_terminal:
                terminal = done  # the article: old gym's done, time limits included
            else:
                terminal = done and not info.get("TimeLimit.truncated", False)
            replay_buffer.push((state, action, reward, next_state, terminal))

            if len(replay_buffer) >= batch_size:
                states, actions, rewards, next_states, dones = replay_buffer.sample(batch_size)
                next_q = target_network(torch.tensor(next_states, dtype=torch.float))
                best_next = torch.max(next_q, dim=1)[0].detach()
                targets = torch.tensor(rewards, dtype=torch.float) + gamma * best_next * (
                    1 - torch.tensor(dones, dtype=torch.float)
                )
                all_q = q_network(torch.tensor(states, dtype=torch.float))
                predictions = all_q[torch.arange(batch_size), torch.tensor(actions, dtype=torch.long)]
                loss = criterion(predictions, targets)

                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

                update_counter += 1
                if update_counter % target_update_freq == 0:
                    target_network.load_state_dict(q_network.state_dict())

            state = next_state
    q_network.gamma = gamma
    return q_network


def train(env, total_steps: int, seed: int, **kwargs) -> QNetwork:
    """Example 3 with time limits told apart from terminal states (old gym's info flag)."""
    return _train(env, total_steps, seed, mask_time_limits_as_terminal=False, **kwargs)


def train_as_published(env, total_steps: int, seed: int, **kwargs) -> QNetwork:
    """Example 3 exactly as the article masks it: old gym's `done`, time limits stored as terminal."""
    return _train(env, total_steps, seed, mask_time_limits_as_terminal=True, **kwargs)
