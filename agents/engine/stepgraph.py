"""The engine's fused path: the compiled path with whole env steps in one compiled graph.

`train(config, seeds, path="fused")` runs acting (the online network's greedy action and each
seed's epsilon draw), CartPole's physics, the restart of ended episodes from each env's reset
table, the replay store (one packed row per transition: PackedReplay), the sample, the compiled
path's update (agents/engine/compiled.py) and the recorder's update window as one TorchInductor
graph, with a dynamic seed axis and the same user compile cache. A lone seed gets graphs of its
own (dynamo specializes a seed axis of 1); they round like the shared ones (tested), so unlike
the compiled path it trains without a padding copy. One graph call takes a chunk of several env
steps (fused_steps, chunk_length) up to the next step after which the host acts:
a checkpoint, a hard target sync, a measured drift. The host keeps what reads the host: each
seed's own random draws (the UniformBlocks rows, drawn ahead for a chunk, and refilling the reset
tables from each env's generator), target syncs and the drift they cause, divergence stops, the
episode log and checkpoints. CartPole steps with torch's trig inside the graph (within an ulp of
gymnasium's, not identical), so the path agrees with the others within float tolerance. Runs it
does not cover (another env, an injected bug, n-step windows, per-seed replay capacities, more
than one update per training step, no replay) take the compiled path.
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
from agents.engine.recorder import checkpoint_due, in_diagnostic_window
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

    def advance(self, steps: int = 1) -> None:
        self.position = (self.position + steps) % self.capacity
        self.size = min(self.size + steps, self.capacity)

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
    """One env step of every seed, in place on the env state, the packed replay, the reset
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
    # An ended episode restarts from its env's next reset draw: the table is a ring of two
    # blocks of draws, and the host draws the next block once a seed starts reading one.
    ended = terminated | truncated
    used, table = carry["used"], carry["table"]
    start = table[seeds, used % table.shape[1]]
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


def fused_steps(carry: dict, draws: torch.Tensor, update_args, window: dict | None, limit: int):
    """n successive env steps (draws (n, K, columns): each step's inputs) in one graph, each
    fused_step's. Returns their (n, K, 3) actions and ends and, with updates, the last update's
    sampled rows and y (what a drift measured after the chunk reads) and every update's loss and
    finiteness (n, K)."""
    steps, losses, finite = [], [], []
    trained = None
    for inputs in draws.unbind(0):
        step, trained = fused_step(carry, inputs, update_args, window, limit)
        steps.append(step)
        if trained is not None:
            losses.append(trained[2])
            finite.append(trained[3])
    if trained is None:
        return torch.stack(steps), None
    sampled, y, _, _ = trained
    return torch.stack(steps), (sampled, y, torch.stack(losses), torch.stack(finite))


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
    return torch.compile(fused_steps, fullgraph=True, options=GRAPH_OPTIONS)


class FusedStep:
    """The loop's env steps on the fused path: for one or several successive steps, acting, env,
    store and (when training) sample, update and the recorder's window row in one graph call;
    the inputs, the reset tables' refills and everything recorded on the host."""

    def __init__(self, update: CompiledUpdate, replay: PackedReplay, env: TorchCartPole, recorder, target):
        self.update, self.replay, self.env, self.recorder = update, replay, env, recorder
        device = replay.rows.device
        # The reset ring: the env's first block of draws and the next one, drawn ahead (each env's
        # generator draws only resets, so drawing ahead gives the same numbers); `used` counts
        # the draws each env has read, `drawn` the blocks drawn.
        self.table = torch.cat((env._table, env.draw_resets(np.arange(env.num_envs))), dim=1)
        self.used = torch.from_numpy(env._used.copy()).to(device)
        self.drawn = np.full(env.num_envs, 2)
        window = recorder.window
        self.window = {name: getattr(window, name) for name in _WINDOW_FIELDS}
        self.carry = {
            "params": update.online.tensors(),
            "state": env._state,
            "elapsed": env._elapsed,
            "rows": replay.rows,
            "table": self.table,
            "used": self.used,
            "num_actions": env.spec.num_actions,
            "layer_norm": update.online.layer_norm,
            "target_rule": target.changes_every_update,
        }
        # fused_update's arguments as (head, tail) but the batch; the same tensors every step
        # (updated in place), so they are gathered once. The Adam step's scalars come from the
        # draws, so their places in the tail stay None.
        self.update_args = update.update_args(None, None)
        # The per-step inputs of each chunk length (the columns of EXPLORE ... REPLAY).
        self.inputs: dict[tuple[int, int], np.ndarray] = {}
        self._function = _compiled_step()
        self._seen: set[tuple[bool, int]] = set()  # graphs called so far: (with an update, steps)

    @property
    def applies_target_rule(self) -> bool:
        return self.carry["target_rule"]

    def __call__(self, env_step: int, uniforms: np.ndarray, epsilons: np.ndarray, replay_uniforms, target_plans=None):
        """Step every env n times from 0-based env step `env_step` (and update at each step when
        replay_uniforms is not None): uniforms (n, K, 2), epsilons (n, K), replay_uniforms
        (n, K, batch); target_plans: TargetNetwork.plan_after_update's masks for each update,
        when the graph applies the rule. Returns the (n, K, 3) actions, terminated and truncated
        as numpy and, with updates, fused_steps' (sampled rows, y, losses, finite) with finite
        as numpy. The replay's counters are the caller's to advance, one step at a time."""
        replay, update, recorder = self.replay, self.update, self.recorder
        n, num_seeds = uniforms.shape[:2]
        learning = replay_uniforms is not None
        columns = REPLAY.start + (recorder.config.batch_size if learning else 0)
        inputs = self.inputs.get((n, columns))
        if inputs is None:
            inputs = self.inputs[(n, columns)] = np.zeros((n, num_seeds, columns))
        inputs[:, :, EXPLORE] = uniforms
        inputs[:, :, EPSILON] = epsilons
        later = np.arange(n)
        counters = (
            (replay.position + later) % replay.capacity,
            env_step + later,
            np.minimum(replay.size + later + 1, replay.capacity),  # after each step's store
            (recorder.window.count + later) % recorder.window.size,
        )
        inputs[:, :, POSITION : WINDOW_ROW + 1] = np.stack(counters, 1)[:, None, :]
        update_args, window = None, None
        if learning:
            for i in range(n):
                inputs[i, :, STEP_SIZE], inputs[i, :, CORRECTION] = update.adam_scalars()
                if target_plans is not None:
                    _, copying, taus = target_plans[i]
                    inputs[i, :, COPY], inputs[i, :, KEEP], inputs[i, :, TAU] = copying, 1.0 - taus, taus
            inputs[:, :, REPLAY] = replay_uniforms
            update_args, window = self.update_args, self.window
        draws = torch.from_numpy(inputs).to(replay.rows.device)
        first = (learning, n) not in self._seen
        if first:  # one graph per chunk length for every K >= 2, timed apart (compile or load)
            self._mark(draws, update_args)
            self._seen.add((learning, n))
        started = time.perf_counter()
        steps, trained = self._function(self.carry, draws, update_args, window, self.env.spec.max_episode_steps)
        if first:
            update.timer.seconds += time.perf_counter() - started
        self._refill_reset_tables()
        if trained is not None:
            sampled, y, losses, finite = trained
            trained = (sampled, y, losses, finite.cpu().numpy())
        return steps.cpu().numpy(), trained

    def _refill_reset_tables(self) -> None:
        """Draw the next block of reset states for the envs that started reading their last one."""
        used = self.used.cpu().numpy()
        due = np.flatnonzero(used // RESET_BLOCK + 2 > self.drawn)
        if due.size:
            slots = self.drawn[due] % 2
            blocks = self.env.draw_resets(due)
            for i, slot, block in zip(due, slots, blocks):
                self.table[i, slot * RESET_BLOCK : (slot + 1) * RESET_BLOCK] = block
            self.drawn[due] += 1

    def _mark(self, draws: torch.Tensor, update_args: tuple | None) -> None:
        carry = self.carry
        tensors = [carry["state"], carry["elapsed"], carry["rows"], carry["table"], self.used, *carry["params"]]
        if update_args is not None:
            head, (knobs, *_) = update_args
            for arg in head:
                tensors += list(arg or [])
            tensors += [k for k in knobs if torch.is_tensor(k)]
            tensors += list(self.window.values())
        for tensor in tensors:
            if tensor.dim() > 0:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        torch._dynamo.maybe_mark_dynamic(draws, 1)  # (steps, seeds, columns): the steps are static


# UpdateWindow's rings the step graph writes (the host writes target_drift: it measures it).
_WINDOW_FIELDS = ("loss", "grad_norm", "td_target", "td_error", "sample_age", "terminal", "states")


# The chunk lengths the loop calls step graphs of (each length is its own graph, compiled once):
# a chunk of fused steps pays one graph call's entry and one pass of host bookkeeping between
# calls, where single steps pay them every env step.
CHUNK_LENGTHS = (8, 1)


def chunk_length(config, target, moving: bool, t: int, updates: int, lengths: tuple[int, ...] | None = None) -> int:
    """How many env steps from 0-based step t one graph call takes: a chunk of training steps
    that ends at the first step after which the host acts (a checkpoint, a hard target sync, an
    env-step sync after updates) and before a step it acts before (an env-step sync before
    updates, an update whose drift it measures: moving targets in the diagnostic window); else
    one step. Rounded down to a length in `lengths` (CHUNK_LENGTHS, read at the call)."""
    lengths = lengths or CHUNK_LENGTHS
    n = 0
    while n < lengths[0] and t + n < config.total_env_steps:
        step, clock = t + n + 1, config.clock(t + n)
        if not config.trains_at(clock) or (n > 0 and target.syncs_at_env_step("env_steps", clock)):
            break
        if moving and in_diagnostic_window(config, step):
            break
        n += 1
        if checkpoint_due(config, step) or target.syncs_hard(updates + n):
            break
        if target.syncs_at_env_step("env_steps_after_updates", clock):
            break
    return next(length for length in lengths if length <= max(n, 1))


def steps_calling_every_graph(config) -> int:
    """Env steps of a run of `config` that calls each of its step graphs at least once (one
    step before learning starts, a chunk of the longest length, one step with an update in the
    diagnostic window): a warm-up that leaves no compile or cache load to a timed run."""
    return config.learning_starts + CHUNK_LENGTHS[0] + config.diagnostic_window + 1


def train_fused(members, progress, trace, on_update, seed_axis, stop_seeds) -> list:
    """loop._train_family's algorithm with FusedStep as its step (fuses() holds for members),
    several env steps per graph call where chunk_length allows (one with an on_update hook)."""
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
    moving = bool(target.moves_every_update.any())
    lengths = CHUNK_LENGTHS if on_update is None else (1,)

    def record_step_by_step(later: range, actions, ends, trained, plans, updates: int) -> bool:
        """The chunk's records, step after step as the exact loop makes them; returns whether
        every member finished."""
        for i, u in enumerate(later):
            step = u + 1
            recorder.env_step(u, actions[i], StepResult(None, rewards, ends[i, :, 0], ends[i, :, 1], None))
            replay.advance()
            if trained is not None:
                batch_of, y, losses, finite = trained
                updates += 1
                synced = plans[i][0] if plans is not None else target.after_update(online, updates, step)
                if on_update is not None:
                    on_update(step, updates, online, target.network)
                last = i == len(later) - 1  # only the chunk's last update can have its drift measured
                diverged = recorder.gradient_update_recorded(
                    step, batch_of if last else None, y if last else None, losses[i], finite[i], synced, online, target
                )
                if diverged.any():
                    stop_seeds(diverged, online, target.network, optimizer)
            target.sync_after_updates(online, config.clock(u), step, updates)
            if progress is not None:
                progress(1)
            if recorder.end_of_step(step, updates, online, target, replay):
                return True
        return False

    def record_at_once(later: range, actions, ends, trained, plans, updates: int) -> bool:
        """The same records for a chunk in which no update but the last made a seed diverge, in
        one pass per kind: what the host does between graph calls is most of a step at small K.
        Nothing in between can change (chunk_length ends a chunk at a checkpoint or a sync)."""
        if any(checkpoint_due(config, u + 1) for u in later[:-1]):
            raise RuntimeError(f"a chunk of env steps {later.start + 1}..{later.stop} passes a checkpoint")
        recorder.env_steps(later.start, actions, rewards, ends[..., 0], ends[..., 1])
        replay.advance(len(later))
        trains = trained is not None
        if trains:
            batch_of, y, losses, finite = trained
            if plans is not None:
                synced = np.stack([plan[0] for plan in plans])
            else:
                synced = target.after_updates(online, updates, len(later), later.start + 1)
            steps = range(later.start + 1, later.stop + 1)
            diverged = recorder.chunk_updates_recorded(steps, batch_of, y, losses, finite, synced, online, target)
            if diverged.any():
                stop_seeds(diverged, online, target.network, optimizer)
        for i, u in enumerate(later):
            target.sync_after_updates(online, config.clock(u), u + 1, updates + (i + 1) * trains)
        if progress is not None:
            progress(len(later))
        return recorder.end_of_step(later.stop, updates + len(later) * trains, online, target, replay)

    t, updates, all_finished = 0, 0, False
    while t < config.total_env_steps and not all_finished:
        n = chunk_length(config, target, moving, t, updates, lengths)
        # The env-step syncs due before the first step's updates (chunk_length ends a chunk
        # before any other): no parameter changes between a step's acting and its update.
        target.sync_before_updates(online, config.clock(t), t + 1, updates)
        trains = config.trains_at(config.clock(t))
        later = range(t, t + n)
        uniforms = explore.rows(n)
        epsilons = np.stack([knobs.epsilon(u) for u in later])
        replay_draws = replay_uniforms.rows(n) if trains else None
        # Where the graph applies the target rule, the host decides which seeds it changes first.
        plans = None
        if trains and step_graph.applies_target_rule:
            plans = [target.plan_after_update(updates + i + 1, t + i + 1) for i in range(n)]
        steps, trained = step_graph(t, uniforms, epsilons, replay_draws, plans)
        actions, ends = steps[..., 0], steps[..., 1:].astype(bool)  # ends: terminated, truncated
        if trained is not None:
            sampled, y, losses, finite = trained
            trained = (functools.partial(unpack, sampled, spec.obs_dim), y, losses, finite)
        quiet = trained is None or not (recorder.alive & ~finite[:-1]).any()
        record = record_at_once if on_update is None and quiet else record_step_by_step
        all_finished = record(later, actions, ends, trained, plans, updates)
        updates += n if trained is not None else 0
        t += n
    records = recorder.records(time.perf_counter() - started)
    for record in records:
        record.compile_s = update.timer.seconds
    return records
