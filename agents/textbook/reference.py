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


class TextbookBuffer:
    """A ring buffer of transitions in numpy arrays (one slot without replay)."""

    def __init__(self, capacity: int, obs_dim: int):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.truncated = np.zeros(capacity, dtype=np.float32)
        self.size = self.position = 0

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        i = self.position
        self.obs[i], self.next_obs[i], self.action[i] = obs, next_obs, action
        self.reward[i], self.terminated[i], self.truncated[i] = reward, terminated, truncated
        self.position = (i + 1) % len(self.reward)
        self.size = min(self.size + 1, len(self.reward))


def run_textbook(config: AgentConfig, seed: int, steps: int) -> tuple[list[int], list[float], nn.Module]:
    """Train one seed for `steps` env steps; return the actions taken, the losses and the network."""
    streams = seed_streams(seed)
    env = gym.make(config.env_id)
    obs_dim, num_actions = env.observation_space.shape[0], env.action_space.n
    q_net = make_q_network(obs_dim, config.hidden_sizes, num_actions, streams.init, config.layer_norm)
    target_net = copy.deepcopy(q_net) if config.target_network != "none" else None
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
    buffer = TextbookBuffer(config.replay_capacity or 1, obs_dim)
    actions, losses = [], []
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
        stored_terminated = terminated
        if config.bug_terminal_shift:
            stored_terminated, previous_terminated = previous_terminated, terminated
        buffer.add(obs, action, reward, next_obs, stored_terminated, truncated)
        clock = step_clock(config, t)
        sync_target(config, "env_steps", clock, q_net, target_net)  # SB3: before the updates
        if clock >= config.learning_starts and clock % config.env_steps_per_update == 0:
            for _ in range(config.gradient_steps):
                losses.append(textbook_update(config, streams.replay, buffer, q_net, target_net, optimizer))
                sync_target(config, "updates", len(losses), q_net, target_net)
        sync_target(config, "env_steps_after_updates", clock, q_net, target_net)  # CleanRL: after
        obs = env.reset()[0] if (terminated or truncated) else next_obs
    env.close()
    return actions, losses, q_net


def textbook_update(config: AgentConfig, replay_rng, buffer: TextbookBuffer, q_net, target_net, optimizer) -> float:
    """One gradient update on a fresh batch (the latest transition without replay); its loss."""
    if config.replay_capacity is None:
        idx = np.array([0])
    else:
        idx = (replay_rng.random(config.batch_size) * buffer.size).astype(np.int64)
    last, returns, discounts = n_step_windows(
        config, idx, buffer.reward, buffer.terminated, buffer.truncated, buffer.position
    )
    done = np.zeros(len(idx), dtype=np.float32)
    if config.terminal_masking:
        done = np.maximum(done, buffer.terminated[last])
    if not config.bootstrap_on_truncation:
        done = np.maximum(done, buffer.truncated[last])
    states, next_states = torch.as_tensor(buffer.obs[idx]), torch.as_tensor(buffer.next_obs[last])
    loss = td_loss(config, q_net, target_net, states, buffer.action[idx], returns, next_states, done, discounts)
    if not config.bug_no_zero_grad:
        optimizer.zero_grad()
    loss.backward()
    if config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
    optimizer.step()
    return loss.item()


def sync_target(config: AgentConfig, unit: str, count: int, q_net, target_net) -> None:
    """The target rule at a count of `unit` (updates done, or the step clock): a hard copy or a
    Polyak average when the sync period counts that unit and divides the count."""
    if config.bug_stale_target or config.target_network == "none" or config.target_sync_unit != unit:
        return  # a stale target keeps its first copy
    if count % config.target_sync_period != 0:
        return
    if config.target_network == "hard":
        target_net.load_state_dict(q_net.state_dict())
    else:
        with torch.no_grad():
            for tp, op in zip(target_net.parameters(), q_net.parameters()):
                tp.mul_(1 - config.target_tau).add_(op, alpha=config.target_tau)


def step_clock(config: AgentConfig, t: int) -> int:
    """The clock after env step t: the number of steps taken (SB3) or t itself (CleanRL)."""
    return t + 1 if config.step_clock == "steps_taken" else t


def epsilon_at(config: AgentConfig, t: int) -> float:
    """The behaviour policy's epsilon at env step t: 1 in a random warm-up, then linear decay,
    then constant."""
    if config.random_warmup and step_clock(config, t) < config.learning_starts:
        return 1.0  # SB3 samples the action space until learning starts
    if config.epsilon_decay_fraction is not None:
        decay = config.epsilon_decay_fraction * config.total_env_steps
    else:
        decay = config.epsilon_decay_steps
    if config.bug_epsilon_at_end or t >= decay:
        return config.epsilon_end  # bug_epsilon_at_end skips the decay
    frac = t / decay
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
