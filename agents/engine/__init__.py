"""The batched engine: K independent DQN agents (seeds) trained in lockstep in one process.

Read `loop.py` first (the training loop), then `update.py` (one gradient update) and
`bellman.py` (the targets and their masks). Everything in this folder, with agents/config.py,
agents/seeding.py and agents/envprofile.py, is the cache key (agents/results.py): the engine
imports nothing else from agents/ (tests/test_code_version.py).
"""

from agents.engine.loop import TrainingRecord, train, train_family

__all__ = ["TrainingRecord", "train", "train_family"]
