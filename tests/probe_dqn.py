"""A plain single-file PyTorch DQN, written as a user would, for the probe tests and benchmark.

`train` is correct; each `train_<bug>` carries one implementation bug of the kinds reported in
public issue threads, switched on by a flag, so the probes' cause mapping can be tested on code
the engine did not write. Gymnasium's API; `train(env, total_steps, seed)` returns the online
network with a `gamma` attribute.
"""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import torch
import torch.nn as nn

GAMMA = 0.99


def _net(obs_dim: int, n_actions: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(obs_dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, n_actions))  # fmt: skip


def dqn(env, total_steps: int, seed: int, *, unmasked=False, time_limit_terminal=False, broadcast=False,
        drop_reset=False, target_is_online=False, no_bootstrap=False, gamma_twice=False, greedy_gather=False,
        no_learning=False, wrong_gamma=None):  # fmt: skip
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    n_actions = int(env.action_space.n)
    q_net = _net(obs_dim, n_actions)
    target = q_net if target_is_online else copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=1e-3)
    gamma = GAMMA if wrong_gamma is None else wrong_gamma
    size, capacity = 0, 10_000
    buf_obs = np.zeros((capacity, *env.observation_space.shape), dtype=np.float32)
    buf_next = np.zeros_like(buf_obs)
    buf_act = np.zeros(capacity, dtype=np.int64)
    buf_rew = np.zeros(capacity, dtype=np.float32)
    buf_done = np.zeros(capacity, dtype=np.float32)
    obs, _ = env.reset(seed=seed)
    for t in range(total_steps):
        epsilon = max(0.05, 1.0 - t / (0.3 * total_steps))
        if rng.random() < epsilon:
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(q_net(torch.as_tensor(obs[None])).argmax(1))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        i = size % capacity
        buf_obs[i], buf_act[i], buf_rew[i] = obs, action, reward
        buf_next[i] = obs if no_bootstrap else next_obs
        buf_done[i] = terminated or (truncated and time_limit_terminal)
        size += 1
        if terminated or truncated:
            reset_obs, _ = env.reset()
            obs = next_obs if drop_reset else reset_obs
        else:
            obs = next_obs
        if t >= 100 and not no_learning:
            idx = rng.integers(min(size, capacity), size=64)
            states, next_states = torch.as_tensor(buf_obs[idx]), torch.as_tensor(buf_next[idx])
            actions, rewards = torch.as_tensor(buf_act[idx]), torch.as_tensor(buf_rew[idx])
            done = torch.as_tensor(buf_done[idx])
            q_all = q_net(states)
            if greedy_gather:
                q = q_all.gather(1, q_all.argmax(1, keepdim=True))
            else:
                q = q_all.gather(1, actions[:, None])
            if not broadcast:
                q = q.squeeze(1)
            with torch.no_grad():
                keep = torch.ones_like(done) if unmasked else 1.0 - done
                discount = gamma * gamma if gamma_twice else gamma
                y = rewards + discount * keep * target(next_states).max(1).values
            loss = ((q - y) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if t % 100 == 0 and not target_is_online:
            target.load_state_dict(q_net.state_dict())
    q_net.gamma = GAMMA
    return q_net


def train(env, total_steps: int, seed: int):
    return dqn(env, total_steps, seed)


BUGS = (
    "unmasked",
    "time_limit_terminal",
    "broadcast",
    "drop_reset",
    "target_is_online",
    "no_bootstrap",
    "gamma_twice",
    "greedy_gather",
    "no_learning",
)
for _bug in BUGS:
    globals()[f"train_{_bug}"] = partial(dqn, **{_bug: True})
train_wrong_gamma = partial(dqn, wrong_gamma=0.8)
