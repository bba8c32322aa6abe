"""The yardsticks the engine is held to: an independent textbook DQN (reference.py, read it first),
the article's training loop as its readers write it (article_loop.py), the throughput bench, and
the lockstep against Stable-Baselines3's own DQN (lockstep.py, the `sb3` extra)."""
