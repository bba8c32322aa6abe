"""The training engine: K independent DQN agents (seeds) trained in lockstep in one process.

One function, `train`, is the whole algorithm. Every tensor carries the seed axis first, so
K = 1 is simply the ordinary single-agent case. Seeds never share random numbers (see
agents.seeding), and a seed whose loss or gradient turns non-finite is stopped and recorded
as diverged without disturbing the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from agents.config import AgentConfig
from agents.diagnostics import DriftMeter, UpdateWindow, greedy_eval, probe_transitions, relative_change
from agents.envs import env_spec, make_env_batch
from agents.family import SeedKnobs
from agents.networks import (
    BatchedAdam,
    MLPParams,
    aligned_batch,
    backward,
    clip_grads_,
    forward,
    forward_with_activations,
    global_grad_norm,
    init_params,
    layer_sizes,
)
from agents.replay import ReplayBuffer, UniformBlocks
from agents.seeding import seed_streams


@dataclass
class TrainingRecord:
    """What a run produced, as plain columns; agents.results turns it into DataFrames."""

    config: AgentConfig
    seeds: list[int]
    checkpoints: dict[str, list] = field(default_factory=dict)
    episodes: dict[str, list] = field(default_factory=dict)
    wall_time_s: float = 0.0
    # Per env step actions (T, K) and per update losses (U, K), kept only with trace=True.
    trace_actions: np.ndarray | None = None
    trace_losses: np.ndarray | None = None


def td_targets(
    knobs: SeedKnobs,
    online: MLPParams,
    target: MLPParams | None,
    reward: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    discount: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bellman targets y = r + gamma * (1 - mask) * bootstrap(s'), shape (K, B).

    With multi-step returns (n_step_batch), r is the discounted sum of the window's rewards,
    s' the state after its last transition and `discount` gamma^m for a window of m steps.

    bootstrap(s') = max_a Q_eval(s', a), where Q_eval is the target network if there is one
    and the online network otherwise (in a family, seeds without a target network keep their
    target equal to the online network); with double_q the online network picks the action and
    the target network values it. mask is 1 on terminated transitions when terminal_masking
    is on, and on truncated ones when bootstrap_on_truncation is off (old-gym `done`).
    """
    with torch.no_grad():
        q_next = forward(target if target is not None else online, next_obs)
        bootstrap = q_next.max(2).values
        if knobs.double_q is True or torch.is_tensor(knobs.double_q):
            best = forward(online, next_obs).argmax(2, keepdim=True)
            chosen = q_next.gather(2, best).squeeze(2)
            bootstrap = chosen if knobs.double_q is True else torch.where(knobs.double_q, chosen, bootstrap)
        mask = bootstrap_mask(knobs, terminated, truncated)
        # Same operation order as the textbook: r + (gamma * bootstrap) * (1 - mask).
        return reward + (knobs.gamma if discount is None else discount) * bootstrap * (1.0 - mask.float())


def batch_targets(knobs: SeedKnobs, online: MLPParams, target: MLPParams | None, batch: dict) -> torch.Tensor:
    """td_targets of a sampled batch (one- or multi-step)."""
    return td_targets(
        knobs,
        online,
        target,
        batch["reward"],
        batch["next_obs"],
        batch["terminated"],
        batch["truncated"],
        batch.get("discount"),
    )


def bootstrap_mask(knobs: SeedKnobs, terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """Where the target drops its bootstrap term: terminated transitions with terminal masking,
    truncated ones with old-gym done."""
    mask = torch.zeros_like(terminated)
    for switch, flags in ((knobs.mask_terminated, terminated), (knobs.mask_truncated, truncated)):
        if switch is True:
            mask = mask | flags
        elif torch.is_tensor(switch):
            mask = mask | (flags & switch)
    return mask


def _per_seed_where(switch, buggy: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """A bug switch applied per seed: `buggy` where it is on, `correct` elsewhere."""
    if switch is True:
        return buggy
    if switch is False:
        return correct
    return torch.where(switch.view(-1, *([1] * (correct.dim() - 1))), buggy, correct)


def target_gradient(knobs: SeedKnobs, online: MLPParams, batch: dict, grad_prediction: torch.Tensor) -> list:
    """bug_target_gradient: the gradient that flows through an undetached target
    y = r + gamma * (1 - mask) * max_a Q(s', a) into the online network, as autograd computes
    it: dL/dy = -dL/dQ(s, a) exactly, then through (1 - mask), gamma and the max."""
    acts_next = forward_with_activations(online, batch["next_obs"])
    best = acts_next[-1].argmax(2, keepdim=True)
    keep = 1.0 - bootstrap_mask(knobs, batch["terminated"], batch["truncated"]).float()
    discount = batch.get("discount", knobs.gamma)
    grad_bootstrap = (-grad_prediction * keep) * discount
    grad_q_next = torch.zeros_like(acts_next[-1]).scatter_(2, best, grad_bootstrap.unsqueeze(2))
    return backward(online, acts_next, grad_q_next)


def n_step_batch(buffer: ReplayBuffer, indices: torch.Tensor, first: dict, knobs: SeedKnobs) -> dict:
    """The sampled transitions extended to multi-step windows: from slot i, the following slots
    in insertion order while the window has fewer than the seed's n steps, no episode has ended
    (terminated or truncated: a window never crosses an episode boundary; a truncation ends it
    and bootstraps from its true next state unless old-gym done masks it) and the buffer holds
    a later transition. Returns the batch with reward = sum_j gamma^j r_j (accumulated left to
    right in float32), next_obs, terminated and truncated of the window's last transition, and
    `discount` = gamma^m (float32 products; gamma itself for m = 1)."""
    device = indices.device
    if buffer.capacities is None:
        capacity = buffer.capacity
    else:
        capacity = torch.as_tensor(buffer.capacities, device=device).view(-1, 1)
    newest = (buffer.inserted - 1) % capacity
    later = (newest - indices) % capacity  # transitions inserted after slot i
    n_step = torch.as_tensor(knobs.n_step, device=device).view(-1, 1)
    discount = torch.ones_like(first["reward"]) * knobs.gamma
    reward = first["reward"]
    next_obs, terminated, truncated = first["next_obs"], first["terminated"], first["truncated"]
    open_window = ~(terminated | truncated)
    for j in range(1, knobs.max_n_step):
        use = open_window & (later >= j) & (n_step > j)
        if not bool(use.any()):
            break
        step = buffer.gather((indices + j) % capacity)
        reward = torch.where(use, reward + discount * step["reward"], reward)
        discount = torch.where(use, discount * knobs.gamma, discount)
        next_obs = torch.where(use.unsqueeze(2), step["next_obs"], next_obs)
        terminated = torch.where(use, step["terminated"], terminated)
        truncated = torch.where(use, step["truncated"], truncated)
        open_window = use & ~(step["terminated"] | step["truncated"])
    window = {"reward": reward, "next_obs": next_obs, "terminated": terminated, "truncated": truncated}
    return {**first, **window, "discount": discount}


def loss_and_grad(knobs: SeedKnobs, prediction: torch.Tensor, target: torch.Tensor):
    """Per-seed mean loss (K,) and dLoss/dprediction (K, B), as F.mse_loss / F.huber_loss do."""
    diff = prediction - target
    n = prediction.shape[1]
    if knobs.huber is False:
        return (diff * diff).mean(1), (2.0 / n) * diff
    abs_diff = diff.abs()
    # Huber with delta = 1 (smooth L1): quadratic inside |x| < 1, linear outside.
    huber = torch.where(abs_diff < 1.0, 0.5 * diff * diff, abs_diff - 0.5).mean(1), (1.0 / n) * diff.clamp(-1.0, 1.0)
    if knobs.huber is True:
        return huber
    mse = (diff * diff).mean(1), (2.0 / n) * diff
    return torch.where(knobs.huber.view(-1), huber[0], mse[0]), torch.where(knobs.huber, huber[1], mse[1])


def _in_window(config: AgentConfig, step: int) -> bool:
    """Whether the update at env step `step` is among the last diagnostic_window updates before
    the next checkpoint (per-update diagnostics that cost a forward pass are measured only there)."""
    period = config.eval_period
    next_checkpoint = min(-(-step // period) * period, config.total_env_steps)
    every = config.env_steps_per_update
    return next_checkpoint // every - step // every < config.diagnostic_window


def train(
    config: AgentConfig,
    seeds: list[int],
    *,
    progress: Callable[[int], None] | None = None,
    trace: bool = False,
    on_update: Callable[[int, int, MLPParams, MLPParams | None], None] | None = None,
) -> TrainingRecord:
    """Train one agent per seed for config.total_env_steps env steps; return the record.

    progress(n) is told of every n env steps done; on_update(env_step, updates, online, target)
    sees the networks after every gradient update and target update (for tests and probes; it
    must not modify them unless it means to).
    """
    return train_family([(config, seeds)], progress=progress, trace=trace, on_update=on_update)[0]


def train_family(
    members: list[tuple[AgentConfig, list[int]]],
    *,
    progress: Callable[[int], None] | None = None,
    trace: bool = False,
    on_update: Callable[[int, int, MLPParams, MLPParams | None], None] | None = None,
) -> list[TrainingRecord]:
    """Train several configs of one family (agents.family) on one seed axis: member m's seeds
    occupy their own slots, with that member's knobs. Returns one record per member, each
    identical to training that member alone."""
    if not members:
        raise ValueError("members=[] is invalid: give at least one (config, seeds) pair")
    for _config, seeds in members:
        if not seeds:
            raise ValueError("seeds=[] is invalid: give at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds={seeds!r} is invalid: seeds must be distinct")
    started = time.perf_counter()
    config = members[0][0]  # the family's shared fields (agents.family.FAMILY_FIELDS)
    slot_configs = [c for c, seeds in members for _ in seeds]
    all_seeds = [s for _, seeds in members for s in seeds]
    bounds = np.cumsum([0] + [len(seeds) for _, seeds in members])
    device = torch.device(config.device)
    knobs = SeedKnobs.of(slot_configs, device)
    spec = env_spec(config.env_id)
    num_seeds = len(all_seeds)
    streams = [seed_streams(s) for s in all_seeds]
    online = init_params(
        [s.init for s in streams],
        layer_sizes(spec.obs_dim, config.hidden_sizes, spec.num_actions),
        device,
        config.layer_norm,
    )
    target = online.clone() if knobs.any_target else None
    optimizer = BatchedAdam(online, knobs.learning_rate)
    explore = UniformBlocks([s.explore for s in streams], width=2)
    replay_uniforms = UniformBlocks([s.replay for s in streams], width=config.batch_size)
    buffer = ReplayBuffer(num_seeds, knobs.capacity, spec.obs_dim, device)
    window = UpdateWindow(num_seeds, config.diagnostic_window, config.batch_size, spec.obs_dim, device)
    drift_meter = DriftMeter(num_seeds)
    # Without a target network, with polyak averaging or with double Q the TD targets move on
    # every update; a plain hard target moves only when it is synced.
    double = knobs.double_q.view(-1).cpu().numpy() if torch.is_tensor(knobs.double_q) else knobs.double_q
    targets_move = ~knobs.hard | double
    # Seeds without a target network in a family that has one: their target mirrors online.
    mirrored = torch.from_numpy(~knobs.has_target).to(device) if target is not None else None
    # Polyak seeds by tau (a stale-target seed is never averaged: bug_stale_target).
    polyak_groups = [
        (tau, torch.from_numpy((knobs.tau == tau) & ~knobs.stale_target).to(device))
        for tau in sorted(set(knobs.tau[np.isfinite(knobs.tau) & ~knobs.stale_target]))
    ]
    transitions = probe_transitions(config.env_id)
    gammas = np.array([c.gamma for c in slot_configs])

    def shared(array: np.ndarray) -> torch.Tensor:
        """A probe array shared by every seed, viewed with a leading seed axis."""
        tensor = torch.tensor(array, device=device)
        return tensor.expand(num_seeds, *tensor.shape)

    probe = shared(transitions.obs)
    probe_reward, probe_next = shared(transitions.reward), shared(transitions.next_obs)
    probe_terminated, probe_truncated = shared(transitions.terminated), shared(transitions.truncated)
    previous_probe_targets = torch.full((num_seeds, len(transitions.reward)), float("nan"), device=device)
    has_previous = np.zeros(num_seeds, dtype=bool)

    env = make_env_batch(spec, num_seeds)
    obs = env.reset([s.env_reset_seed for s in streams])
    # Acting reads each seed's observation from an aligned row (see networks.batched_matmul).
    acting_obs = aligned_batch(num_seeds, 1, spec.obs_dim, device)

    previous_terminated = torch.zeros(num_seeds, dtype=torch.bool)  # bug_terminal_shift
    accumulated = None  # the last update's gradients (bug_no_zero_grad)
    alive = np.ones(num_seeds, dtype=bool)
    diverged_step = np.full(num_seeds, -1, dtype=np.int64)
    episode_return = np.zeros(num_seeds)
    episode_length = np.zeros(num_seeds, dtype=np.int64)
    # Largest |reward| seen in training: the soft-divergence bound of envs with no known bound.
    max_abs_reward_seen = np.zeros(num_seeds)
    updates = 0
    last_sync_update = np.zeros(num_seeds, dtype=np.int64)
    last_sync_step = np.zeros(num_seeds, dtype=np.int64)
    # Per member: checkpoint columns, episode columns, and the step/update where it finished
    # (its last checkpoint: the run's end, or the step its last seed diverged).
    checkpoints: list[dict[str, list]] = [{} for _ in members]
    episode_names = ("seed", "env_step", "episode_return", "episode_length", "terminated", "truncated")
    episodes: list[dict[str, list]] = [{name: [] for name in episode_names} for _ in members]
    finished: list[tuple[int, int] | None] = [None] * len(members)
    member_of = np.repeat(np.arange(len(members)), np.diff(bounds))
    trace_actions = np.zeros((config.total_env_steps, num_seeds), dtype=np.int64) if trace else None
    trace_losses: list[np.ndarray] = []
    seed_array = np.asarray(all_seeds)

    def stop_seeds(bad: np.ndarray, step: int) -> None:
        """Record seeds with a non-finite value as diverged and zero their state."""
        alive[bad] = False
        diverged_step[bad] = step
        mask = torch.from_numpy(bad).to(device)
        for params in (online, target):
            if params is not None:
                for tensor in params.tensors():
                    tensor[mask] = 0.0
        optimizer.reset_seeds(mask)

    def checkpoint(step: int, recorded: list[int]) -> None:
        """Diagnostics of every seed; rows for the members in `recorded` only."""
        seeds_recorded = np.isin(member_of, recorded)
        with torch.no_grad():
            q_probe = forward(online, probe)
        if config.eval_episodes > 0:
            eval_returns, overestimation = greedy_eval(
                online, spec, num_seeds, config.eval_episodes, device, gamma=gammas
            )
        else:
            eval_returns, overestimation = np.full((num_seeds, 1), np.nan), np.full(num_seeds, np.nan)
        stats = window.summary()
        stats["target_drift_per_update"] = drift_meter.per_update(stats["target_drift_between_syncs"], seeds_recorded)
        if target is not None:
            distance = np.where(knobs.has_target, target.distance(online).cpu().numpy(), np.nan)
        else:
            distance = np.full(num_seeds, np.nan)
        lag_updates = np.where(knobs.hard, updates - last_sync_update, np.nan)
        lag_steps = np.where(knobs.hard, step - last_sync_step, np.nan)
        # Target drift between checkpoints: how far the TD targets of the fixed probe
        # transitions moved since the seed's last checkpoint, relative to their size.
        probe_targets = td_targets(knobs, online, target, probe_reward, probe_next, probe_terminated, probe_truncated)
        checkpoint_drift = np.where(
            has_previous, relative_change(probe_targets, previous_probe_targets).cpu().numpy(), np.nan
        )
        keep = torch.from_numpy(seeds_recorded).to(device)
        previous_probe_targets[keep] = probe_targets[keep]
        has_previous[seeds_recorded] = True
        fill = buffer.fill()
        columns = {
            "seed": seed_array,
            "env_step": step,
            "gradient_updates": updates,
            "epsilon": knobs.epsilon(step - 1),
            "eval_return": eval_returns.mean(1),
            "eval_return_std": eval_returns.std(1),
            "overestimation": overestimation,
            "max_abs_q": q_probe.abs().amax(dim=(1, 2)).double().cpu().numpy(),
            "mean_q": q_probe.double().mean(dim=(1, 2)).cpu().numpy(),
            **stats,
            "target_drift_checkpoint": checkpoint_drift,
            "target_distance": distance,
            "target_lag_updates": lag_updates,
            "target_lag_env_steps": lag_steps,
            "replay_fill": fill / knobs.capacity if config.uses_replay else np.nan,
            "max_abs_reward_seen": max_abs_reward_seen,
            "diverged": ~alive,
            "diverged_step": diverged_step,
        }
        for name, value in columns.items():
            values = np.broadcast_to(np.asarray(value), (num_seeds,))
            if name not in ("seed", "env_step", "gradient_updates", "diverged", "diverged_step"):
                values = np.where(alive, values, np.nan)
            for m in recorded:
                checkpoints[m].setdefault(name, []).extend(values[bounds[m] : bounds[m + 1]].tolist())

    for t in range(config.total_env_steps):
        # --- act: epsilon-greedy, both uniforms drawn every step so streams stay aligned ---
        u = explore.next()
        obs_tensor = torch.from_numpy(obs).to(device)
        acting_obs.copy_(obs_tensor.unsqueeze(1))
        with torch.no_grad():
            greedy = forward(online, acting_obs).squeeze(1).argmax(1).cpu().numpy()
        random_action = (u[:, 1] * spec.num_actions).astype(np.int64)
        actions = np.where(u[:, 0] < knobs.epsilon(t), random_action, greedy)
        if trace_actions is not None:
            trace_actions[t] = actions
        result = env.step(actions)
        terminated = torch.from_numpy(result.terminated)
        if knobs.bug_terminal_shift is not False:
            # Stored with the previous step's flag: the real last transition looks non-terminal
            # and the first of the next episode terminal.
            stored_terminated = _per_seed_where(knobs.bug_terminal_shift, previous_terminated, terminated)
            previous_terminated = terminated
        else:
            stored_terminated = terminated
        buffer.add(
            obs_tensor,
            torch.from_numpy(actions),
            torch.from_numpy(result.reward.astype(np.float32)),
            torch.from_numpy(result.next_obs),
            stored_terminated,
            torch.from_numpy(result.truncated),
            t,
        )
        episode_return += result.reward
        episode_length += 1
        np.maximum(max_abs_reward_seen, np.abs(result.reward), out=max_abs_reward_seen)
        ended = result.terminated | result.truncated
        for i in np.flatnonzero(ended & alive):
            log = episodes[member_of[i]]
            log["seed"].append(int(all_seeds[i]))
            log["env_step"].append(t + 1)
            log["episode_return"].append(float(episode_return[i]))
            log["episode_length"].append(int(episode_length[i]))
            log["terminated"].append(bool(result.terminated[i]))
            log["truncated"].append(bool(result.truncated[i]))
        episode_return[ended] = 0.0
        episode_length[ended] = 0
        obs = result.obs
        step = t + 1

        # --- learn ---
        if step >= config.learning_starts and step % config.env_steps_per_update == 0:
            if config.uses_replay:
                indices = buffer.sample_indices(replay_uniforms.next())
            else:
                # No replay: the transition just stored, in the buffer's single slot.
                indices = torch.zeros((num_seeds, 1), dtype=torch.int64, device=device)
            batch = buffer.gather(indices)
            if knobs.max_n_step > 1:
                batch = n_step_batch(buffer, indices, batch, knobs)
            y = batch_targets(knobs, online, target, batch)
            acts = forward_with_activations(online, batch["obs"])
            q = acts[-1]
            action_index = batch["action"].unsqueeze(2)
            if knobs.bug_greedy_gather is not False:
                action_index = _per_seed_where(knobs.bug_greedy_gather, q.argmax(2, keepdim=True), action_index)
            prediction = q.gather(2, action_index).squeeze(2)
            loss, grad_prediction = loss_and_grad(knobs, prediction, y)
            grad_q = torch.zeros_like(q).scatter_(2, action_index, grad_prediction.unsqueeze(2))
            grads = backward(online, acts, grad_q)
            if knobs.bug_target_gradient is not False:
                through_target = target_gradient(knobs, online, batch, grad_prediction)
                grads = [_per_seed_where(knobs.bug_target_gradient, g + t, g) for g, t in zip(grads, through_target)]
            if knobs.bug_no_zero_grad is not False and accumulated is not None:
                # .grad was never zeroed: this update's gradient adds to the (clipped) last one.
                grads = [_per_seed_where(knobs.bug_no_zero_grad, a + g, g) for a, g in zip(accumulated, grads)]
            grad_norm = global_grad_norm(grads)
            if knobs.max_grad_norm is not None:
                clip_grads_(grads, grad_norm, knobs.max_grad_norm)
            accumulated = grads
            optimizer.step(grads)
            updates += 1
            synced = knobs.hard & (updates % np.maximum(knobs.sync_period, 1) == 0) & ~knobs.stale_target
            if target is not None:
                copied = torch.from_numpy(synced).to(device) | mirrored
                if bool(copied.all()):
                    target.copy_(online)
                elif bool(copied.any()):
                    target.copy_seeds_(online, copied)
                for tau, seeds_with_tau in polyak_groups:
                    if bool(seeds_with_tau.all()):
                        target.polyak_(online, tau)
                    else:
                        target.polyak_seeds_(online, tau, seeds_with_tau)
            last_sync_update[synced], last_sync_step[synced] = updates, step
            if on_update is not None:
                on_update(step, updates, online, target if knobs.any_target else None)
            # The moving target: how far this update (with any sync) moved the TD targets of the
            # batch it learned from, relative to their size. Measured at every sync and, where
            # targets move on every update, on the window's updates; otherwise exactly 0.
            measured = synced | (targets_move & _in_window(config, step))
            drift = np.where(targets_move, np.nan, 0.0)
            if measured.any():
                y_after = batch_targets(knobs, online, target, batch)
                drift = np.where(measured, relative_change(y_after, y).cpu().numpy(), drift)
            drift_meter.update(synced, drift)
            window.record(
                loss,
                grad_norm,
                y,
                prediction.detach() - y,
                step - 1 - batch["insert_step"],
                batch["terminated"],
                batch["obs"],
                torch.from_numpy(np.where(synced, np.nan, drift)).to(device),
            )
            if trace:
                trace_losses.append(loss.cpu().numpy())
            finite = (torch.isfinite(loss) & torch.isfinite(grad_norm)).cpu().numpy()
            bad = alive & ~finite
            if bad.any():
                stop_seeds(bad, step)

        # A member whose every seed diverged gets its last checkpoint now and no more rows:
        # later checkpoints would only repeat NaN rows (and alone it would have stopped here).
        regular = step % config.eval_period == 0 or step == config.total_env_steps
        recorded = []
        for m in range(len(members)):
            if finished[m] is not None:
                continue
            stopped = not alive[bounds[m] : bounds[m + 1]].any()
            if regular or stopped:
                recorded.append(m)
            if stopped or step == config.total_env_steps:
                finished[m] = (step, updates)
        if recorded:
            checkpoint(step, recorded)
        if progress is not None:
            progress(1)
        if all(f is not None for f in finished):
            break

    env.close()
    elapsed = time.perf_counter() - started
    losses = np.asarray(trace_losses).reshape(-1, num_seeds) if trace else None
    records = []
    for m, (member_config, seeds) in enumerate(members):
        slots = slice(bounds[m], bounds[m + 1])
        last_step, last_update = finished[m]
        records.append(
            TrainingRecord(
                config=member_config,
                seeds=list(seeds),
                checkpoints=checkpoints[m],
                episodes=episodes[m],
                # The family's wall time shared out by seeds: what this member cost.
                wall_time_s=elapsed * len(seeds) / num_seeds,
                trace_actions=trace_actions[:last_step, slots] if trace else None,
                trace_losses=losses[:last_update, slots] if trace else None,
            )
        )
    return records
