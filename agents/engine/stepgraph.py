"""The engine's fused path: the compiled path with the whole env step in one compiled graph.

`train(config, seeds, path="fused")` runs acting (the online network's greedy action and each
seed's epsilon draw), CartPole's physics, the restart of ended episodes from each env's reset
table, the replay store (one packed row per transition: PackedReplay), the sample, the compiled
path's update (agents/engine/compiled.py) and the recorder's update window as one TorchInductor
graph per env step, with a dynamic seed axis and the same user compile cache. The host keeps
what reads the host: each seed's own random draws (the UniformBlocks rows, and refilling a used
up reset table from the env's generator), target syncs and the drift they cause, divergence
stops, the episode log and checkpoints. CartPole steps with torch's trig inside the graph
(within an ulp of gymnasium's, not identical), so the path agrees with the others within float
tolerance. Runs it does not cover (another env, an injected bug, n-step windows, per-seed
replay capacities, more than one update per training step, no replay) take the compiled path.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from agents.engine.compiled import (
    BATCH_FIELDS,
    GRAPH_OPTIONS,
    CompiledUpdate,
    configure_compiler,
    forward_layers,
    fused_update,
)
from agents.engine.envs import StepResult
from agents.engine.networks import ALIGNMENT_BYTES
from agents.engine.torch_envs import RESET_BLOCK, TorchCartPole, cartpole_physics

ENV_ID = "CartPole-v1"


def fuses(configs: list) -> bool:
    """Whether the fused path covers a family (else it trains on the compiled path)."""
    first = configs[0]
    return (
        first.env_id == ENV_ID
        and all(c.n_step == 1 and c.uses_replay for c in configs)
        and len({c.replay_capacity for c in configs}) == 1
        and first.gradient_steps == 1
        and first.total_env_steps < LARGEST_EXACT_STEP
        and not any(getattr(c, name) for c in configs for name in _BUG_FIELDS)
    )


_BUG_FIELDS = (
    "bug_target_gradient",
    "bug_stale_target",
    "bug_greedy_gather",
    "bug_no_zero_grad",
    "bug_epsilon_at_end",
    "bug_terminal_shift",
)


class PackedReplay:
    """The fused path's replay: every transition one row of float32 (obs, next obs, action,
    reward, terminated, truncated, insert step; padded to whole 64-byte lines), so sampling a
    transition reads one cache line where the field-per-tensor ReplayBuffer reads seven. The
    step graph writes and reads the rows; the host keeps the ring's counters."""

    def __init__(self, num_seeds: int, capacity: int, obs_dim: int, device):
        self.obs_dim, self.capacity = obs_dim, capacity
        width = 2 * obs_dim + len(_SCALARS)
        floats = ALIGNMENT_BYTES // 4
        self.rows = torch.zeros((num_seeds, capacity, -(-width // floats) * floats), device=device)
        self.position = 0  # next slot to write
        self.size = 0  # slots written so far, at most capacity

    def advance(self) -> None:
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def fill(self) -> int:
        return self.size


# The scalar fields after a packed row's two observations, in order. Each is exact in float32:
# actions and flags are small integers, and fuses() keeps the insert step below 2**24.
_SCALARS = ("action", "reward", "terminated", "truncated", "insert_step")
LARGEST_EXACT_STEP = 2**24


def unpack(rows: torch.Tensor, obs_dim: int) -> dict[str, torch.Tensor]:
    """A sampled batch (K, B, width) of packed rows as the update's fields, with their dtypes."""
    d = obs_dim
    scalars = dict(zip(_SCALARS, rows[..., 2 * d : 2 * d + len(_SCALARS)].unbind(-1)))
    return {
        "obs": rows[..., :d],
        "next_obs": rows[..., d : 2 * d],
        "action": scalars["action"].long(),
        "reward": scalars["reward"],
        "terminated": scalars["terminated"] != 0,
        "truncated": scalars["truncated"] != 0,
        "insert_step": scalars["insert_step"].long(),
    }


def _greedy(params: list[torch.Tensor], obs: torch.Tensor, layer_norm: bool) -> torch.Tensor:
    """Each seed's greedy action for its one observation (K, obs_dim): the update's forward pass."""
    return forward_layers(params[0::2], params[1::2], obs.unsqueeze(1), layer_norm)[-1].squeeze(1).argmax(1)


# The host's per-step inputs, one float64 row per seed (one array, one transfer): the two
# exploration uniforms and epsilon; the step's counters, the same on every row (integers, exact
# in float64): the replay's write slot, the 0-based env step, the replay's fill after this step's
# store, the window's row for this step's update; on a training step the Adam step's scalars
# (CompiledUpdate.adam_scalars, rounded to float32 in the graph as the compiled path rounds them)
# and, where the step graph applies the target rule (TargetNetwork.changes_every_update), each
# seed's target rule for this update (TargetNetwork.plan_after_update: copied or not, 1 - tau
# and tau, rounded to float32 as polyak_'s scalars are); then the batch's replay uniforms.
EXPLORE, EPSILON, POSITION, ENV_STEP, FILL, WINDOW_ROW, STEP_SIZE, CORRECTION = (slice(0, 2), *range(2, 9))
COPY, KEEP, TAU = range(9, 12)
REPLAY = slice(12, None)


def fused_step(carry: dict, draws: torch.Tensor, update_args, window: dict | None, limit: int):
    """One env step of every seed, in place on the env state, the packed replay, the env's reset
    pointers and (with update_args) the networks, Adam's moments and the recorder's update
    window. Returns (action, terminated, truncated) as one int64 (K, 3) tensor and, with an
    update, (sampled rows, y, loss, finite). update_args: fused_update's arguments without the
    batch and the Adam scalars (read from draws)."""
    state, rows = carry["state"], carry["rows"]
    position, env_step, fill, window_row = draws[0, POSITION : WINDOW_ROW + 1].long().unbind()
    num_seeds, obs_dim = state.shape
    seeds = torch.arange(num_seeds, device=state.device)
    obs = state.float()
    greedy = _greedy(carry["params"], obs, carry["layer_norm"])
    explore = draws[:, EXPLORE]
    # epsilon_greedy's rule: random where the first uniform is below epsilon.
    random_action = (explore[:, 1] * carry["num_actions"]).long()
    actions = torch.where(explore[:, 0] < draws[:, EPSILON], random_action, greedy)
    new_state, terminated, truncated, elapsed = cartpole_physics(state, actions, carry["elapsed"], limit)
    scalars = (actions, torch.ones_like(obs[:, 0]), terminated, truncated, env_step.expand_as(actions))
    row = torch.cat([obs, new_state.float(), torch.stack([s.float() for s in scalars], 1)], 1)
    padding = rows.shape[2] - row.shape[1]
    row = torch.nn.functional.pad(row, (0, padding))
    rows.index_put_((seeds, position.expand_as(seeds)), row)
    # An ended episode restarts from its env's next reset draw (the host refills used tables).
    ended = terminated | truncated
    used = carry["used"]
    start = carry["table"][seeds, used]
    state.copy_(torch.where(ended.unsqueeze(1), start, new_state))
    carry["elapsed"].copy_(torch.where(ended, 0, elapsed))
    used.add_(ended.long())
    step = torch.stack((actions, terminated.long(), truncated.long()), 1)
    if update_args is None:
        return step, None
    # Replay slots floor(u * fill), as replay.uniform_indices: the transition just stored counts.
    capacity = rows.shape[1]
    slots = (draws[:, REPLAY] * fill.double()).long()
    flat = (slots + seeds.unsqueeze(1) * capacity).reshape(-1)
    sampled = rows.reshape(-1, rows.shape[2]).index_select(0, flat).view(*slots.shape, rows.shape[2])
    batch = unpack(sampled, obs_dim)
    step_size, correction = draws[:, STEP_SIZE].float(), draws[0, CORRECTION].float()
    # CompiledUpdate.update_args' (head, tail), whose step size and correction the draws give.
    (params, target, exp_avg, exp_avg_sq), (knobs, _, _, layer_norm, betas, eps) = update_args
    update_batch = {name: batch[name] for name in BATCH_FIELDS if name in batch}
    y, prediction, loss, grad_norm = fused_update(
        params, target, exp_avg, exp_avg_sq, update_batch, knobs, step_size, correction, layer_norm, betas, eps
    )
    if carry["target_rule"]:
        _apply_target_rule(params, target, draws)
    # The recorder's window row of this update (UpdateWindow.record's fields).
    written = {
        "loss": loss,
        "grad_norm": grad_norm,
        "td_target": y,
        "td_error": prediction - y,
        "sample_age": env_step - batch["insert_step"],
        "terminal": batch["terminated"],
        "states": batch["obs"],
    }
    at = window_row.view(1)
    for name, value in written.items():
        window[name].index_copy_(1, at, value.unsqueeze(1))
    finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
    return step, (sampled, y, loss, finite)


def _apply_target_rule(params: list[torch.Tensor], target: list[torch.Tensor], draws: torch.Tensor) -> None:
    """After the update: the copied seeds' targets become online, the averaged ones
    (1 - tau) * target + tau * online (MLPParams.polyak_), the others stay as they are."""
    copy, averaged = draws[:, COPY] != 0, draws[:, TAU] != 0
    keep, tau = draws[:, KEEP].float(), draws[:, TAU].float()
    for t, p in zip(target, params):
        shape = (-1,) + (1,) * (t.dim() - 1)
        moved = torch.where(averaged.view(shape), t * keep.view(shape) + p * tau.view(shape), t)
        t.copy_(torch.where(copy.view(shape), p, moved))


@functools.cache
def _compiled_step():
    configure_compiler()
    return torch.compile(fused_step, fullgraph=True, options=GRAPH_OPTIONS)


class FusedStep:
    """The loop's env step on the fused path: acting, env, store and (when training) sample,
    update and the recorder's window row in one graph call; the reset tables' refills, the
    replay's counters and the recorder's episode log on the host."""

    def __init__(self, update: CompiledUpdate, replay: PackedReplay, env: TorchCartPole, recorder, target):
        self.update, self.replay, self.env, self.recorder = update, replay, env, recorder
        device = replay.rows.device
        # The env's reset pointers as a tensor the graph advances (a view of the numpy array on the CPU).
        self.used = torch.from_numpy(env._used).to(device)
        window = recorder.window
        self.window = {name: getattr(window, name) for name in _WINDOW_FIELDS}
        self.carry = {
            "params": update.online.tensors(),
            "state": env._state,
            "elapsed": env._elapsed,
            "rows": replay.rows,
            "table": env._table,
            "used": self.used,
            "num_actions": env.spec.num_actions,
            "layer_norm": update.online.layer_norm,
            "target_rule": target.changes_every_update,
        }
        # fused_update's arguments as (head, tail) but the batch; the same tensors every step
        # (updated in place), so they are gathered once. The Adam step's scalars come from the
        # draws, so their places in the tail stay None.
        self.update_args = update.update_args(None, None)
        # The per-step inputs (the columns of EXPLORE ... REPLAY), written in place every step.
        self.inputs = np.zeros((env.num_envs, REPLAY.start + recorder.config.batch_size))
        self._function = _compiled_step()
        self._seen: set[bool] = set()  # graphs called so far: without and with an update

    @property
    def applies_target_rule(self) -> bool:
        return self.carry["target_rule"]

    def __call__(self, env_step: int, uniforms: np.ndarray, epsilon: np.ndarray, replay_uniforms, target_plan=None):
        """Step every env (and update when replay_uniforms is not None): (actions, terminated,
        truncated) as numpy arrays and, with an update, (sampled rows, y, loss, finite).
        target_plan: TargetNetwork.plan_after_update's masks, when the graph applies the rule."""
        replay, update, inputs = self.replay, self.update, self.inputs
        inputs[:, EXPLORE] = uniforms
        inputs[:, EPSILON] = epsilon
        window_row = self.recorder.window.count % self.recorder.window.size
        fill = min(replay.size + 1, replay.capacity)  # after this step's store
        inputs[:, POSITION : WINDOW_ROW + 1] = (replay.position, env_step, fill, window_row)
        learning = replay_uniforms is not None
        update_args, window, columns = None, None, REPLAY.start
        if learning:
            inputs[:, STEP_SIZE], inputs[:, CORRECTION] = update.adam_scalars()
            inputs[:, REPLAY] = replay_uniforms
            if target_plan is not None:
                _, copying, taus = target_plan
                inputs[:, COPY], inputs[:, KEEP], inputs[:, TAU] = copying, 1.0 - taus, taus
            update_args, window, columns = self.update_args, self.window, inputs.shape[1]
        draws = torch.from_numpy(inputs[:, :columns]).to(replay.rows.device)
        first = learning not in self._seen
        if first:  # one graph for every K >= 2, timed apart (compile or cache load)
            self._mark(draws, update_args)
            self._seen.add(learning)
        started = time.perf_counter()
        step, trained = self._function(self.carry, draws, update_args, window, self.env.spec.max_episode_steps)
        if first:
            update.timer.seconds += time.perf_counter() - started
        replay.advance()
        actions, terminated, truncated = step.cpu().numpy().T
        self._refill_reset_tables()
        return actions, terminated.astype(bool), truncated.astype(bool), trained

    def _refill_reset_tables(self) -> None:
        """Draw new reset states for the envs that used their last one this step."""
        used = self.used.cpu().numpy()
        exhausted = np.flatnonzero(used == RESET_BLOCK)
        if exhausted.size:
            self.env._draw(exhausted)
            self.used[torch.from_numpy(exhausted).to(self.used.device)] = 0

    def _mark(self, draws: torch.Tensor, update_args: tuple | None) -> None:
        carry = self.carry
        tensors = [carry["state"], carry["elapsed"], carry["rows"], carry["table"], self.used, *carry["params"], draws]
        if update_args is not None:
            head, (knobs, *_) = update_args
            for arg in head:
                tensors += list(arg or [])
            tensors += [k for k in knobs if torch.is_tensor(k)]
            tensors += list(self.window.values())
        for tensor in tensors:
            if tensor.dim() > 0:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)


# UpdateWindow's rings the step graph writes (the host writes target_drift: it measures it).
_WINDOW_FIELDS = ("loss", "grad_norm", "td_target", "td_error", "sample_age", "terminal", "states")


def train_fused(members, progress, trace, on_update, seed_axis, stop_seeds) -> list:
    """loop._train_family's algorithm with FusedStep as its step (fuses() holds for members)."""
    from agents.engine.envs import env_spec
    from agents.engine.fastpath import FastKernels
    from agents.engine.networks import BatchedAdam, init_params, layer_sizes
    from agents.engine.recorder import Recorder
    from agents.engine.replay import UniformBlocks
    from agents.engine.targets import TargetNetwork

    started = time.perf_counter()
    config, knobs, streams = seed_axis(members)
    device, spec, num_seeds = torch.device(config.device), env_spec(config.env_id), len(streams)
    sizes = layer_sizes(spec.obs_dim, config.hidden_sizes, spec.num_actions)
    online = init_params([s.init for s in streams], sizes, device, config.layer_norm, FastKernels)
    target = TargetNetwork(knobs, online, device)
    optimizer = BatchedAdam(online, knobs.learning_rate)
    update = CompiledUpdate(knobs, online, target.network, optimizer)
    explore = UniformBlocks([s.explore for s in streams], width=2)
    replay_uniforms = UniformBlocks([s.replay for s in streams], width=config.batch_size)
    replay = PackedReplay(num_seeds, int(np.max(knobs.capacity)), spec.obs_dim, device)
    recorder = Recorder(members, knobs, spec, device, trace)
    env = TorchCartPole(spec, num_seeds, device)
    env.reset([s.env_reset_seed for s in streams])
    step_graph = FusedStep(update, replay, env, recorder, target)
    rewards = np.ones(num_seeds)
    updates = 0
    for t in range(config.total_env_steps):
        uniforms = explore.next()
        step, clock = t + 1, config.clock(t)
        # The env-step syncs due before this step's updates: no parameter changes between this
        # step's acting and its update, so they may run before the graph acts.
        target.sync_before_updates(online, clock, step, updates)
        trains = config.trains_at(clock)
        draws = replay_uniforms.next() if trains else None
        # Where the graph applies the target rule, the host decides which seeds it changes first.
        plan = target.plan_after_update(updates + 1, step) if trains and step_graph.applies_target_rule else None
        actions, terminated, truncated, trained = step_graph(t, uniforms, knobs.epsilon(t), draws, plan)
        recorder.env_step(t, actions, StepResult(None, rewards, terminated, truncated, None))
        if trained is not None:
            sampled, y, loss, finite = trained
            updates += 1
            synced = plan[0] if plan is not None else target.after_update(online, updates, step)
            if on_update is not None:
                on_update(step, updates, online, target.network)
            batch_of = functools.partial(unpack, sampled, spec.obs_dim)
            finite = finite.cpu().numpy()
            diverged = recorder.gradient_update_recorded(step, batch_of, y, loss, finite, synced, online, target)
            if diverged.any():
                stop_seeds(diverged, online, target.network, optimizer)
        target.sync_after_updates(online, clock, step, updates)
        all_finished = recorder.end_of_step(step, updates, online, target, replay)
        if progress is not None:
            progress(1)
        if all_finished:
            break
    records = recorder.records(time.perf_counter() - started)
    for record in records:
        record.compile_s = update.timer.seconds
    return records
