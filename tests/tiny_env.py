"""A tiny env a user might register: importing this module registers TinyChain-v0 (no reward
threshold, no known reward bound), so tests can use the id "tests.tiny_env:TinyChain-v0"."""

import gymnasium as gym
import numpy as np


class TinyChain(gym.Env):
    """Walk right along a chain of 6 cells; reward 2 at the right end, 0 elsewhere."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self):
        return np.array([self.position / 5.0, 1.0], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action):
        self.position = max(0, min(5, self.position + (1 if action == 1 else -1)))
        done = self.position == 5
        return self._obs(), 2.0 if done else 0.0, done, False, {}


if "TinyChain-v0" not in gym.registry:
    gym.register(id="TinyChain-v0", entry_point=TinyChain, max_episode_steps=20)
