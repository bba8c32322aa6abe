"""Old gym's API over a gymnasium env, for DQN code written before gymnasium (gym <= 0.25).

Old gym's semantics exactly: ``reset()`` returns the observation alone (``return_info=True``
adds the info, as gym 0.22-0.25 did); ``step`` returns ``(obs, reward, done, info)`` with
``done = terminated or truncated``; when an episode is cut by its time limit, info carries
``"TimeLimit.truncated"`` = not terminated (gym's TimeLimit wrapper set the key only when the
limit was reached, to ``not done`` of the env underneath), and the key is absent otherwise.
``seed(s)`` seeds the next reset, as old gym's ``env.seed`` did.
"""

from __future__ import annotations

import gymnasium as gym


class OldGymEnv(gym.Env):
    """A gymnasium env behind old gym's reset/step/seed (a gym.Env, so gymnasium.make can hold it)."""

    def __init__(self, env: gym.Env):
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.spec = getattr(env, "spec", None)
        self._next_seed: int | None = None

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._next_seed = seed
        return [seed]

    def reset(self, *, seed: int | None = None, options: dict | None = None, return_info: bool = False):
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        obs, info = self.env.reset(seed=seed, options=options)
        return (obs, info) if return_info else obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        if truncated:
            info["TimeLimit.truncated"] = not terminated
        return obs, reward, bool(terminated or truncated), info

    def close(self) -> None:
        self.env.close()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)
