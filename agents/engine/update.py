"""The DQN update (Mnih et al. 2015): sample a batch, Bellman targets, loss, gradients, Adam step.

Every function works on the seed axis first: (K, B) for a batch of B transitions per seed. The
floating-point operations run in the order the textbook DQN (agents/textbook/reference.py) runs them, so
each seed's losses match it bit for bit (tests/test_differential.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from agents.engine.family import SeedKnobs
from agents.engine.networks import (
    BatchedAdam,
    MLPParams,
    backward,
    clip_grads_,
    forward,
    forward_with_activations,
    global_grad_norm,
)
from agents.engine.replay import ReplayBuffer, UniformBlocks

if TYPE_CHECKING:  # agents.engine.bughooks reads bootstrap_mask from here
    from agents.engine.bughooks import BugHooks


def td_targets(
    knobs: SeedKnobs,
    online: MLPParams,
    target: MLPParams | None,
    reward: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    discount: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bellman targets y = r + gamma * (1 - mask) * bootstrap(s'), shape (K, B).

    With multi-step returns (n_step_batch), r is the discounted sum of the window's rewards,
    s' the state after its last transition and `discount` gamma^m for a window of m steps.

    bootstrap(s') = max_a Q_eval(s', a), where Q_eval is the target network if there is one
    and the online network otherwise (in a family, seeds without a target network keep their
    target equal to the online network); with double_q the online network picks the action and
    the target network values it. mask is 1 on terminated transitions when terminal_masking
    is on, and on truncated ones when bootstrap_on_truncation is off (old-gym `done`).
    """
    with torch.no_grad():
        q_next = forward(target if target is not None else online, next_obs)
        bootstrap = q_next.max(2).values
        if knobs.double_q is True or torch.is_tensor(knobs.double_q):
            best = forward(online, next_obs).argmax(2, keepdim=True)
            chosen = q_next.gather(2, best).squeeze(2)
            bootstrap = chosen if knobs.double_q is True else torch.where(knobs.double_q, chosen, bootstrap)
        mask = bootstrap_mask(knobs, terminated, truncated)
        # Same operation order as the textbook: r + (gamma * bootstrap) * (1 - mask).
        return reward + (knobs.gamma if discount is None else discount) * bootstrap * (1.0 - mask.float())


def batch_targets(knobs: SeedKnobs, online: MLPParams, target: MLPParams | None, batch: dict) -> torch.Tensor:
    """td_targets of a sampled batch (one- or multi-step)."""
    return td_targets(
        knobs,
        online,
        target,
        batch["reward"],
        batch["next_obs"],
        batch["terminated"],
        batch["truncated"],
        batch.get("discount"),
    )


def bootstrap_mask(knobs: SeedKnobs, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """Where the target drops its bootstrap term: terminated transitions with terminal masking,
    truncated ones with old-gym done."""
    mask = torch.zeros_like(terminated)
    for switch, flags in ((knobs.mask_terminated, terminated), (knobs.mask_truncated, truncated)):
        if switch is True:
            mask = mask | flags
        elif torch.is_tensor(switch):
            mask = mask | (flags & switch)
    return mask


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


def loss_and_grad(knobs: SeedKnobs, prediction: torch.Tensor, target: torch.Tensor):
    """Per-seed mean loss (K,) and dLoss/dprediction (K, B), as F.mse_loss / F.huber_loss do."""
    diff = prediction - target
    n = prediction.shape[1]
    if knobs.huber is False:
        return (diff * diff).mean(1), (2.0 / n) * diff
    abs_diff = diff.abs()
    # Huber with delta = 1 (smooth L1): quadratic inside |x| < 1, linear outside.
    huber = torch.where(abs_diff < 1.0, 0.5 * diff * diff, abs_diff - 0.5).mean(1), (1.0 / n) * diff.clamp(-1.0, 1.0)
    if knobs.huber is True:
        return huber
    mse = (diff * diff).mean(1), (2.0 / n) * diff
    return torch.where(knobs.huber.view(-1), huber[0], mse[0]), torch.where(knobs.huber, huber[1], mse[1])


@dataclass(frozen=True)
class UpdateResult:
    """What one gradient update saw and did, per seed (for the recorder)."""

    td_target: torch.Tensor  # (K, B) y, before the update
    prediction: torch.Tensor  # (K, B) Q(s, a) before the update
    loss: torch.Tensor  # (K,)
    grad_norm: torch.Tensor  # (K,) before clipping

    @property
    def finite(self) -> np.ndarray:
        """Seeds whose loss and gradient stayed finite (K,)."""
        return (torch.isfinite(self.loss) & torch.isfinite(self.grad_norm)).cpu().numpy()


def gradient_step(
    knobs: SeedKnobs,
    bugs: BugHooks,
    online: MLPParams,
    target: MLPParams | None,
    optimizer: BatchedAdam,
    batch: dict,
) -> UpdateResult:
    """One semi-gradient step on the TD loss: y is held fixed (no gradient through the target),
    L = loss(Q(s, a), y), optionally clipped to max_grad_norm, then Adam."""
    y = batch_targets(knobs, online, target, batch)
    acts = forward_with_activations(online, batch["obs"])
    q = acts[-1]
    action_index = bugs.gathered_action(q, batch["action"].unsqueeze(2))
    prediction = q.gather(2, action_index).squeeze(2)
    loss, grad_prediction = loss_and_grad(knobs, prediction, y)
    grad_q = torch.zeros_like(q).scatter_(2, action_index, grad_prediction.unsqueeze(2))
    grads = backward(online, acts, grad_q)
    grads = bugs.extra_gradient(online, batch, grad_prediction, grads)
    grad_norm = global_grad_norm(grads)
    if knobs.max_grad_norm is not None:
        clip_grads_(grads, grad_norm, knobs.max_grad_norm)
    bugs.remember_gradient(grads)
    optimizer.step(grads)
    return UpdateResult(y, prediction.detach(), loss, grad_norm)
