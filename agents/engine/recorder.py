"""What a training run records, observed from outside the algorithm: the episode log, the
diagnostics at every checkpoint, divergence, and when each member of a family is finished.

The recorder reads the networks and the update's results and never changes them; the one
extra forward pass it makes per measured update (target drift) is on a copy of no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from agents.config import AgentConfig
from agents.engine.bellman import batch_targets, td_targets
from agents.engine.envs import EnvSpec
from agents.engine.family import SeedKnobs
from agents.engine.measurements import DriftMeter, UpdateWindow, greedy_eval, probe_transitions, relative_change
from agents.engine.networks import MLPParams, forward
from agents.engine.replay import ReplayBuffer
from agents.engine.targets import TargetNetwork
from agents.engine.update import UpdateResult

EPISODE_COLUMNS = ("seed", "env_step", "episode_return", "episode_length", "terminated", "truncated")
# Checkpoint columns kept for a diverged seed; every other column is NaN once it diverged.
KEPT_AFTER_DIVERGENCE = ("seed", "env_step", "gradient_updates", "diverged", "diverged_step")


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
    path: str = "exact"  # the engine's execution path (agents.config.ENGINE_PATHS)
    # Seconds the compiled path spent compiling or loading its graph (in wall_time_s too); 0 otherwise.
    compile_s: float = 0.0


def checkpoint_due(config: AgentConfig, step: int) -> bool:
    """Whether env step `step` (1-based) ends with a regular checkpoint (every eval_period, and
    at the run's end)."""
    return step % config.eval_period == 0 or step == config.total_env_steps


def in_diagnostic_window(config: AgentConfig, step: int) -> bool:
    """Whether the updates at env step `step` are among the last diagnostic_window updates before
    the next checkpoint (per-update diagnostics that cost a forward pass are measured only there):
    the last ceil(window / gradient_steps) training steps, whole bursts, so a burst of many updates
    per training step measures about `window` updates rather than every one."""
    period = config.eval_period
    next_checkpoint = min(-(-step // period) * period, config.total_env_steps)
    every = config.env_steps_per_update
    bursts = -(-config.diagnostic_window // config.gradient_steps)
    return next_checkpoint // every - step // every < bursts


class _Probe:
    """Fixed transitions of a random policy, shared by every seed: max |Q| and mean Q on their
    states, and how far their TD targets moved from one checkpoint to the next."""

    def __init__(self, env_id: str, num_seeds: int, device):
        transitions = probe_transitions(env_id)

        def shared(array: np.ndarray) -> torch.Tensor:
            tensor = torch.tensor(array, device=device)
            return tensor.expand(num_seeds, *tensor.shape)

        self.obs, self.reward, self.next_obs = (
            shared(transitions.obs),
            shared(transitions.reward),
            shared(transitions.next_obs),
        )
        self.terminated, self.truncated = shared(transitions.terminated), shared(transitions.truncated)
        self.previous_targets = torch.full((num_seeds, len(transitions.reward)), float("nan"), device=device)
        self.has_previous = np.zeros(num_seeds, dtype=bool)

    def measure(self, knobs: SeedKnobs, online: MLPParams, target: MLPParams | None, seeds: np.ndarray) -> dict:
        """Q on the probe states and the targets' drift since the seed's last checkpoint, relative
        to their size; the given seeds (a mask) start a new interval."""
        with torch.no_grad():
            q = forward(online, self.obs)
        targets = td_targets(knobs, online, target, self.reward, self.next_obs, self.terminated, self.truncated)
        drift = np.where(self.has_previous, relative_change(targets, self.previous_targets).cpu().numpy(), np.nan)
        keep = torch.from_numpy(seeds).to(targets.device)
        self.previous_targets[keep] = targets[keep]
        self.has_previous[seeds] = True
        return {
            "max_abs_q": q.abs().amax(dim=(1, 2)).double().cpu().numpy(),
            "mean_q": q.double().mean(dim=(1, 2)).cpu().numpy(),
            "target_drift_checkpoint": drift,
        }


class Recorder:
    """The run's records for every member of a family (member m owns seed slots bounds[m]:bounds[m+1])."""

    def __init__(self, members: list, knobs: SeedKnobs, spec: EnvSpec, device, trace: bool):
        self.members = members
        self.config = members[0][0]
        self.knobs, self.spec, self.device = knobs, spec, device
        self.seeds = np.asarray([s for _, seeds in members for s in seeds])
        num_seeds = len(self.seeds)
        self.bounds = np.cumsum([0] + [len(seeds) for _, seeds in members])
        self.member_of = np.repeat(np.arange(len(members)), np.diff(self.bounds))
        self.gammas = np.array([c.gamma for c in knobs.configs])
        self.window = UpdateWindow(
            num_seeds, self.config.diagnostic_window, self.config.batch_size, spec.obs_dim, device
        )
        self.drift_meter = DriftMeter(num_seeds)
        self.probe = _Probe(self.config.env_id, num_seeds, device)
        self.alive = np.ones(num_seeds, dtype=bool)
        self.diverged_step = np.full(num_seeds, -1, dtype=np.int64)
        self.episode_return = np.zeros(num_seeds)
        self.episode_length = np.zeros(num_seeds, dtype=np.int64)
        # Largest |reward| seen in training: the soft-divergence bound of envs with no known bound.
        self.max_abs_reward_seen = np.zeros(num_seeds)
        self.checkpoints: list[dict[str, list]] = [{} for _ in members]
        self.episodes: list[dict[str, list]] = [{name: [] for name in EPISODE_COLUMNS} for _ in members]
        # Per member, the step and update where it finished (its last checkpoint: the run's end,
        # or the step its last seed diverged).
        self.finished: list[tuple[int, int] | None] = [None] * len(members)
        self.trace_actions = np.zeros((self.config.total_env_steps, num_seeds), dtype=np.int64) if trace else None
        self.trace_losses: list[np.ndarray] | None = [] if trace else None

    def env_step(self, t: int, actions: np.ndarray, result) -> None:
        """Env step t (0-based): the actions taken and the episodes that ended."""
        self.env_steps(t, actions[None], result.reward, result.terminated[None], result.truncated[None])

    def env_steps(self, t: int, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray, truncated) -> None:
        """Env steps t .. t + n - 1 at once (actions, terminated, truncated (n, K); rewards (n, K)
        or (K,) for every step), recorded exactly as n calls of env_step would: each episode's
        return is summed step by step, and the ended episodes are logged in step, then seed, order."""
        n = len(actions)
        if self.trace_actions is not None:
            self.trace_actions[t : t + n] = actions
        rewards = np.broadcast_to(rewards, actions.shape)
        np.maximum(self.max_abs_reward_seen, np.abs(rewards).max(0), out=self.max_abs_reward_seen)
        ended = terminated | truncated
        start = 0
        # Steps where some episode ended, and the last: each closes a stretch of steps.
        for i in sorted({*np.flatnonzero(ended.any(1)).tolist(), n - 1}):
            # add.accumulate adds row after row: the same sums, in the same order, as a step loop
            self.episode_return = np.add.accumulate(
                np.concatenate([self.episode_return[None], rewards[start : i + 1]]), axis=0
            )[-1]
            self.episode_length += i + 1 - start
            start = i + 1
            for k in np.flatnonzero(ended[i] & self.alive):
                log = self.episodes[self.member_of[k]]
                log["seed"].append(int(self.seeds[k]))
                log["env_step"].append(t + i + 1)
                log["episode_return"].append(float(self.episode_return[k]))
                log["episode_length"].append(int(self.episode_length[k]))
                log["terminated"].append(bool(terminated[i, k]))
                log["truncated"].append(bool(truncated[i, k]))
            self.episode_return[ended[i]] = 0.0
            self.episode_length[ended[i]] = 0

    def gradient_update(self, step: int, batch: dict, result: UpdateResult, synced, online, target) -> np.ndarray:
        """Window statistics of an update; returns the seeds it made diverge (K,) bool."""
        drift = self._target_drift(step, lambda: batch, result.td_target, synced, online, target)
        self.window.record(
            result.loss,
            result.grad_norm,
            result.td_target,
            result.prediction - result.td_target,
            step - 1 - batch["insert_step"],
            batch["terminated"],
            batch["obs"],
            torch.from_numpy(drift).to(self.device),
        )
        return self._diverged(step, result.loss, result.finite)

    def gradient_update_recorded(self, step: int, batch_of, td_target, loss, finite, synced, online, target):
        """gradient_update for a step graph that wrote the rest of the window's row itself (the
        loss, the targets, the batch's ages, terminals and states); batch_of() gives the batch
        when the drift is measured. Returns the seeds the update made diverge."""
        row = self.window.count % self.window.size
        self.window.count += 1
        drift = self._target_drift(step, batch_of, td_target, synced, online, target)
        self.window.target_drift[:, row] = torch.from_numpy(drift).to(self.device)
        return self._diverged(step, loss, finite)

    def chunk_updates_recorded(self, steps: range, batch_of, td_target, losses, finite, synced, online, target):
        """gradient_update_recorded for the updates of a chunk's env steps `steps`, one each (losses
        (n, K) tensor; finite and synced (n, K) numpy), none but the last making a seed diverge
        (the caller checks: it records a chunk with an earlier divergence update by update). Only
        the last update's drift can be measured (chunk_length ends a chunk there), so the earlier
        ones are written in one pass. Returns the seeds the last update made diverge."""
        early = len(steps) - 1
        moves = target.moves_every_update
        if synced[:early].any() or (moves.any() and any(in_diagnostic_window(self.config, s) for s in steps[:early])):
            raise RuntimeError(f"a chunk of env steps {steps.start + 1}..{steps.stop} measures drift before its end")
        rows = torch.from_numpy((self.window.count + np.arange(early)) % self.window.size).to(self.device)
        self.window.count += early
        self.window.target_drift[:, rows] = torch.from_numpy(np.where(moves, np.nan, 0.0)).to(self.device)[:, None]
        self.drift_meter.unsynced(early)
        if self.trace_losses is not None:
            self.trace_losses.extend(losses[:early].cpu().numpy())
        return self.gradient_update_recorded(
            steps[-1], batch_of, td_target, losses[-1], finite[-1], synced[-1], online, target
        )

    def _target_drift(self, step: int, batch_of, td_target, synced, online, target) -> np.ndarray:
        """The moving target: how far this update (with any sync) moved the TD targets of the
        batch it learned from, relative to their size. Measured at every sync and, where targets
        move on every update, on the window's updates; otherwise exactly 0. Returns the window's
        entry (NaN for a synced seed: its jump is counted by the drift meter)."""
        moves = target.moves_every_update
        measured = synced | (moves & in_diagnostic_window(self.config, step))
        drift = np.where(moves, np.nan, 0.0)
        if measured.any():
            y_after = batch_targets(self.knobs, online, target.network, batch_of())
            drift = np.where(measured, relative_change(y_after, td_target).cpu().numpy(), drift)
        self.drift_meter.update(synced, drift)
        return np.where(synced, np.nan, drift)

    def _diverged(self, step: int, loss, finite: np.ndarray) -> np.ndarray:
        if self.trace_losses is not None:
            self.trace_losses.append(loss.cpu().numpy())
        bad = self.alive & ~finite
        self.alive[bad] = False
        self.diverged_step[bad] = step
        return bad

    def end_of_step(self, step: int, updates: int, online, target: TargetNetwork, buffer: ReplayBuffer) -> bool:
        """Checkpoint the members due one (every eval_period, at the end, or when a member's last
        seed diverged: later rows would only repeat NaN); returns whether every member finished."""
        regular = checkpoint_due(self.config, step)
        recorded = []
        for m in range(len(self.members)):
            if self.finished[m] is not None:
                continue
            stopped = not self.alive[self.bounds[m] : self.bounds[m + 1]].any()
            if regular or stopped:
                recorded.append(m)
            if stopped or step == self.config.total_env_steps:
                self.finished[m] = (step, updates)
        if recorded:
            self._checkpoint(step, updates, recorded, online, target, buffer)
        return all(f is not None for f in self.finished)

    def _checkpoint(self, step: int, updates: int, recorded: list[int], online, target, buffer) -> None:
        """Diagnostics of every seed; rows for the members in `recorded` only."""
        config, knobs, num_seeds = self.config, self.knobs, len(self.seeds)
        seeds_recorded = np.isin(self.member_of, recorded)
        probe = self.probe.measure(knobs, online, target.network, seeds_recorded)
        if config.eval_episodes > 0:
            eval_returns, overestimation = greedy_eval(
                online, self.spec, num_seeds, config.eval_episodes, self.device, gamma=self.gammas
            )
        else:
            eval_returns, overestimation = np.full((num_seeds, 1), np.nan), np.full(num_seeds, np.nan)
        stats = self.window.summary()
        stats["target_drift_per_update"] = self.drift_meter.per_update(
            stats["target_drift_between_syncs"], seeds_recorded
        )
        lag_updates, lag_steps = target.lag(updates, step)
        columns = {
            "seed": self.seeds,
            "env_step": step,
            "gradient_updates": updates,
            "epsilon": knobs.epsilon(step - 1),
            "eval_return": eval_returns.mean(1),
            "eval_return_std": eval_returns.std(1),
            "overestimation": overestimation,
            "max_abs_q": probe["max_abs_q"],
            "mean_q": probe["mean_q"],
            **stats,
            "target_drift_checkpoint": probe["target_drift_checkpoint"],
            "target_distance": target.distance(online),
            "target_lag_updates": lag_updates,
            "target_lag_env_steps": lag_steps,
            "replay_fill": buffer.fill() / knobs.capacity if config.uses_replay else np.nan,
            "max_abs_reward_seen": self.max_abs_reward_seen,
            "diverged": ~self.alive,
            "diverged_step": self.diverged_step,
        }
        for name, value in columns.items():
            values = np.broadcast_to(np.asarray(value), (num_seeds,))
            if name not in KEPT_AFTER_DIVERGENCE:
                values = np.where(self.alive, values, np.nan)
            for m in recorded:
                self.checkpoints[m].setdefault(name, []).extend(values[self.bounds[m] : self.bounds[m + 1]].tolist())

    def records(self, elapsed: float) -> list[TrainingRecord]:
        """One record per member; the family's wall time shared out by seeds (what a member cost)."""
        num_seeds = len(self.seeds)
        losses = np.asarray(self.trace_losses).reshape(-1, num_seeds) if self.trace_losses is not None else None
        records = []
        for m, (member_config, seeds) in enumerate(self.members):
            slots = slice(self.bounds[m], self.bounds[m + 1])
            last_step, last_update = self.finished[m]
            records.append(
                TrainingRecord(
                    config=member_config,
                    seeds=list(seeds),
                    checkpoints=self.checkpoints[m],
                    episodes=self.episodes[m],
                    wall_time_s=elapsed * len(seeds) / num_seeds,
                    trace_actions=self.trace_actions[:last_step, slots] if self.trace_actions is not None else None,
                    trace_losses=losses[:last_update, slots] if losses is not None else None,
                )
            )
        return records
