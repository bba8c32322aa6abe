"""The DQN update (Mnih et al. 2015): Bellman targets (bellman.py) of a sampled batch (replay.py),
the loss, its gradients by hand, clipping, then the Adam step.

Every function works on the seed axis first: (K, B) for a batch of B transitions per seed. The
floating-point operations run in the order the textbook DQN (agents/textbook/reference.py) runs them, so
each seed's losses match it bit for bit (tests/test_differential.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agents.engine.bellman import batch_targets
from agents.engine.bughooks import BugHooks
from agents.engine.family import SeedKnobs
from agents.engine.networks import (
    BatchedAdam,
    MLPParams,
    backward,
    clip_grads_,
    forward_with_activations,
    global_grad_norm,
)


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
