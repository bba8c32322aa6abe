"""The training engine: K independent DQN agents (seeds) trained in lockstep in one process.

`train_family` is the whole algorithm, act -> step -> store -> update -> sync -> record, over
named parts: the update (agents/engine/update.py), the target-network rules (agents/engine/targets.py), the
injectable bugs (agents/engine/bughooks.py, the identity when off) and a recorder that only observes
(agents/engine/recorder.py). Every tensor carries the seed axis first, so K = 1 is the ordinary
single-agent case (agents/textbook/reference.py is that case written the plain way). Seeds never share
random numbers (agents.seeding), and a seed whose loss or gradient turns non-finite is stopped
and recorded as diverged without disturbing the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from agents.config import AgentConfig
from agents.engine.bellman import td_targets
from agents.engine.bughooks import BugHooks
from agents.engine.compiled import CompiledUpdate, compiles, padded_members
from agents.engine.envs import env_spec, make_env_batch
from agents.engine.family import SeedKnobs
from agents.engine.fastpath import FastKernels, check_path, flushing_denormals
from agents.engine.networks import BatchedAdam, MLPParams, aligned_batch, forward, init_params, layer_sizes
from agents.engine.recorder import Recorder, TrainingRecord
from agents.engine.replay import ReplayBuffer, UniformBlocks, sample_batch
from agents.engine.stepgraph import fuses, train_fused
from agents.engine.targets import TargetNetwork
from agents.engine.torch_envs import make_torch_env_batch
from agents.engine.update import gradient_step
from agents.seeding import seed_streams

__all__ = ["TrainingRecord", "td_targets", "train", "train_family"]

UpdateHook = Callable[[int, int, MLPParams, MLPParams | None], None]


def train(
    config: AgentConfig,
    seeds: list[int],
    *,
    progress: Callable[[int], None] | None = None,
    trace: bool = False,
    on_update: UpdateHook | None = None,
    path: str = "exact",
) -> TrainingRecord:
    """Train one agent per seed for config.total_env_steps env steps; return the record.

    progress(n) is told of every n env steps done; on_update(env_step, updates, online, target)
    sees the networks after every gradient update and target update (for tests and probes; it
    must not modify them unless it means to). path: "exact" (bit-identical to the textbook DQN),
    "fast" (agents/engine/fastpath.py: batched kernels, equal within float tolerance) or
    "compiled" (agents/engine/compiled.py: the fast path with its update fused by torch.compile)
    or "fused" (agents/engine/stepgraph.py: the compiled path with the whole env step one graph).
    """
    return train_family([(config, seeds)], progress=progress, trace=trace, on_update=on_update, path=path)[0]


def epsilon_greedy(online: MLPParams, acting_obs: torch.Tensor, uniforms: np.ndarray, epsilon, num_actions: int):
    """Each seed's action: random where its first uniform is below epsilon, else greedy. Both
    uniforms are drawn every step, so a seed's stream does not depend on what it chose."""
    with torch.no_grad():
        greedy = forward(online, acting_obs).squeeze(1).argmax(1).cpu().numpy()
    random_action = (uniforms[:, 1] * num_actions).astype(np.int64)
    return np.where(uniforms[:, 0] < epsilon, random_action, greedy)


def train_family(
    members: list[tuple[AgentConfig, list[int]]],
    *,
    progress: Callable[[int], None] | None = None,
    trace: bool = False,
    on_update: UpdateHook | None = None,
    path: str = "exact",
) -> list[TrainingRecord]:
    """Train several configs of one family (agents.engine.family) on one seed axis: member m's seeds
    occupy their own slots, with that member's knobs. Returns one record per member, each
    identical to training that member alone (on either path; see train for `path`)."""
    check_path(path)
    configs = [config for config, _ in members]
    fused = path == "fused" and fuses(configs) and _compiles(members)
    compiled = path in ("compiled", "fused") and _compiles(members)
    # A lone seed on the compiled path trains beside a copy (padded_members); the fused path's
    # graphs for a seed axis of 1 round like the shared one (tests/test_fused_path.py), so none.
    trained = padded_members(members) if compiled and not fused else members
    with flushing_denormals(path != "exact"):
        if fused:
            records = train_fused(trained, progress, trace, on_update, _seed_axis, _stop_seeds)
        else:
            records = _train_family(trained, progress, trace, on_update, path, compiled)
    if len(trained) > len(members):  # the padding copy's record goes, its share of the time stays
        records[0].wall_time_s += records.pop().wall_time_s
    for record in records:
        record.path = path
    return records


def _env_batch(spec, num_seeds: int, device: torch.device, path: str):
    """The training envs: on a device other than the CPU the fast and compiled paths step them
    there (agents/engine/torch_envs.py, where one exists); on the CPU numpy's batches are faster
    (a few numpy calls per step against a few dozen torch ops) and give the same numbers."""
    if path != "exact" and device.type != "cpu":
        batch = make_torch_env_batch(spec, num_seeds, device)
        if batch is not None:
            return batch
    return make_env_batch(spec, num_seeds)


def _compiles(members) -> bool:
    spec = env_spec(members[0][0].env_id)
    return compiles([config for config, _ in members], spec.obs_dim, spec.num_actions)


def _train_family(members, progress, trace, on_update, path: str, compile_update: bool) -> list[TrainingRecord]:
    started = time.perf_counter()
    config, knobs, streams = _seed_axis(members)  # config: the family's shared fields
    device, spec, num_seeds = torch.device(config.device), env_spec(config.env_id), len(streams)
    online = init_params(
        [s.init for s in streams],
        layer_sizes(spec.obs_dim, config.hidden_sizes, spec.num_actions),
        device,
        config.layer_norm,
        None if path == "exact" else FastKernels,  # the target network, a clone, inherits them
    )
    target = TargetNetwork(knobs, online, device)
    optimizer = BatchedAdam(online, knobs.learning_rate)
    compiled = CompiledUpdate(knobs, online, target.network, optimizer) if compile_update else None
    explore = UniformBlocks([s.explore for s in streams], width=2)
    replay_uniforms = UniformBlocks([s.replay for s in streams], width=config.batch_size)
    buffer = ReplayBuffer(num_seeds, knobs.capacity, spec.obs_dim, device)
    bugs = BugHooks(knobs)
    recorder = Recorder(members, knobs, spec, device, trace)
    env = _env_batch(spec, num_seeds, device, path)
    obs = env.reset([s.env_reset_seed for s in streams])
    # Acting reads each seed's observation from an aligned row (see networks.batched_matmul).
    acting_obs = aligned_batch(num_seeds, 1, spec.obs_dim, device)
    updates = 0
    for t in range(config.total_env_steps):
        # act, step, store
        uniforms = explore.next()
        obs_tensor = torch.from_numpy(obs).to(device)
        acting_obs.copy_(obs_tensor.unsqueeze(1))
        actions = epsilon_greedy(online, acting_obs, uniforms, knobs.epsilon(t), spec.num_actions)
        result = env.step(actions)
        terminated = bugs.stored_terminated(torch.from_numpy(result.terminated))
        reward = torch.from_numpy(result.reward.astype(np.float32))
        next_obs, truncated = torch.from_numpy(result.next_obs), torch.from_numpy(result.truncated)
        buffer.add(obs_tensor, torch.from_numpy(actions), reward, next_obs, terminated, truncated, t)
        recorder.env_step(t, actions, result)
        obs, step, clock = result.obs, t + 1, config.clock(t)
        # sync (env-step periods, SB3's order), update (a burst of gradient_steps), sync
        target.sync_before_updates(online, clock, step, updates)
        if config.trains_at(clock):
            for _ in range(config.gradient_steps):
                batch = sample_batch(buffer, replay_uniforms, knobs, config.uses_replay)
                if compiled is not None:
                    update = compiled(batch)
                else:
                    update = gradient_step(knobs, bugs, online, target.network, optimizer, batch)
                updates += 1
                synced = target.after_update(online, updates, step)
                if on_update is not None:
                    on_update(step, updates, online, target.network)
                diverged = recorder.gradient_update(step, batch, update, synced, online, target)
                if diverged.any():
                    _stop_seeds(diverged, online, target.network, optimizer)
        target.sync_after_updates(online, clock, step, updates)
        # record
        all_finished = recorder.end_of_step(step, updates, online, target, buffer)
        if progress is not None:
            progress(1)
        if all_finished:
            break
    env.close()
    records = recorder.records(time.perf_counter() - started)
    for record in records:
        record.compile_s = compiled.timer.seconds if compiled is not None else 0.0
    return records


def _seed_axis(members: list[tuple[AgentConfig, list[int]]]) -> tuple[AgentConfig, SeedKnobs, list]:
    """Validate the members; the family's shared config, every slot's knobs and random streams."""
    if not members:
        raise ValueError("members=[] is invalid: give at least one (config, seeds) pair")
    for _config, seeds in members:
        if not seeds:
            raise ValueError("seeds=[] is invalid: give at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds={seeds!r} is invalid: seeds must be distinct")
    config = members[0][0]
    knobs = SeedKnobs.of([c for c, seeds in members for _ in seeds], torch.device(config.device))
    return config, knobs, [seed_streams(s) for _, seeds in members for s in seeds]


def _stop_seeds(bad: np.ndarray, online: MLPParams, target: MLPParams | None, optimizer: BatchedAdam) -> None:
    """Zero the state of seeds that hit a non-finite value, so they cannot disturb the others."""
    mask = torch.from_numpy(bad).to(online.tensors()[0].device)
    for params in (online, target):
        if params is not None:
            for tensor in params.tensors():
                tensor[mask] = 0.0
    optimizer.reset_seeds(mask)
