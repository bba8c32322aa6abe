"""The article's example 1 as a reader would write it: online DQN, old gym API, no stabilisers.

Each step updates the network on the transition just seen (no replay), the target comes from the
same network being trained (no target network), exploration is a fixed 10 % epsilon whose random
branch picks between actions 0 and 1 only (the article assumes two actions), and the target
never looks at `done`: a terminal state is bootstrapped as if the episode went on. Written
against the old gym API (reset returns the observation, step returns obs, reward, done, info),
so the probes run it through their old-gym shim. The only additions to the article's loop: the
`total_steps` budget, per-seed random streams, and returning the network.

Expected on the probe battery, read from the code before any run:
- FAIL terminal masking (the cause to be named first): every probe whose episode *terminates*
  sees the value of the state after the end added in, e.g. a one-step episode with reward 1
  reaches about 1 / (1 - gamma) instead of 1. The same mechanism fails the other probes that end
  by termination (constant/observation/action-dependent reward, two-step discounting, delayed
  reward, the terminate-or-truncate probe's terminating branch).
- PASS the time-limit probe, by accident: never masking means a truncation is bootstrapped too.
- Learning is online and noisy (one transition per update, no target network), so values may be
  fragile on some seeds even where the mechanism is right.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

EXPECTED_CAUSE = "terminal_not_masked"  # written before any run (docs/byo-cases.md)

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


def choose_action(q_network: QNetwork, state, rng: random.Random, epsilon: float = 0.1) -> int:
    if rng.random() < epsilon:
        return rng.randint(0, 1)  # as in the article: two actions assumed
    with torch.no_grad():
        return int(torch.argmax(q_network(torch.tensor(state, dtype=torch.float).flatten())).item())


def train(env, total_steps: int, seed: int, learning_rate: float = 1e-3, gamma: float = 0.99) -> QNetwork:
    """Run the article's episode loop until `total_steps` env steps; return the Q-network."""
    torch.set_num_threads(1)
    env = gym.make(env) if isinstance(env, str) else env
    rng = random.Random(seed)
    state_size = int(np.prod(env.observation_space.shape))
    action_size = env.action_space.n
    with torch.random.fork_rng(devices=[]):  # the seed's own init stream
        torch.manual_seed(seed)
        q_network = QNetwork(state_size, action_size)
    optimizer = optim.Adam(q_network.parameters(), lr=learning_rate)
    criterion = nn.MSELoss()

    steps = 0
    first_reset = True
    while steps < total_steps:
        state = env.reset(seed=seed) if first_reset else env.reset()
        first_reset = False
        done = False
        while not done and steps < total_steps:
            action = choose_action(q_network, state, rng)
            next_state, reward, done, _ = env.step(action)
            steps += 1

            # No (1 - done): the article's example 1 bootstraps through terminal states.
            next_q = q_network(torch.tensor(next_state, dtype=torch.float).flatten())
            target = reward + gamma * torch.max(next_q).detach()
            prediction = q_network(torch.tensor(state, dtype=torch.float).flatten())[action]
            loss = criterion(prediction, target)

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            state = next_state
    q_network.gamma = gamma
    return q_network
