"""Other libraries' DQN configs as ours: Stable-Baselines3, rl-baselines3-zoo and CleanRL."""
