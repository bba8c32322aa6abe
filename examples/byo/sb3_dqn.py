"""A user's Stable-Baselines3 DQN script, exposing `train` for the probes.

SB3's DQN already keeps terminated and truncated apart (its replay buffer reads
`TimeLimit.truncated` and bootstraps through time limits), copies a target network and decays
epsilon linearly; the only choices here are hyperparameters small enough for the probes'
budget of a few thousand steps (SB3's defaults wait 100 steps, train every 4th step and sync
the target every 10 000 steps, sized for long runs). SB3 seeds its own global random streams
from `seed` (`set_random_seed`), so two runs with one seed match.

Expected on the probe battery: PASS every probe.

    python -m ablations probe examples/byo/sb3_dqn.py:train
"""

from __future__ import annotations

import torch
from stable_baselines3 import DQN

EXPECTED_CAUSE = None  # no bug: passes every probe


def train(env, total_steps: int, seed: int, gamma: float = 0.99) -> DQN:
    """Train SB3's DQN on `env` (a gymnasium env or its registered id); return the model."""
    torch.set_num_threads(1)
    model = DQN(
        "MlpPolicy",
        env,  # SB3 accepts an env object or an id and calls gym.make itself
        learning_rate=1e-3,
        buffer_size=max(total_steps, 1_000),
        learning_starts=100,
        batch_size=64,
        gamma=gamma,
        train_freq=1,
        gradient_steps=1,
        target_update_interval=100,
        exploration_fraction=0.3,
        exploration_final_eps=0.05,
        policy_kwargs={"net_arch": [64, 64]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=total_steps)
    return model
