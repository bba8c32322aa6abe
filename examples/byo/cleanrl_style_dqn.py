"""A CleanRL-style single-file DQN, made probe-able with a few lines.

Written the way CleanRL's `dqn.py` is laid out (an `Args` dataclass filled from the command line,
a `make_env` thunk for a vector env, the training loop in the script body), for gymnasium 1.x:
the vector env resets in the same step, so the true last observation of a finished episode
comes from `infos["final_obs"]`, and only `terminations` go into the replay mask. CleanRL seeds
Python's, numpy's and torch's global generators and uses SB3's replay buffer; this version uses
one numpy Generator and a forked torch stream per seed instead.

The lines added to make it probe-able are marked `# PROBE` (a dozen lines):
1. `make_env` accepts an env object as well as an id (the probes hand over their env);
2. the line `if __name__ == "__main__":` became `def run(args, env=None):` so the loop body,
   already indented under it, is unchanged;
3. `train(env, total_steps, seed)` fills `Args` for a short run and calls `run`;
4. a new `if __name__ == "__main__":` block keeps the command line working.

    python examples/byo/cleanrl_style_dqn.py --env-id CartPole-v1 --total-timesteps 50000
    python -m ablations probe examples/byo/cleanrl_style_dqn.py:train
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

EXPECTED_CAUSE = None  # PROBE: no bug, passes every probe (for dqn-ablations probe-table)


@dataclass
class Args:
    exp_name: str = "cleanrl_style_dqn"
    seed: int = 1
    env_id: str = "CartPole-v1"
    total_timesteps: int = 500_000
    learning_rate: float = 2.5e-4
    buffer_size: int = 10_000
    gamma: float = 0.99
    tau: float = 1.0
    target_network_frequency: int = 500
    batch_size: int = 128
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.5
    learning_starts: int = 10_000
    train_frequency: int = 10


def parse_args() -> Args:
    parser = argparse.ArgumentParser()
    for field in dataclasses.fields(Args):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    return Args(**vars(parser.parse_args()))


def make_env(env_id, seed):
    def thunk():
        env = env_id if isinstance(env_id, gym.Env) else gym.make(env_id)  # PROBE: accept an env object
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, env):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(int(np.prod(env.single_observation_space.shape)), 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, env.single_action_space.n),
        )

    def forward(self, x):
        return self.network(x.flatten(1).float())


def linear_schedule(start_e: float, end_e: float, duration: int, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


class ReplayBuffer:
    """Uniform replay over (obs, next_obs, action, reward, termination), one numpy Generator per seed."""

    def __init__(self, size, obs_shape, rng):
        self.obs = np.zeros((size, *obs_shape), np.float32)
        self.next_obs = np.zeros((size, *obs_shape), np.float32)
        self.actions = np.zeros(size, np.int64)
        self.rewards = np.zeros(size, np.float32)
        self.dones = np.zeros(size, np.float32)
        self.size, self.pos, self.full, self.rng = size, 0, False, rng

    def add(self, obs, next_obs, action, reward, done):
        self.obs[self.pos], self.next_obs[self.pos], self.actions[self.pos] = obs, next_obs, action
        self.rewards[self.pos], self.dones[self.pos] = reward, done
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def sample(self, batch_size):
        idx = self.rng.integers(0, self.size if self.full else self.pos, size=batch_size)
        return tuple(
            torch.from_numpy(a[idx]) for a in (self.obs, self.next_obs, self.actions, self.rewards, self.dones)
        )


def run(args: Args, env=None):  # PROBE: was `if __name__ == "__main__":`; the body below stays as it was
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)

    envs = gym.vector.SyncVectorEnv(
        [make_env(env if env is not None else args.env_id, args.seed)],  # PROBE: was make_env(args.env_id, ...)
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"

    with torch.random.fork_rng(devices=[]):  # the seed's own init stream; the global one is left alone
        torch.manual_seed(args.seed)
        q_network = QNetwork(envs)
        target_network = QNetwork(envs)
    optimizer = optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network.load_state_dict(q_network.state_dict())

    rb = ReplayBuffer(args.buffer_size, envs.single_observation_space.shape, rng)

    obs, _ = envs.reset(seed=args.seed)
    for global_step in range(args.total_timesteps):
        epsilon = linear_schedule(
            args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
        )
        if rng.random() < epsilon:
            actions = np.array([rng.integers(envs.single_action_space.n) for _ in range(envs.num_envs)])
        else:
            with torch.no_grad():
                q_values = q_network(torch.Tensor(obs))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        # the vector env already reset finished sub-envs: the real last observation is in infos
        real_next_obs = next_obs.copy()
        if "final_obs" in infos:
            for idx, finished in enumerate(infos["_final_obs"]):
                if finished:
                    real_next_obs[idx] = infos["final_obs"][idx]
        for idx in range(envs.num_envs):
            rb.add(obs[idx], real_next_obs[idx], actions[idx], rewards[idx], terminations[idx])

        obs = next_obs

        if global_step > args.learning_starts:
            if global_step % args.train_frequency == 0:
                data_obs, data_next_obs, data_actions, data_rewards, data_dones = rb.sample(args.batch_size)
                with torch.no_grad():
                    target_max, _ = target_network(data_next_obs).max(dim=1)
                    td_target = data_rewards + args.gamma * target_max * (1 - data_dones)
                old_val = q_network(data_obs).gather(1, data_actions[:, None]).squeeze(1)
                loss = F.mse_loss(td_target, old_val)

                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            if global_step % args.target_network_frequency == 0:
                for target_param, q_param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * q_param.data + (1.0 - args.tau) * target_param.data)

    envs.close()
    q_network.gamma = args.gamma  # PROBE: the discount the network was trained with
    return q_network  # PROBE: hand the network back


# PROBE: CleanRL's defaults are sized for 500k-step runs; the probes give a few thousand steps.
PROBE_RUN = Args(  # PROBE
    learning_rate=1e-3, learning_starts=100, train_frequency=1, target_network_frequency=100, batch_size=64
)  # PROBE


def train(env, total_steps: int, seed: int):  # PROBE: the probes' entry point
    args = dataclasses.replace(PROBE_RUN, seed=seed, total_timesteps=total_steps)  # PROBE
    if isinstance(env, str):  # PROBE: an id is built by make_env, as on the command line
        return run(dataclasses.replace(args, env_id=env))  # PROBE
    return run(args, env)  # PROBE


if __name__ == "__main__":  # PROBE: the command line still works
    run(parse_args())
