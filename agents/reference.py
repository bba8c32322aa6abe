"""An independent textbook DQN (torch.nn, torch.optim.Adam, gymnasium.make; one seed).

It shares nothing with the engine but the documented random-stream protocol of
agents.seeding: which generator feeds network init, exploration, replay sampling and env
resets, and how each draw is consumed. Everything else is written the plain way, so the
differential tests catch any deviation of the batched engine.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.config import AgentConfig
from agents.seeding import seed_streams


def make_q_network(
    obs_dim: int, hidden: tuple[int, ...], num_actions: int, generator: torch.Generator, layer_norm: bool = False
) -> nn.Sequential:
    layers: list[nn.Module] = []
    sizes = [obs_dim, *hidden, num_actions]
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        bound = 1.0 / fan_in**0.5
        nn.init.uniform_(linear.weight, -bound, bound, generator=generator)
        nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
        layers.append(linear)
        if i < len(sizes) - 2:
            if layer_norm:
                layers.append(nn.LayerNorm(fan_out, elementwise_affine=False))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def run_textbook(config: AgentConfig, seed: int, steps: int) -> tuple[list[int], list[float], nn.Module]:
    """Train one seed for `steps` env steps; return the actions taken, the losses and the network."""
    streams = seed_streams(seed)
    env = gym.make(config.env_id)
    obs_dim = env.observation_space.shape[0]
    num_actions = env.action_space.n
    q_net = make_q_network(obs_dim, config.hidden_sizes, num_actions, streams.init, config.layer_norm)
    target_net = copy.deepcopy(q_net) if config.target_network != "none" else None
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)

    capacity = config.replay_capacity or 1
    buf_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
    buf_next = np.zeros((capacity, obs_dim), dtype=np.float32)
    buf_action = np.zeros(capacity, dtype=np.int64)
    buf_reward = np.zeros(capacity, dtype=np.float32)
    buf_term = np.zeros(capacity, dtype=np.float32)
    buf_trunc = np.zeros(capacity, dtype=np.float32)
    size = position = 0

    actions, losses = [], []
    updates = 0
    previous_terminated = False
    obs, _ = env.reset(seed=streams.env_reset_seed)
    for t in range(steps):
        u = streams.explore.random(2)
        if u[0] < epsilon_at(config, t):
            action = int(u[1] * num_actions)
        else:
            with torch.no_grad():
                action = int(q_net(torch.as_tensor(obs).unsqueeze(0)).argmax(1).item())
        actions.append(action)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buf_obs[position], buf_next[position], buf_action[position] = obs, next_obs, action
        stored_terminated = terminated
        if config.bug_terminal_shift:
            stored_terminated, previous_terminated = previous_terminated, terminated
        buf_reward[position], buf_term[position], buf_trunc[position] = reward, stored_terminated, truncated
        position = (position + 1) % capacity
        size = min(size + 1, capacity)

        if t + 1 >= config.learning_starts and (t + 1) % config.env_steps_per_update == 0:
            if config.replay_capacity is None:
                idx = np.array([0])
            else:
                idx = (streams.replay.random(config.batch_size) * size).astype(np.int64)
            states = torch.as_tensor(buf_obs[idx])
            last, returns, discounts = n_step_windows(config, idx, buf_reward, buf_term, buf_trunc, position)
            done = np.zeros(len(idx), dtype=np.float32)
            if config.terminal_masking:
                done = np.maximum(done, buf_term[last])
            if not config.bootstrap_on_truncation:
                done = np.maximum(done, buf_trunc[last])
            loss = td_loss(
                config,
                q_net,
                target_net,
                states,
                buf_action[idx],
                returns,
                torch.as_tensor(buf_next[last]),
                done,
                discounts,
            )
            if not config.bug_no_zero_grad:
                optimizer.zero_grad()
            loss.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
            optimizer.step()
            losses.append(loss.item())
            updates += 1
            if config.bug_stale_target:
                pass  # the target keeps its first copy
            elif config.target_network == "hard" and updates % config.target_sync_period == 0:
                target_net.load_state_dict(q_net.state_dict())
            elif config.target_network == "polyak":
                with torch.no_grad():
                    for tp, op in zip(target_net.parameters(), q_net.parameters()):
                        tp.mul_(1 - config.target_tau).add_(op, alpha=config.target_tau)

        obs = env.reset()[0] if (terminated or truncated) else next_obs
    env.close()
    return actions, losses, q_net


def epsilon_at(config: AgentConfig, t: int) -> float:
    """The behaviour policy's epsilon at env step t: linear decay, then constant."""
    if config.bug_epsilon_at_end or t >= config.epsilon_decay_steps:
        return config.epsilon_end  # bug_epsilon_at_end skips the decay
    frac = t / config.epsilon_decay_steps
    return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)


def n_step_windows(config: AgentConfig, idx, buf_reward, buf_term, buf_trunc, position):
    """Multi-step windows, one sample at a time: follow the slots in insertion order until n
    steps, the episode's end or the newest transition; the last slot gives s' and done.
    Returns (last slot, discounted return, gamma^n) per sample."""
    capacity = len(buf_reward)
    last = idx.copy()
    returns = buf_reward[idx].copy()
    discounts = np.full(len(idx), np.float32(config.gamma), dtype=np.float32)
    newest = (position - 1) % capacity
    for b, i in enumerate(idx):
        for j in range(1, config.n_step):
            if buf_term[last[b]] or buf_trunc[last[b]] or j > (newest - i) % capacity:
                break
            slot = (i + j) % capacity
            returns[b] = np.float32(returns[b] + discounts[b] * buf_reward[slot])
            discounts[b] = np.float32(discounts[b] * np.float32(config.gamma))
            last[b] = slot
    return last, returns, discounts


def td_loss(config: AgentConfig, q_net, target_net, states, taken_actions, returns, next_states, done, discounts):
    """The TD loss of one batch: Q(s, a) against r + gamma^n * bootstrap(s') * (1 - done)."""
    # The semi-gradient detaches the target; bug_target_gradient forgets to.
    with torch.set_grad_enabled(config.bug_target_gradient):
        evaluator = target_net if target_net is not None else q_net
        if config.double_q:
            best = q_net(next_states).argmax(1, keepdim=True)
            bootstrap = evaluator(next_states).gather(1, best).squeeze(1)
        else:
            bootstrap = evaluator(next_states).max(1)[0]
        gamma = config.gamma if config.n_step == 1 else torch.as_tensor(discounts)
        targets = torch.as_tensor(returns) + gamma * bootstrap * (1 - torch.as_tensor(done))
    q_values = q_net(states)
    taken = q_values.argmax(1) if config.bug_greedy_gather else torch.as_tensor(taken_actions)
    predictions = q_values[torch.arange(len(states)), taken]
    if config.loss == "mse":
        return F.mse_loss(predictions, targets)
    return F.huber_loss(predictions, targets, delta=1.0)
