"""Diagnostics recorded at checkpoints: probe states, greedy evaluation, windowed statistics.

Per-update quantities (loss, TD targets, states used, sample ages) go into a ring of the last
`diagnostic_window` gradient updates; checkpoints summarise that ring. Copying a few small
tensors per update keeps diagnostics cheap next to the update itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from agents.engine.envs import EnvSpec, make_env_batch
from agents.engine.networks import MLPParams, aligned_batch, forward
from agents.envprofile import EVAL_STEP_CAP
from agents.seeding import EVAL_SEED_BASE, PROBE_SEED

PROBE_STATE_COUNT = 256


@dataclass(frozen=True)
class ProbeTransitions:
    """Fixed transitions (s, a, r, s', terminated, truncated) of a uniformly random policy from
    PROBE_SEED: Q is measured on `obs`, and the TD targets of the whole transitions are tracked
    from checkpoint to checkpoint (target drift)."""

    obs: np.ndarray  # (count, obs_dim) float32
    reward: np.ndarray  # (count,) float32
    next_obs: np.ndarray  # (count, obs_dim) float32
    terminated: np.ndarray  # (count,) bool
    truncated: np.ndarray  # (count,) bool


@functools.lru_cache(maxsize=16)
def probe_transitions(env_id: str, count: int = PROBE_STATE_COUNT) -> ProbeTransitions:
    """count consecutive transitions of a random policy (resetting at episode ends)."""
    env = gym.make(env_id)
    rng = np.random.Generator(np.random.PCG64(PROBE_SEED))
    columns: dict[str, list] = {name: [] for name in ("obs", "reward", "next_obs", "terminated", "truncated")}
    obs, _ = env.reset(seed=PROBE_SEED)
    while len(columns["obs"]) < count:
        next_obs, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        for name, value in zip(columns, (obs, reward, next_obs, terminated, truncated)):
            columns[name].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    arrays = {
        name: np.asarray(values, dtype=np.float32 if name in ("obs", "reward", "next_obs") else bool)
        for name, values in columns.items()
    }
    for array in arrays.values():
        array.setflags(write=False)
    return ProbeTransitions(**arrays)


def probe_states(env_id: str, count: int = PROBE_STATE_COUNT) -> np.ndarray:
    """The fixed states (count, obs_dim) on which max |Q| and mean Q are measured."""
    return probe_transitions(env_id, count).obs


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """RMS(new - old) / RMS(old) over the last axis, per seed: how far a set of values moved,
    in units of their own size, so a network with large values does not move "more" for it."""
    new, old = new.double(), old.double()
    return (new - old).square().mean(-1).sqrt() / old.square().mean(-1).sqrt().clamp(min=1e-12)


# Overestimation uses a state only where its Monte-Carlo return is (nearly) its value: the
# episode really terminated after it, or at least this many effective horizons remain before the
# time limit cut it off, so the rewards cut off weigh at most OVERESTIMATION_TAIL of the return.
OVERESTIMATION_TAIL = 0.05


def greedy_eval(
    params: MLPParams, spec: EnvSpec, num_seeds: int, episodes: int, device, gamma
) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted return of each seed's greedy policy on `episodes` fixed-seed episodes, (K, E),
    and each seed's overestimation, (K,).

    Episode e of every seed and every checkpoint starts from reset seed EVAL_SEED_BASE + e, so
    evaluation noise is shared rather than added when seeds or checkpoints are compared.
    Overestimation (gamma: one per seed) is the mean over the states
    the greedy policy visited of max_a Q(s, a) minus the discounted return actually obtained
    from s (van Hasselt et al. 2016's measure), over states whose return is not cut short by the
    time limit (see OVERESTIMATION_TAIL); NaN where no state qualifies.
    """
    n = num_seeds * episodes
    env = make_env_batch(spec, n)
    obs = env.reset([EVAL_SEED_BASE + e for _ in range(num_seeds) for e in range(episodes)])
    returns = np.zeros(n)
    running = np.ones(n, dtype=bool)
    cap = spec.max_episode_steps or EVAL_STEP_CAP
    staged = aligned_batch(num_seeds, episodes, spec.obs_dim, device)
    q_taken, rewards, live, terminated = [], [], [], np.zeros(n, dtype=bool)
    for _ in range(cap):
        staged.copy_(torch.from_numpy(obs).view(num_seeds, episodes, -1))
        with torch.no_grad():
            q = forward(params, staged)
        best = q.max(2)
        actions = best.indices.reshape(n).cpu().numpy()
        result = env.step(actions)
        earned = np.where(running, result.reward, 0.0)
        returns += earned
        q_taken.append(best.values.reshape(n).double().cpu().numpy())
        rewards.append(earned)
        live.append(running.copy())
        terminated |= running & result.terminated
        running &= ~(result.terminated | result.truncated)
        if not running.any():
            break
        obs = result.obs
    env.close()
    returns = returns.reshape(num_seeds, episodes)
    return returns, _overestimation(np.array(q_taken), np.array(rewards), np.array(live), terminated, gamma, episodes)


def _overestimation(q_taken, rewards, live, terminated, gamma, episodes: int) -> np.ndarray:
    """Mean of Q - G over the qualifying states of each seed (arrays (T, K * E))."""
    steps, n = rewards.shape
    discount = np.repeat(np.broadcast_to(np.asarray(gamma, dtype=float), (n // episodes,)), episodes)
    to_go = np.zeros_like(rewards)
    running = np.zeros(n)
    for t in reversed(range(steps)):
        running = rewards[t] + discount * running
        to_go[t] = running
    length = live.sum(0)
    # Steps left until the cut: a state qualifies if gamma^left <= OVERESTIMATION_TAIL.
    left = length[None, :] - np.arange(steps)[:, None]
    with np.errstate(divide="ignore"):
        needed = np.where(discount < 1, np.log(OVERESTIMATION_TAIL) / np.log(discount), np.inf)
    qualifies = live & (terminated[None, :] | (left >= needed[None, :]))
    gap = _per_seed_sum(np.where(qualifies, q_taken - to_go, 0.0), episodes)
    count = _per_seed_sum(qualifies.astype(np.int64), episodes)
    return np.where(count > 0, gap / np.maximum(count, 1), np.nan)


def _per_seed_sum(values: np.ndarray, episodes: int) -> np.ndarray:
    """Sum (T, K * E) values over each seed's T * E entries, in time order, one after another:
    the same sum at every K. T is the batch's longest evaluation, so a seed's row gets trailing
    zeros from its neighbours' longer episodes; adding them one by one changes nothing, where
    numpy's pairwise sum (or a multi-axis sum) regroups its terms with the row's length."""
    steps = values.shape[0]
    by_seed = values.reshape(steps, -1, episodes).transpose(1, 0, 2).reshape(-1, steps * episodes)
    return np.add.accumulate(by_seed, axis=1)[:, -1]


def lag1_autocorrelation(sequence: torch.Tensor) -> torch.Tensor:
    """Lag-1 autocorrelation of sequences (K, N, D), averaged over dimensions with variance: (K,).

    r = sum_t (x_t - mean)(x_{t+1} - mean) / sum_t (x_t - mean)^2, the usual estimator.
    """
    x = sequence.double()
    centred = x - x.mean(dim=1, keepdim=True)
    denominator = centred.square().sum(1)
    numerator = (centred[:, 1:] * centred[:, :-1]).sum(1)
    valid = denominator > 0
    ratio = torch.where(valid, numerator / torch.where(valid, denominator, 1.0), 0.0)
    counts = valid.sum(1)
    return torch.where(counts > 0, ratio.sum(1) / counts.clamp(min=1), torch.nan)


class UpdateWindow:
    """Ring of the last `size` gradient updates' per-seed statistics."""

    def __init__(self, num_seeds: int, size: int, batch_size: int, obs_dim: int, device):
        shape = (num_seeds, size, batch_size)
        self.size = size
        self.count = 0
        self.loss = torch.zeros((num_seeds, size), device=device)
        self.grad_norm = torch.zeros((num_seeds, size), device=device)
        self.td_target = torch.zeros(shape, device=device)
        self.td_error = torch.zeros(shape, device=device)
        self.sample_age = torch.zeros(shape, dtype=torch.int64, device=device)
        self.terminal = torch.zeros(shape, dtype=torch.bool, device=device)
        self.states = torch.zeros((*shape, obs_dim), device=device)
        # Per-update target drift; NaN for updates where it was not measured.
        self.target_drift = torch.full((num_seeds, size), float("nan"), dtype=torch.float64, device=device)

    def record(self, loss, grad_norm, td_target, td_error, sample_age, terminal, states, target_drift=None) -> None:
        i = self.count % self.size
        self.loss[:, i] = loss
        self.grad_norm[:, i] = grad_norm
        self.td_target[:, i] = td_target
        self.td_error[:, i] = td_error
        self.sample_age[:, i] = sample_age
        self.terminal[:, i] = terminal
        self.states[:, i] = states
        self.target_drift[:, i] = float("nan") if target_drift is None else target_drift
        self.count += 1

    def _chronological(self, ring: torch.Tensor) -> torch.Tensor:
        filled = min(self.count, self.size)
        if self.count <= self.size:
            return ring[:, :filled]
        return torch.roll(ring, shifts=-(self.count % self.size), dims=1)

    def summary(self) -> dict[str, np.ndarray]:
        """Per-seed statistics over the window; NaN before the first update."""
        k = self.loss.shape[0]
        if self.count == 0:
            nan = np.full(k, np.nan)
            return {name: nan for name in WINDOW_COLUMNS}
        loss = self._chronological(self.loss).double()
        targets = self._chronological(self.td_target).double().flatten(1)
        errors = self._chronological(self.td_error).double().flatten(1)
        states = self._chronological(self.states)
        # States in the order the updates used them: update by update, batch slot by slot.
        used = states.reshape(k, -1, states.shape[-1])
        drift = self._chronological(self.target_drift)
        measured = torch.isfinite(drift).sum(1)
        return {
            "loss": loss.mean(1).cpu().numpy(),
            "grad_norm": self._chronological(self.grad_norm).double().mean(1).cpu().numpy(),
            "td_target_mean": targets.mean(1).cpu().numpy(),
            "td_target_var": targets.var(1, correction=0).cpu().numpy(),
            "td_error_var": errors.var(1, correction=0).cpu().numpy(),
            # Var(TD error) / mean(TD target^2): the share of the targets' size the network misses.
            "td_error_var_relative": (errors.var(1, correction=0) / targets.square().mean(1).clamp(min=1e-12))
            .cpu()
            .numpy(),
            "target_drift_between_syncs": torch.where(
                measured > 0, torch.nan_to_num(drift).sum(1) / measured.clamp(min=1), torch.nan
            )
            .cpu()
            .numpy(),
            "mean_sample_age": self._chronological(self.sample_age).double().flatten(1).mean(1).cpu().numpy(),
            "terminal_fraction": self._chronological(self.terminal).double().flatten(1).mean(1).cpu().numpy(),
            "state_autocorrelation": lag1_autocorrelation(used).cpu().numpy(),
        }


class DriftMeter:
    """Mean per-update target drift over a checkpoint interval, per seed, measured without a
    forward pass on every update: updates that sync a hard target are measured one by one (the
    targets jump there), and the drift of the other updates (continuous for no target, polyak
    or double Q; exactly 0 for a plain hard target) is the window's mean of them, weighted by
    their count."""

    def __init__(self, num_seeds: int):
        self.sync_sum = np.zeros(num_seeds)
        self.syncs = np.zeros(num_seeds, dtype=np.int64)
        self.updates = np.zeros(num_seeds, dtype=np.int64)

    def update(self, synced: np.ndarray, drift: np.ndarray) -> None:
        """One gradient update: synced (K,) marks the seeds whose target was synced by it."""
        self.updates += 1
        self.syncs += synced
        self.sync_sum[synced] += drift[synced]

    def unsynced(self, count: int) -> None:
        """`count` updates that synced no seed: update() with no seed synced, `count` times."""
        self.updates += count

    def per_update(self, between_syncs: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The interval's mean drift per update; the given seeds (a mask) start a new interval."""
        others = self.updates - self.syncs
        continuous = np.where(others > 0, np.nan_to_num(between_syncs) * others, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(self.updates > 0, (continuous + self.sync_sum) / self.updates, np.nan)
        self.sync_sum[seeds] = 0.0
        self.syncs[seeds] = 0
        self.updates[seeds] = 0
        return value


WINDOW_COLUMNS = (
    "loss",
    "grad_norm",
    "td_target_mean",
    "td_target_var",
    "td_error_var",
    "td_error_var_relative",
    "target_drift_between_syncs",
    "mean_sample_age",
    "terminal_fraction",
    "state_autocorrelation",
)
