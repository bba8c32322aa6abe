"""Symptoms on tiny exact frames: each fires on the runs that show it and not on a healthy one."""

import numpy as np
import pandas as pd
import pytest

from agents.envprofile import env_profile
from reports.diagnosis.symptoms import symptoms

PROFILE = env_profile("CartPole-v1")  # max|r| = 1: the bound is 1 / (1 - 0.99) * 1.1 = 110
STEPS = np.arange(1, 11) * 1_000


def frame(seeds=3, **columns) -> pd.DataFrame:
    """Ten checkpoints per seed of a healthy run (learns to 500, small values), with columns
    replaced by a value, a per-checkpoint list, or a function of (seed, checkpoint index)."""
    rows = []
    for seed in range(seeds):
        for i, step in enumerate(STEPS):
            row = {
                "variant": "mine",
                "seed": seed,
                "env_step": int(step),
                "gradient_updates": int(step - 64),
                "epsilon": max(0.05, 1.0 - step / 5_000),
                "eval_return": 50.0 * (i + 1),
                "eval_return_std": 10.0,
                "max_abs_q": 50.0,
                "grad_norm": 1.0,
                "diverged": False,
                "diverged_step": np.nan,
                "max_abs_reward_seen": 1.0,
                "td_target_var": 1.0,
                "td_error_var": 1.0,
                "state_autocorrelation": 0.5,
            }
            for name, value in columns.items():
                row[name] = value(seed, i) if callable(value) else value
            rows.append(row)
    return pd.DataFrame(rows)


def names(checkpoints) -> list[str]:
    return [s.name for s in symptoms(checkpoints, PROFILE, 0.99)]


def test_a_healthy_run_has_no_symptom():
    assert names(frame()) == []


def test_no_update_counts_the_seeds_and_says_so():
    found = symptoms(frame(gradient_updates=0), PROFILE, 0.99)[0]
    assert found.name == "no-update" and (found.seeds, found.of) == (3, 3)
    assert "0 updates in 10,000 env steps" in found.sentence


def test_random_behaviour_needs_epsilon_high_for_most_checkpoints():
    assert names(frame(epsilon=1.0))[0] == "random-behaviour"
    # High for exactly half the checkpoints is not "most of training".
    assert "random-behaviour" not in names(frame(epsilon=lambda s, i: 1.0 if i < 5 else 0.05))
    assert "random-behaviour" in names(frame(epsilon=lambda s, i: 1.0 if i < 6 else 0.05))


def test_a_constant_greedy_policy_is_identical_late_episodes():
    assert "constant-greedy-policy" in names(frame(eval_return=9.0, eval_return_std=0.0))
    assert "constant-greedy-policy" not in names(frame(eval_return=9.0, eval_return_std=0.5))


def test_soft_divergence_is_sustained_late_values_above_the_bound():
    found = {s.name: s for s in symptoms(frame(max_abs_q=lambda s, i: 50.0 * (i + 1)), PROFILE, 0.99)}
    assert found["soft-divergence"].evidence["bound"] == pytest.approx(110.0)
    # A peak above the bound that came back is a transient, not a state.
    assert "soft-divergence" not in names(frame(max_abs_q=lambda s, i: 500.0 if i == 4 else 50.0))


def test_hard_divergence_names_the_first_step_and_fires_on_one_seed():
    def hard(seed, i):
        return seed == 1 and i >= 3

    checkpoints = frame(diverged=hard, diverged_step=lambda s, i: 3_500.0 if hard(s, i) else np.nan)
    checkpoints.loc[checkpoints["diverged"], ["eval_return", "max_abs_q"]] = np.nan
    found = {s.name: s for s in symptoms(checkpoints, PROFILE, 0.99)}["hard-divergence"]
    assert (found.seeds, found.of) == (1, 3) and "env step 3,500" in found.sentence


def test_exploding_gradients_is_a_hundredfold_rise():
    assert "exploding-gradients" in names(frame(grad_norm=lambda s, i: 1.0 if i == 0 else 100.0))
    assert "exploding-gradients" not in names(frame(grad_norm=lambda s, i: 1.0 if i == 0 else 99.0))


def test_learned_then_collapsed_says_when():
    returns = [100, 300, 500, 500, 500, 200, 50, 20, 10, 10]
    found = {s.name: s for s in symptoms(frame(eval_return=lambda s, i: float(returns[i])), PROFILE, 0.99)}
    assert "around env step 3,000" in found["learned-then-collapsed"].sentence
