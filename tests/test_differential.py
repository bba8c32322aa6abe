"""The batched engine against an independent textbook DQN (agents/textbook/reference.py), seed for seed."""

import numpy as np
import pandas as pd
import pytest

from agents.catalogue.presets import get_variant
from agents.engine.loop import train
from agents.textbook.reference import run_textbook

STEPS = 2_000


def engine_trace(config, seeds):
    record = train(config.replace(total_env_steps=STEPS, eval_episodes=0, eval_period=500), seeds, trace=True)
    return record


CASES = {
    "article-naive": get_variant("article-naive").config,
    "article-target": get_variant("article-target").config,
    "replay-target-double": get_variant("replay-target-double").config,
    "replay-polyak": get_variant("replay-polyak").config,
    # Clipping at 0.1 is active on nearly every update, so the clip path itself is compared.
    "huber-clip-active": get_variant("replay-target-huber-clip").config.replace(max_grad_norm=0.1),
    "mse-clip-active": get_variant("article-target").config.replace(max_grad_norm=0.1),
    # Multi-step returns: windows stop at episode ends and at the newest transition; a small
    # buffer wraps around many times, old-gym done masks the truncations inside windows.
    "n-step-3": get_variant("article-target").config.replace(n_step=3),
    "n-step-5-small-buffer-old-gym": get_variant("article-target").config.replace(n_step=5, replay_capacity=100),
    "n-step-4-no-target-bootstrap-truncation": get_variant("article-replay").config.replace(
        n_step=4, bootstrap_on_truncation=True
    ),
    # LayerNorm after every hidden layer, with and without a target network.
    "layer-norm-no-target": get_variant("article-replay").config.replace(layer_norm=True),
    "layer-norm-target-huber-clip-active": get_variant("replay-target-huber-clip").config.replace(
        layer_norm=True, max_grad_norm=0.1
    ),
    # Injected bugs (agents/catalogue/bugs.py): each must stay exact, above all those that change the gradient.
    "bug-target-gradient": get_variant("article-replay").config.replace(bug_target_gradient=True),
    "bug-target-gradient-unmasked-clip": get_variant("article-naive").config.replace(
        bug_target_gradient=True, max_grad_norm=0.1
    ),
    "bug-target-gradient-n-step-huber": get_variant("article-replay").config.replace(
        bug_target_gradient=True, n_step=3, loss="huber"
    ),
    "bug-greedy-gather": get_variant("article-target").config.replace(bug_greedy_gather=True),
    "bug-no-zero-grad-clip": get_variant("article-target").config.replace(bug_no_zero_grad=True, max_grad_norm=0.1),
    "bug-stale-target": get_variant("article-target").config.replace(bug_stale_target=True),
    "bug-stale-polyak": get_variant("replay-polyak").config.replace(bug_stale_target=True),
    "bug-terminal-shift": get_variant("article-target").config.replace(bug_terminal_shift=True),
    "bug-epsilon-at-end": get_variant("article-target").config.replace(
        epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=1_000, bug_epsilon_at_end=True
    ),
    # Stable-Baselines3's schedule: a random warm-up, then bursts of gradient steps every 8 env
    # steps; the hard target synced every 24 env steps before the burst; Huber, clip at 10.
    "sb3-bursts-env-step-sync": get_variant("article-target").config.replace(
        env_steps_per_update=8,
        gradient_steps=4,
        target_sync_unit="env_steps",
        target_sync_period=24,
        loss="huber",
        max_grad_norm=0.1,
        random_warmup=True,
        learning_starts=101,
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=0.1,
    ),
    # CleanRL's: the step-index clock, an update every 10 steps, the sync after it (every 50).
    "cleanrl-clock-sync-after-update": get_variant("article-target").config.replace(
        step_clock="step_index",
        env_steps_per_update=10,
        gradient_steps=3,
        target_sync_unit="env_steps_after_updates",
        target_sync_period=50,
        learning_starts=101,
        epsilon_start=1.0,
        epsilon_end=0.05,
        epsilon_decay_fraction=0.5,
        hidden_sizes=(120, 84),
    ),
    # A Polyak average on an interval: SB3's tau < 1 (every 12 env steps, before the burst) and
    # CleanRL's (every 30 steps, after the update), and one every 3 updates.
    "sb3-polyak-every-12-env-steps": get_variant("replay-polyak").config.replace(
        env_steps_per_update=4, gradient_steps=4, target_sync_unit="env_steps", target_sync_period=12, target_tau=0.3
    ),
    "cleanrl-polyak-after-update": get_variant("replay-polyak").config.replace(
        step_clock="step_index",
        env_steps_per_update=10,
        gradient_steps=3,
        target_sync_unit="env_steps_after_updates",
        target_sync_period=30,
        target_tau=0.5,
    ),
    "polyak-every-3-updates": get_variant("replay-polyak").config.replace(target_sync_period=3, target_tau=0.2),
    "decaying-epsilon-every-4-steps": get_variant("article-target").config.replace(
        epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=1_000, env_steps_per_update=4, learning_starts=200
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_engine_matches_textbook_bit_for_bit(case):
    """Same actions at every env step and bit-identical losses at every update."""
    config = CASES[case]
    record = engine_trace(config, [7])
    ref_actions, ref_losses, _ = run_textbook(config.replace(total_env_steps=STEPS), 7, STEPS)
    assert record.trace_actions[:, 0].tolist() == ref_actions
    assert len(ref_losses) >= 400
    np.testing.assert_array_equal(record.trace_losses[:, 0], np.asarray(ref_losses, dtype=np.float32))
    if config.max_grad_norm is not None:
        grad_norms = pd.DataFrame(record.checkpoints)["grad_norm"]
        assert (grad_norms > config.max_grad_norm).all(), "clipping was not exercised"


def test_engine_matches_textbook_inside_a_batch():
    """The textbook seed also matches when the engine trains it beside other seeds."""
    config = CASES["article-target"]
    record = engine_trace(config, [3, 7, 11])
    ref_actions, ref_losses, _ = run_textbook(config.replace(total_env_steps=STEPS), 7, STEPS)
    assert record.trace_actions[:, 1].tolist() == ref_actions
    np.testing.assert_array_equal(record.trace_losses[:, 1], np.asarray(ref_losses, dtype=np.float32))


def test_the_env_step_sync_order_changes_the_losses():
    """Syncing before or after a step's updates is a real difference (a check that the two
    differential cases above exercise it, not a claim)."""
    before = CASES["sb3-bursts-env-step-sync"].replace(target_sync_period=16)
    after = before.replace(target_sync_unit="env_steps_after_updates")
    losses = [engine_trace(config, [7]).trace_losses[:, 0] for config in (before, after)]
    assert not np.array_equal(*losses)


def test_the_polyak_interval_changes_the_losses():
    """Averaging every update or every 3 is a real difference (the check behind the interval cases)."""
    every = CASES["replay-polyak"].replace(target_tau=0.2)
    losses = [engine_trace(c, [7]).trace_losses[:, 0] for c in (every, CASES["polyak-every-3-updates"])]
    assert not np.array_equal(*losses)
