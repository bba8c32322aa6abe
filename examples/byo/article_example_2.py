"""The article's example 2 as a reader would write it: example 1 plus experience replay.

Transitions go into a bounded deque and, once it holds a batch, every step trains on a uniform
random batch from it. Targets still come from the network being trained (no target network) and
now carry the mask `(1 - done)`, where `done` is old gym's single flag: it is true at a real
terminal state *and* when the time limit cuts the episode. Exploration is the article's fixed
10 % epsilon over actions 0 and 1. Old gym API, so the probes run it through their shim.

Expected on the probe battery, read from the code before any run:
- FAIL the time-limit probe (the cause to be named first: the time limit stored as terminal):
  `done` is true at truncation, so the last step of a time-limited episode is valued as if the
  world ended there, well below r / (1 - gamma); the terminate-or-truncate probe's truncating
  branch fails for the same reason.
- PASS the probes that end by termination (the mask is right there) and the reset probe.
- No target network: bootstrapped values chase the network's own moving estimates, so long
  discount chains may converge more slowly (fragile on some seeds rather than wrong on all).
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

EXPECTED_CAUSE = "time_limit_as_terminal"  # written before any run (docs/byo-cases.md)

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


def train(
    env,
    total_steps: int,
    seed: int,
    learning_rate: float = 1e-3,
    gamma: float = 0.99,
    replay_buffer_size: int = 10_000,
    batch_size: int = 64,
) -> QNetwork:
    """Run the article's episode loop with replay until `total_steps` env steps; return the Q-network."""
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
    replay_buffer = ReplayBuffer(replay_buffer_size, rng)

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
            replay_buffer.push((state, action, reward, next_state, done))

            if len(replay_buffer) >= batch_size:
                states, actions, rewards, next_states, dones = replay_buffer.sample(batch_size)
                next_q = q_network(torch.tensor(next_states, dtype=torch.float))
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

            state = next_state
    q_network.gamma = gamma
    return q_network
