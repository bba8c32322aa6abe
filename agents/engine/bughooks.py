"""The injectable bugs of agents/catalogue/bugs.py as hooks on the engine's steps, each the identity when off.

A hook with its bug off for every seed returns its input untouched, so a bug-free run performs
exactly the textbook DQN's operations; on, it does what the buggy code does (per seed in a
family, with torch.where), in the order the buggy textbook DQN does it (agents/textbook/reference.py).
"""

from __future__ import annotations

import torch

from agents.engine.bellman import bootstrap_mask
from agents.engine.family import SeedKnobs
from agents.engine.networks import MLPParams, backward, forward_with_activations


def per_seed_where(switch, buggy: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """A bug switch applied per seed: `buggy` where it is on, `correct` elsewhere."""
    if switch is True:
        return buggy
    if switch is False:
        return correct
    return torch.where(switch.view(-1, *([1] * (correct.dim() - 1))), buggy, correct)


def target_gradient(knobs: SeedKnobs, online: MLPParams, batch: dict, grad_prediction: torch.Tensor) -> list:
    """bug_target_gradient: the gradient that flows through an undetached target
    y = r + gamma * (1 - mask) * max_a Q(s', a) into the online network, as autograd computes
    it: dL/dy = -dL/dQ(s, a) exactly, then through (1 - mask), gamma and the max."""
    acts_next = forward_with_activations(online, batch["next_obs"])
    best = acts_next[-1].argmax(2, keepdim=True)
    keep = 1.0 - bootstrap_mask(knobs, batch["terminated"], batch["truncated"]).float()
    discount = batch.get("discount", knobs.gamma)
    grad_bootstrap = (-grad_prediction * keep) * discount
    grad_q_next = torch.zeros_like(acts_next[-1]).scatter_(2, best, grad_bootstrap.unsqueeze(2))
    return backward(online, acts_next, grad_q_next)


class BugHooks:
    """The bugs a run's seeds switch on, and the state two of them carry between steps."""

    def __init__(self, knobs: SeedKnobs):
        self.knobs = knobs
        self.previous_terminated: torch.Tensor | None = None  # bug_terminal_shift
        self.last_gradient: list | None = None  # bug_no_zero_grad: the last update's (clipped) gradient

    def stored_terminated(self, terminated: torch.Tensor) -> torch.Tensor:
        """bug_terminal_shift: the flag stored with a transition is the previous step's, so the real
        last transition looks non-terminal and the first of the next episode terminal."""
        if self.knobs.bug_terminal_shift is False:
            return terminated
        previous = torch.zeros_like(terminated) if self.previous_terminated is None else self.previous_terminated
        self.previous_terminated = terminated
        return per_seed_where(self.knobs.bug_terminal_shift, previous, terminated)

    def gathered_action(self, q: torch.Tensor, taken: torch.Tensor) -> torch.Tensor:
        """bug_greedy_gather: Q(s, a) is read at the greedy action instead of the one taken."""
        if self.knobs.bug_greedy_gather is False:
            return taken
        return per_seed_where(self.knobs.bug_greedy_gather, q.argmax(2, keepdim=True), taken)

    def extra_gradient(self, online: MLPParams, batch: dict, grad_prediction: torch.Tensor, grads: list) -> list:
        """The gradient the buggy code adds to the semi-gradient: through the undetached target
        (bug_target_gradient), and the last update's, never zeroed (bug_no_zero_grad)."""
        knobs = self.knobs
        if knobs.bug_target_gradient is not False:
            through_target = target_gradient(knobs, online, batch, grad_prediction)
            grads = [per_seed_where(knobs.bug_target_gradient, g + t, g) for g, t in zip(grads, through_target)]
        if knobs.bug_no_zero_grad is not False and self.last_gradient is not None:
            grads = [per_seed_where(knobs.bug_no_zero_grad, a + g, g) for a, g in zip(self.last_gradient, grads)]
        return grads

    def remember_gradient(self, grads: list) -> None:
        """Keep the gradient the optimizer steps with (after clipping) for bug_no_zero_grad."""
        if self.knobs.bug_no_zero_grad is not False:
            self.last_gradient = grads
