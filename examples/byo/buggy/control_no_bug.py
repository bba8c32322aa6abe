"""The control for the buggy set: the small DQN every file in this folder copies, with no bug.

Each `examples/byo/buggy/*.py` differs from this file in one marked place (`# BUG`) and its
header, so a probe that fails on a buggy file and passes here fails because of that bug, not
because of the shared code. Gymnasium API, per-seed streams, one torch thread.

    python -m ablations probe examples/byo/buggy/control_no_bug.py:train
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EXPECTED_CAUSE = None  # the control: no bug
THREAD_URL = None


def make_q_network(obs_size: int, n_actions: int) -> nn.Module:
    """Observation batch (B, *obs_shape) -> Q-values (B, n_actions)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(obs_size, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_actions)
    )


def td_target(reward, terminated, next_q, gamma=0.99):
    """r + gamma * max_a' Q_target(s', a'), with no bootstrap after a terminal state."""
    return reward + gamma * (1.0 - terminated) * next_q


def train(
    env,
    total_steps: int,
    seed: int,
    gamma: float = 0.99,
    lr: float = 1e-3,
    batch_size: int = 64,
    learning_starts: int = 100,
    target_sync: int = 100,
    exploration_fraction: float = 0.3,
    epsilon_end: float = 0.05,
) -> nn.Module:
    """Train on `env` (a gymnasium env or its registered id) for `total_steps`; return the Q-network."""
    torch.set_num_threads(1)
    env = gym.make(env) if isinstance(env, str) else env
    rng = np.random.default_rng(seed)
    obs_shape, n_actions = env.observation_space.shape, int(env.action_space.n)
    with torch.random.fork_rng(devices=[]):  # the seed's own init stream
        torch.manual_seed(seed)
        q_net = make_q_network(int(np.prod(obs_shape)), n_actions)
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=lr)

    capacity = max(total_steps, 1)  # the whole run fits: no ring buffer needed at probe scale
    buf_obs = np.zeros((capacity, *obs_shape), np.float32)
    buf_next = np.zeros((capacity, *obs_shape), np.float32)
    buf_act = np.zeros(capacity, np.int64)
    buf_rew = np.zeros(capacity, np.float32)
    buf_term = np.zeros(capacity, np.float32)
    stored = 0
    updates = 0

    def learn() -> None:
        nonlocal updates
        idx = rng.integers(0, stored, size=batch_size)
        s, a, r = torch.from_numpy(buf_obs[idx]), torch.from_numpy(buf_act[idx]), torch.from_numpy(buf_rew[idx])
        s2, term = torch.from_numpy(buf_next[idx]), torch.from_numpy(buf_term[idx])
        with torch.no_grad():
            target = td_target(r, term, target_net(s2).max(1).values, gamma)
        q_sa = q_net(s).gather(1, a[:, None]).squeeze(1)
        loss = F.mse_loss(q_sa, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        updates += 1
        if updates % target_sync == 0:
            target_net.load_state_dict(q_net.state_dict())

    epsilon = 1.0
    epsilon_step = (1.0 - epsilon_end) / max(int(exploration_fraction * total_steps), 1)
    obs, _ = env.reset(seed=seed)
    for _ in range(total_steps):
        if rng.random() < epsilon:
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(q_net(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax(1).item())
        epsilon = max(epsilon_end, epsilon - epsilon_step)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buf_obs[stored], buf_act[stored], buf_rew[stored] = obs, action, reward
        buf_next[stored], buf_term[stored] = next_obs, terminated
        stored += 1
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if stored >= learning_starts:
            learn()
    q_net.gamma = gamma
    return q_net
