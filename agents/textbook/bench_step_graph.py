"""A torch DQN with one compiled graph per env step: what the engine's design could reach, for the bench.

The engine's paths run an env step as many small calls (acting, the env, replay, the update, the
recorder). This yardstick compiles the whole step of article-target (act, CartPole's physics,
store, sample, the compiled path's update graph) into one TorchInductor graph with a dynamic seed
axis, like the JAX peer (agents/textbook/bench_jax.py) but one call per step instead of one per
run. It records nothing (no episode log, no diagnostics), uses its own random streams, and steps
CartPole with torch's float64 trig (within an ulp of gymnasium's, not identical), so it is a
measure of speed, not a path of the engine: the bench shows it beside the paths to say what
fusing the step would buy.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from agents.engine.compiled import GRAPH_OPTIONS, UpdateKnobs, configure_compiler, fused_update
from agents.engine.fastpath import flushing_denormals
from agents.engine.networks import init_params, layer_sizes
from agents.engine.torch_envs import cartpole_physics

# Uniforms drawn per block of env steps, as the engine's UniformBlocks.
BLOCK = 256


def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    weights, biases = params[0::2], params[1::2]
    for i, (w, b) in enumerate(zip(weights, biases)):
        x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        if i < len(weights) - 1:
            x = x.relu()
    return x


def train_step(carry: dict, draws: dict, schedule: dict, knobs: UpdateKnobs, learn: bool) -> torch.Tensor:
    """One env step of every seed, in place on carry; the loss of the update (zeros before learning)."""
    state, buffers, position = carry["state"], carry["buffers"], schedule["position"]
    obs = state.float()
    greedy = _forward(carry["params"], obs.unsqueeze(1)).squeeze(1).argmax(1)
    uniforms = draws["explore"]
    action = torch.where(uniforms[:, 0] < schedule["epsilon"], (uniforms[:, 1] * 2).long(), greedy)
    new, terminated, truncated, elapsed = cartpole_physics(state, action, carry["elapsed"], schedule["limit"])
    seeds = torch.arange(state.shape[0], device=state.device)
    stored = (obs, action, torch.ones_like(obs[:, 0]), new.float(), terminated, truncated)
    for name, value in zip(("obs", "action", "reward", "next_obs", "terminated", "truncated"), stored):
        buffers[name].index_put_((seeds, position), value)
    done = terminated | truncated
    state.copy_(torch.where(done.unsqueeze(1), draws["start"], new))
    carry["elapsed"].copy_(torch.where(done, 0, elapsed))
    if not learn:
        return torch.zeros_like(obs[:, 0])
    capacity = buffers["obs"].shape[1]
    slots = (draws["replay"] * schedule["size"]).long() + seeds.unsqueeze(1) * capacity
    flat = slots.reshape(-1)
    batch = {}
    for name, store in buffers.items():
        batch[name] = store.reshape(-1, *store.shape[2:]).index_select(0, flat).view(*slots.shape, *store.shape[2:])
    step_size, correction = schedule["step_size"], schedule["correction"]
    adam = (carry["params"], carry["target"], carry["m"], carry["v"])
    return fused_update(*adam, batch, knobs, step_size, correction, False, (0.9, 0.999), 1e-8)[2]


def measure(num_seeds: int, total_env_steps: int, config) -> dict:
    """Compile (or load) the step graph with a short run, then time a run: seconds for each,
    agent-steps per second of wall time and of this process's CPU time."""
    configure_compiler()
    compiled = torch.compile(train_step, fullgraph=True, options=GRAPH_OPTIONS)
    # Denormals flushed as the engine's fast paths flush them, and restored after (a caller's
    # later float arithmetic must not inherit the processor state).
    with flushing_denormals(True):
        started = time.perf_counter()
        _run(compiled, max(num_seeds, 2), config.learning_starts + 2, config)
        compile_s = time.perf_counter() - started
        started, cpu_started = time.perf_counter(), time.process_time()
        # A lone seed runs beside a copy, as on the compiled path (one graph for every width).
        losses = _run(compiled, max(num_seeds, 2), total_env_steps, config)
        run_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "compile_s": compile_s,
        "run_s": run_s,
        "agent_steps_per_s": num_seeds * total_env_steps / run_s,
        "cpu_agent_steps_per_s": num_seeds * total_env_steps / cpu_s,
        "final_loss": float(losses.mean()),
    }


def _run(compiled, num_seeds: int, steps: int, config) -> torch.Tensor:
    sizes = layer_sizes(4, config.hidden_sizes, 2)
    params = init_params([torch.Generator().manual_seed(s) for s in range(num_seeds)], sizes, torch.device("cpu"))
    params = params.tensors()
    capacity, batch_size = config.replay_capacity, config.batch_size
    rng = np.random.default_rng(0)
    carry = {
        "params": params,
        "target": [p.clone() for p in params],
        "m": [torch.zeros_like(p) for p in params],
        "v": [torch.zeros_like(p) for p in params],
        "state": torch.from_numpy(rng.uniform(-0.05, 0.05, (num_seeds, 4))),
        "elapsed": torch.zeros(num_seeds, dtype=torch.int64),
        "buffers": {
            "obs": torch.zeros(num_seeds, capacity, 4),
            "action": torch.zeros(num_seeds, capacity, dtype=torch.int64),
            "reward": torch.zeros(num_seeds, capacity),
            "next_obs": torch.zeros(num_seeds, capacity, 4),
            "terminated": torch.zeros(num_seeds, capacity, dtype=torch.bool),
            "truncated": torch.zeros(num_seeds, capacity, dtype=torch.bool),
        },
    }
    knobs = UpdateKnobs(config.gamma, True, True, False, False, None)
    updates, loss = 0, torch.zeros(num_seeds)
    for t in range(steps):
        if t % BLOCK == 0:
            explore = torch.from_numpy(rng.random((BLOCK, num_seeds, 2)))
            replay = torch.from_numpy(rng.random((BLOCK, num_seeds, batch_size)))
            starts = torch.from_numpy(rng.uniform(-0.05, 0.05, (BLOCK, num_seeds, 4)))
        learn = t + 1 >= config.learning_starts
        updates += learn
        count = max(updates, 1)
        schedule = {
            "position": torch.tensor(t % capacity),
            "size": torch.tensor(min(t + 1, capacity)),
            "epsilon": torch.tensor(config.epsilon_end),
            "limit": 500,
            "step_size": torch.tensor(-config.learning_rate / (1 - 0.9**count), dtype=torch.float32),
            "correction": torch.tensor((1 - 0.999**count) ** 0.5, dtype=torch.float32),
        }
        draws = {"explore": explore[t % BLOCK], "replay": replay[t % BLOCK], "start": starts[t % BLOCK]}
        if t == 0:
            for tensor in [*carry["params"], *carry["target"], *carry["m"], *carry["v"], carry["state"]]:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
            for tensor in [carry["elapsed"], *carry["buffers"].values(), *draws.values()]:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        loss = compiled(carry, draws, schedule, knobs, learn)
        if learn and updates % config.target_sync_period == 0:
            for target, online in zip(carry["target"], carry["params"]):
                target.copy_(online)
    return loss
