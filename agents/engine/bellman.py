"""Bellman targets and their masks (Mnih et al. 2015): y = r + gamma * (1 - mask) * bootstrap(s').

The mask is where a quirk of the article lives: example 1 never masks terminal states
(terminal_masking = false), and old-gym `done` masks the time limit as if it were terminal
(bootstrap_on_truncation = false). Shapes are (K, B): the seed axis first.
"""

from __future__ import annotations

import torch

from agents.engine.family import SeedKnobs
from agents.engine.networks import MLPParams, forward


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
