"""The engine's fused path: the compiled path with the whole env step in one compiled graph.

`train(config, seeds, path="fused")` runs acting (the online network's greedy action and each
seed's epsilon draw), CartPole's physics, the replay store, the sample and the compiled path's
update (agents/engine/compiled.py) as one TorchInductor graph per env step, with a dynamic seed
axis and the same user compile cache. The host keeps what reads the host: each seed's own random
draws (the UniformBlocks rows and the env's reset table, agents/engine/torch_envs.py), target
syncs, divergence stops, the recorder. CartPole steps with torch's trig inside the graph (within
an ulp of gymnasium's, not identical), so the path agrees with the others within float
tolerance. Runs it does not cover (another env, an injected bug, n-step windows, per-seed
replay capacities, more than one update per training step, no replay) take the compiled path.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from agents.engine.compiled import BATCH_FIELDS, GRAPH_OPTIONS, CompiledUpdate, fused_update, use_persistent_cache
from agents.engine.envs import StepResult
from agents.engine.replay import ReplayBuffer
from agents.engine.torch_envs import TorchCartPole, cartpole_physics
from agents.engine.update import UpdateResult

ENV_ID = "CartPole-v1"


def fuses(configs: list) -> bool:
    """Whether the fused path covers a family (else it trains on the compiled path)."""
    first = configs[0]
    return (
        first.env_id == ENV_ID
        and all(c.n_step == 1 and c.uses_replay for c in configs)
        and len({c.replay_capacity for c in configs}) == 1
        and first.gradient_steps == 1
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


def _greedy(params: list[torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    h = obs.unsqueeze(1)
    weights, biases = params[0::2], params[1::2]
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < len(weights) - 1:
            h = h.relu()
    return h.squeeze(1).argmax(1)


def fused_step(carry: dict, draws: dict, clock: dict, update_args: tuple | None, limit: int):
    """One env step of every seed, in place on the env state, the replay stores and (when
    update_args is given) the networks and Adam's moments. Returns the step's (actions, next
    obs, terminated, truncated) and, with an update, (batch, y, Q(s, a), loss, grad norm)."""
    state, stores = carry["state"], carry["stores"]
    obs = state.float()
    greedy = _greedy(carry["params"], obs)
    uniforms = draws["explore"]
    # epsilon_greedy's rule: random where the first uniform is below epsilon.
    random_action = (uniforms[:, 1] * carry["num_actions"]).long()
    actions = torch.where(uniforms[:, 0] < draws["epsilon"], random_action, greedy)
    new_state, terminated, truncated, elapsed = cartpole_physics(state, actions, carry["elapsed"], limit)
    next_obs = new_state.float()
    seeds = torch.arange(state.shape[0], device=state.device)
    position = clock["position"]
    fields = {
        "obs": obs,
        "action": actions,
        "reward": torch.ones_like(obs[:, 0]),
        "next_obs": next_obs,
        "terminated": terminated,
        "truncated": truncated,
        "insert_step": clock["env_step"].expand_as(actions),
    }
    for name, value in fields.items():
        stores[name].index_put_((seeds, position), value)
    state.copy_(new_state)
    carry["elapsed"].copy_(elapsed)
    step = (actions, next_obs, terminated, truncated)
    if update_args is None:
        return step, None
    capacity = stores["obs"].shape[1]
    flat = (draws["slots"] + seeds.unsqueeze(1) * capacity).reshape(-1)
    batch = {}
    for name, store in stores.items():
        rows = store.reshape(-1, *store.shape[2:]).index_select(0, flat)
        batch[name] = rows.view(*draws["slots"].shape, *store.shape[2:])
    head, tail = update_args[:4], update_args[4:]
    update_batch = {name: batch[name] for name in BATCH_FIELDS if name in batch}
    return step, (batch, *fused_update(*head, update_batch, *tail))


@functools.cache
def _compiled_step():
    use_persistent_cache()
    return torch.compile(fused_step, fullgraph=True, options=GRAPH_OPTIONS)


class FusedStep:
    """The loop's env step on the fused path: acting, env, store and (when training) sample and
    update in one graph call; the env's resets and the replay's counters on the host."""

    def __init__(self, update: CompiledUpdate, buffer: ReplayBuffer, env: TorchCartPole, num_actions: int):
        self.update, self.buffer, self.env = update, buffer, env
        self.num_actions = num_actions
        self._function = _compiled_step()
        self._seen: set[bool] = set()  # graphs called so far: without and with an update

    def __call__(self, env_step: int, uniforms: np.ndarray, epsilon: np.ndarray, replay_uniforms):
        """Step every env (and update when replay_uniforms is not None): the StepResult, the
        actions (numpy) and (batch, UpdateResult) or None."""
        buffer, env, device = self.buffer, self.env, self.buffer.obs.device
        stores = {name: getattr(buffer, name) for name in ReplayBuffer.FIELDS}
        carry = {
            "params": self.update.online.tensors(),
            "state": env._state,
            "elapsed": env._elapsed,
            "stores": stores,
            "num_actions": self.num_actions,
        }
        draws = {
            "explore": torch.from_numpy(np.ascontiguousarray(uniforms)).to(device),
            "epsilon": torch.from_numpy(np.asarray(epsilon, dtype=np.float64)).to(device),
        }
        clock = {
            "position": torch.tensor(buffer.position, device=device),
            "env_step": torch.tensor(env_step, device=device),
        }
        update_args = None
        if replay_uniforms is not None:
            # Sampled after the store, as replay.sample_batch: the transition just stored counts.
            fill = min(buffer.size + 1, buffer.capacity)
            draws["slots"] = torch.from_numpy((replay_uniforms * fill).astype(np.int64)).to(device)
            head, tail = self.update._update_args()
            update_args = (*head, *tail)
        learning = update_args is not None
        first = learning not in self._seen
        if first:  # one graph for every K >= 2, timed apart (compile or cache load)
            self._mark(carry, draws, update_args)
            self._seen.add(learning)
        started = time.perf_counter()
        step, update = self._function(carry, draws, clock, update_args, env.spec.max_episode_steps)
        if first:
            self.update.timer.seconds += time.perf_counter() - started
        buffer.inserted += 1
        buffer.position = (buffer.position + 1) % buffer.capacity
        buffer.size = min(buffer.size + 1, buffer.capacity)
        actions, next_obs, terminated, truncated = step
        result = self._finish_envs(next_obs, terminated, truncated)
        if update is None:
            return result, actions.cpu().numpy(), None
        batch, y, prediction, loss, grad_norm = update
        return result, actions.cpu().numpy(), (batch, UpdateResult(y, prediction, loss, grad_norm))

    @staticmethod
    def _mark(carry: dict, draws: dict, update_args: tuple | None) -> None:
        tensors = [carry["state"], carry["elapsed"], *carry["stores"].values(), *carry["params"], *draws.values()]
        if update_args is not None:
            for arg in update_args[:4]:
                tensors += list(arg or [])
            tensors += [k for k in update_args[4] if torch.is_tensor(k)]
            if update_args[5].dim() > 0:
                tensors.append(update_args[5])
        for tensor in tensors:
            if tensor.dim() > 0:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)

    def _finish_envs(self, next_obs, terminated, truncated) -> StepResult:
        """Reset the envs whose episode ended (their next start from the env's reset table)."""
        env = self.env
        ended = np.flatnonzero((terminated | truncated).cpu().numpy())
        obs = next_obs
        if ended.size:
            index = torch.from_numpy(ended).to(env._state.device)
            starts = env._next_starts(ended)
            env._state[index] = starts
            env._elapsed[index] = 0
            obs = next_obs.clone()
            obs[index] = starts.float()
        arrays = (next_obs, terminated, truncated, obs)
        next_obs, terminated, truncated, obs = (a.cpu().numpy() for a in arrays)
        return StepResult(next_obs, np.ones(env.num_envs), terminated, truncated, obs)


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
    buffer = ReplayBuffer(num_seeds, knobs.capacity, spec.obs_dim, device)
    recorder = Recorder(members, knobs, spec, device, trace)
    env = TorchCartPole(spec, num_seeds, device)
    env.reset([s.env_reset_seed for s in streams])
    step_graph = FusedStep(update, buffer, env, spec.num_actions)
    updates = 0
    for t in range(config.total_env_steps):
        uniforms = explore.next()
        step, clock = t + 1, config.clock(t)
        # The env-step syncs due before this step's updates: no parameter changes between this
        # step's acting and its update, so they may run before the graph acts.
        target.sync_before_updates(online, clock, step, updates)
        trains = config.trains_at(clock)
        draws = replay_uniforms.next() if trains else None
        result, actions, trained = step_graph(t, uniforms, knobs.epsilon(t), draws)
        recorder.env_step(t, actions, result)
        if trained is not None:
            batch, result_of_update = trained
            updates += 1
            synced = target.after_update(online, updates, step)
            if on_update is not None:
                on_update(step, updates, online, target.network)
            diverged = recorder.gradient_update(step, batch, result_of_update, synced, online, target)
            if diverged.any():
                stop_seeds(diverged, online, target.network, optimizer)
        target.sync_after_updates(online, clock, step, updates)
        all_finished = recorder.end_of_step(step, updates, online, target, buffer)
        if progress is not None:
            progress(1)
        if all_finished:
            break
    records = recorder.records(time.perf_counter() - started)
    for record in records:
        record.compile_s = update.timer.seconds
    return records
