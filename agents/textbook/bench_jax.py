"""A PureJaxRL-style DQN in JAX: the speed peer `dqn-ablations bench` measures beside the engine.

The whole training run is one jitted `lax.scan` over env steps, and the seeds are a `vmap` axis
over that function, so XLA compiles one program for all seeds (the structure PureJaxRL made
popular). It is set to the bench's config (article-target: CartPole-v1, 64-64 MLP, Adam, batch
64, buffer 10,000, one update per env step from step 64, a hard target copy every 100 updates,
epsilon 0.1) and is a yardstick for speed, not a reference for correctness: its random streams,
float32 physics and XLA arithmetic differ from the engine's.

CartPole-v1's physics are written here (gymnasium's equations, explicit Euler, the 500-step time
limit, reset in the step an episode ends) instead of importing gymnax: gymnax pulls in flax,
orbax and tensorstore and pins an older gymnasium than the suite's. Needs the `bench` extra
(`pip install "dqn-ablations[bench]"`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# One XLA thread, so a measurement is per core like the engine's (set before jax is imported).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402


@dataclass(frozen=True)
class PeerConfig:
    """The peer's hyperparameters; the defaults are the bench's article-target."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    learning_rate: float = 1e-3
    batch_size: int = 64
    replay_capacity: int = 10_000
    learning_starts: int = 64
    target_sync_period: int = 100  # gradient updates between hard copies
    epsilon: float = 0.1
    gamma: float = 0.99

    def __post_init__(self):
        if self.batch_size < 1 or self.replay_capacity < self.batch_size:
            raise ValueError(
                f"replay_capacity={self.replay_capacity} is invalid: must be >= batch_size={self.batch_size}"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon={self.epsilon} is invalid: must lie in [0, 1]")


# CartPole-v1 (gymnasium's CartPoleEnv, euler kinematics), in float32 as gymnax writes it.
OBS_DIM, NUM_ACTIONS, MAX_EPISODE_STEPS = 4, 2, 500
GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS, POLEMASS_LENGTH = MASSPOLE + MASSCART, MASSPOLE * LENGTH
THETA_THRESHOLD, X_THRESHOLD = 12 * 2 * jnp.pi / 360, 2.4


def cartpole_reset(key: jax.Array) -> jax.Array:
    return jax.random.uniform(key, (OBS_DIM,), minval=-0.05, maxval=0.05)


def cartpole_step(key: jax.Array, state: jax.Array, elapsed: jax.Array, action: jax.Array):
    """One step: (next_state, terminated, truncated, continue_state, continue_elapsed); the env
    continues from a fresh start state where the episode ended (the reward is always 1)."""
    x, x_dot, theta, theta_dot = state
    force = jnp.where(action == 1, FORCE_MAG, -FORCE_MAG)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * cos**2 / TOTAL_MASS))
    x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS
    next_state = jnp.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc])
    terminated = (jnp.abs(next_state[0]) > X_THRESHOLD) | (jnp.abs(next_state[2]) > THETA_THRESHOLD)
    truncated = ~terminated & (elapsed + 1 >= MAX_EPISODE_STEPS)
    done = terminated | truncated
    continue_state = jnp.where(done, cartpole_reset(key), next_state)
    return next_state, terminated, truncated, continue_state, jnp.where(done, 0, elapsed + 1)


def init_mlp(key: jax.Array, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
    """nn.Linear's init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); weights (in, out)."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, wkey, bkey = jax.random.split(key, 3)
        bound = 1.0 / fan_in**0.5
        layers.append(
            (
                jax.random.uniform(wkey, (fan_in, fan_out), minval=-bound, maxval=bound),
                jax.random.uniform(bkey, (fan_out,), minval=-bound, maxval=bound),
            )
        )
    return layers


def q_values(params, x: jax.Array) -> jax.Array:
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def make_train(config: PeerConfig, total_env_steps: int):
    """train(key) -> per-seed metrics; vmap it over keys for K seeds and jit the result."""
    sizes = [OBS_DIM, *config.hidden_sizes, NUM_ACTIONS]
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    capacity = config.replay_capacity

    def td_loss(params, target, batch):
        obs, action, reward, next_obs, done = batch
        bootstrap = q_values(target, next_obs).max(-1)
        y = reward + config.gamma * bootstrap * (1.0 - done)
        q = jnp.take_along_axis(q_values(params, obs), action[:, None], axis=-1)[:, 0]
        return jnp.mean((q - lax.stop_gradient(y)) ** 2)

    def update(carry, key, size):
        params, target, m, v, updates = carry["params"], carry["target"], carry["m"], carry["v"], carry["updates"]
        buf = carry["buffer"]
        idx = jax.random.randint(key, (config.batch_size,), 0, size)
        batch = tuple(field[idx] for field in buf)
        loss, grads = jax.value_and_grad(td_loss)(params, target, batch)
        count = updates + 1
        m = jax.tree.map(lambda m_, g: beta1 * m_ + (1 - beta1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: beta2 * v_ + (1 - beta2) * g * g, v, grads)
        step = config.learning_rate / (1 - beta1**count)
        correction2 = jnp.sqrt(1 - beta2**count)
        params = jax.tree.map(lambda p, m_, v_: p - step * m_ / (jnp.sqrt(v_) / correction2 + adam_eps), params, m, v)
        target = lax.cond(count % config.target_sync_period == 0, lambda: params, lambda: target)
        return {**carry, "params": params, "target": target, "m": m, "v": v, "updates": count}, loss

    def env_step(carry, t):
        key, act_key, explore_key, env_key, sample_key = jax.random.split(carry["key"], 5)
        obs = carry["obs"]
        greedy = q_values(carry["params"], obs).argmax()
        explore = jax.random.uniform(act_key) < config.epsilon
        action = jnp.where(explore, jax.random.randint(explore_key, (), 0, NUM_ACTIONS), greedy)
        next_obs, terminated, truncated, continue_obs, elapsed = cartpole_step(
            env_key, carry["env_state"], carry["elapsed"], action
        )
        slot = t % capacity
        # Old-gym done, as the bench's config: neither a termination nor a truncation bootstraps.
        transition = (obs, action, jnp.float32(1.0), next_obs, (terminated | truncated).astype(jnp.float32))
        buffer = tuple(field.at[slot].set(value) for field, value in zip(carry["buffer"], transition))
        episode_return = carry["episode_return"] + 1.0
        done = terminated | truncated
        carry = {
            **carry,
            "key": key,
            "obs": continue_obs,
            "env_state": continue_obs,
            "elapsed": elapsed,
            "buffer": buffer,
            "episode_return": jnp.where(done, 0.0, episode_return),
            "last_return": jnp.where(done, episode_return, carry["last_return"]),
            "episodes": carry["episodes"] + done,
        }
        size = jnp.minimum(t + 1, capacity)
        carry, loss = lax.cond(
            t + 1 >= config.learning_starts,
            lambda c: update(c, sample_key, size),
            lambda c: (c, jnp.float32(0.0)),
            carry,
        )
        return carry, loss

    def train(key: jax.Array) -> dict:
        init_key, reset_key, key = jax.random.split(key, 3)
        params = init_mlp(init_key, sizes)
        zeros = jax.tree.map(jnp.zeros_like, params)
        obs = cartpole_reset(reset_key)
        buffer = (
            jnp.zeros((capacity, OBS_DIM)),
            jnp.zeros((capacity,), dtype=jnp.int32),
            jnp.zeros((capacity,)),
            jnp.zeros((capacity, OBS_DIM)),
            jnp.zeros((capacity,)),
        )
        carry = {
            "key": key,
            "params": params,
            "target": params,
            "m": zeros,
            "v": zeros,
            "updates": jnp.int32(0),
            "buffer": buffer,
            "obs": obs,
            "env_state": obs,
            "elapsed": jnp.int32(0),
            "episode_return": jnp.float32(0.0),
            "last_return": jnp.float32(0.0),
            "episodes": jnp.int32(0),
        }
        carry, losses = lax.scan(env_step, carry, jnp.arange(total_env_steps))
        return {
            "updates": carry["updates"],
            "episodes": carry["episodes"],
            "last_return": carry["last_return"],
            "final_loss": losses[-1],
        }

    return train


def measure(num_seeds: int, total_env_steps: int, config: PeerConfig | None = None) -> dict:
    """Compile the K-seed program, then time one run of it: seconds for each, agent-steps per
    second of wall time and of this process's CPU time."""
    train = jax.jit(jax.vmap(make_train(config or PeerConfig(), total_env_steps)))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    started = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(compiled(keys))
    run_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "agent_steps_per_s": num_seeds * total_env_steps / run_s,
        "cpu_agent_steps_per_s": num_seeds * total_env_steps / cpu_s,
        "updates": int(out["updates"][0]),
        "mean_last_return": float(out["last_return"].mean()),
    }


def peer_config(config) -> PeerConfig:
    """The peer's settings for an AgentConfig it implements (CartPole-v1, a hard target synced in
    updates, MSE, no double Q, one update per env step, epsilon constant, old-gym done)."""
    required = {
        "env_id": "CartPole-v1",
        "target_network": "hard",
        "target_sync_unit": "updates",
        "loss": "mse",
        "double_q": False,
        "env_steps_per_update": 1,
        "gradient_steps": 1,
        "n_step": 1,
        "max_grad_norm": None,
        "layer_norm": False,
        "terminal_masking": True,
        "bootstrap_on_truncation": False,
    }
    for name, value in required.items():
        if getattr(config, name) != value:
            raise ValueError(f"{name}={getattr(config, name)!r} is invalid for the JAX peer: it implements {value!r}")
    if config.epsilon_start != config.epsilon_end:
        raise ValueError(f"epsilon_start={config.epsilon_start!r} is invalid for the JAX peer: epsilon is constant")
    return PeerConfig(
        hidden_sizes=config.hidden_sizes,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        replay_capacity=config.replay_capacity,
        learning_starts=config.learning_starts,
        target_sync_period=config.target_sync_period,
        epsilon=config.epsilon_end,
        gamma=config.gamma,
    )
