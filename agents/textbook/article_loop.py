"""The speed baseline: the article's example 3 training loop as its readers would write it.

One seed, an nn.Module Q-network, a deque replay buffer sampled with random.sample, a target
network copied every `target_sync_period` updates, gymnasium.make, and numpy/tensor conversions
on every step: the code a user would otherwise run, ported to gymnasium 1.x (terminated and
truncated, reset in the loop). It is a yardstick for `dqn-ablations bench`, not a reference
for correctness (that is agents/textbook/reference.py, which follows the engine's random streams).
"""

from __future__ import annotations

import copy
import random
from collections import deque

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from agents.config import AgentConfig


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DequeReplay:
    """Transitions as tuples in a bounded deque; a batch is random.sample + zip, as usually written."""

    def __init__(self, capacity: int):
        self.memory: deque = deque(maxlen=capacity)

    def push(self, transition: tuple) -> None:
        self.memory.append(transition)

    def sample(self, batch_size: int):
        states, actions, rewards, next_states, dones = zip(*random.sample(self.memory, batch_size))
        return np.array(states), np.array(actions), np.array(rewards), np.array(next_states), np.array(dones)

    def __len__(self) -> int:
        return len(self.memory)


def article_loop(config: AgentConfig, steps: int, seed: int = 0) -> int:
    """Train for `steps` env steps with the article's example 3 loop; returns the update count."""
    random.seed(seed)
    torch.manual_seed(seed)
    env = gym.make(config.env_id)
    q_network = QNetwork(env.observation_space.shape[0], int(env.action_space.n), config.hidden_sizes)
    # Example 1 bootstraps from the online network itself; examples 2 and 3 keep a copy.
    target_network = copy.deepcopy(q_network) if config.target_network != "none" else q_network
    optimizer = torch.optim.Adam(q_network.parameters(), lr=config.learning_rate)
    criterion = nn.MSELoss()
    replay = DequeReplay(config.replay_capacity or 1)
    updates = 0
    state, _ = env.reset(seed=seed)
    for _ in range(steps):
        if random.random() < config.epsilon_end:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = int(q_network(torch.tensor(state, dtype=torch.float32)).argmax().item())
        next_state, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated  # the article's old-gym `done`
        replay.push((state, action, reward, next_state, done))
        if len(replay) >= config.batch_size:
            states, actions, rewards, next_states, dones = replay.sample(config.batch_size)
            with torch.no_grad():
                best_next = target_network(torch.tensor(next_states, dtype=torch.float32)).max(1)[0]
            # Example 1 never masks terminal states; examples 2 and 3 mask on `done`.
            mask = torch.tensor(dones, dtype=torch.float32) if config.terminal_masking else 0.0
            targets = torch.tensor(rewards, dtype=torch.float32) + config.gamma * best_next * (1 - mask)
            predictions = q_network(torch.tensor(states, dtype=torch.float32))[
                torch.arange(config.batch_size), torch.tensor(actions, dtype=torch.long)
            ]
            loss = criterion(predictions, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            if config.target_network == "hard" and updates % config.target_sync_period == 0:
                target_network.load_state_dict(q_network.state_dict())
        state = env.reset()[0] if done else next_state
    env.close()
    return updates
