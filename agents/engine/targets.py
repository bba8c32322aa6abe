"""Target-network rules (Mnih et al. 2015; Lillicrap et al. 2016): none, a hard copy or a Polyak
average every C updates or every C env steps (before or after that step's updates), per seed;
a stale target (bug_stale_target) keeps its first copy."""

from __future__ import annotations

import numpy as np
import torch

from agents.engine.family import SeedKnobs
from agents.engine.networks import MLPParams


class TargetNetwork:
    """The target network of every seed that has one, and when each was last synced.

    Seeds without a target network in a family that has one keep their target equal to online
    (mirrored), so the Bellman target of td_targets is theirs too. `network` is None when no
    seed has a target network.
    """

    def __init__(self, knobs: SeedKnobs, online: MLPParams, device):
        self.knobs = knobs
        self.network = online.clone() if knobs.any_target else None
        self.mirrored_seeds = ~knobs.has_target
        self.device = device
        # Polyak seeds by tau (a stale-target seed is never averaged), (K,) bool each.
        self.polyak_groups = [
            (tau, (knobs.tau == tau) & ~knobs.stale_target)
            for tau in sorted(set(knobs.tau[np.isfinite(knobs.tau) & ~knobs.stale_target]))
        ]
        # Without a target network, with polyak averaging or with double Q the TD targets move on
        # every update; a plain hard target moves only when it is synced.
        double = knobs.double_q.view(-1).cpu().numpy() if torch.is_tensor(knobs.double_q) else knobs.double_q
        # Env-step syncs happen between updates, where no batch is at hand: their seeds' drift is
        # measured on the window's updates instead.
        self.moves_every_update = ~knobs.hard | double | (knobs.sync_unit != "updates")
        num_seeds = len(knobs.configs)
        self.last_sync_update = np.zeros(num_seeds, dtype=np.int64)
        self.last_sync_step = np.zeros(num_seeds, dtype=np.int64)
        # Which env-step sync units some seed uses: the engine calls at_env_step only for these.
        self.env_step_units = [u for u in ("env_steps", "env_steps_after_updates") if (knobs.sync_unit == u).any()]
        # Per unit, the seeds synced by it and their periods (asked every update and env step).
        self._synced_by = {
            unit: (knobs.sync_unit == unit) & ~knobs.stale_target for unit in ("updates", *self.env_step_units)
        }
        self._periods = np.maximum(knobs.sync_period, 1)

    def _due(self, unit: str, count: int) -> np.ndarray:
        """Seeds with a target whose period, counted in `unit`, divides `count` (K,) bool."""
        seeds = self._synced_by.get(unit)
        if seeds is None:
            return np.zeros(len(self._periods), dtype=bool)
        return seeds & (count % self._periods == 0)

    def _plan(self, due: np.ndarray, mirror: bool) -> tuple[np.ndarray, np.ndarray, list]:
        """What a sync of the due seeds does, decided on the host: the hard seeds it copies, every
        seed it copies (with the mirrored ones after an update) and the (tau, seeds) it averages."""
        copied = due & self.knobs.hard
        copying = copied | self.mirrored_seeds if mirror else copied
        return copied, copying, [(tau, seeds & due) for tau, seeds in self.polyak_groups]

    def _sync(self, online: MLPParams, due: np.ndarray, mirror: bool) -> np.ndarray:
        """Hard-copy online into the due hard seeds' targets (and the mirrored seeds' after an
        update) and average the due polyak seeds'; returns the hard seeds copied (K,) bool."""
        copied, copying, averaged = self._plan(due, mirror)
        # Decided on the host (numpy) first: most updates sync no seed.
        if copying.all():
            self.network.copy_(online)
        elif copying.any():
            self.network.copy_seeds_(online, torch.from_numpy(copying).to(self.device))
        for tau, seeds in averaged:
            if seeds.all():
                self.network.polyak_(online, tau)
            elif seeds.any():
                self.network.polyak_seeds_(online, tau, torch.from_numpy(seeds).to(self.device))
        return copied

    @property
    def changes_every_update(self) -> bool:
        """Whether some seed's target changes after every update (mirrored or averaged), so a
        step graph applies the rule itself rather than the host after each update."""
        return self.network is not None and bool(self.mirrored_seeds.any() or self.polyak_groups)

    def plan_after_update(self, updates: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """after_update for a caller that applies the rule itself: the hard seeds it syncs (K,)
        bool (recorded as synced), every seed whose target becomes a copy of online, and each
        seed's Polyak tau for this update (0 where none)."""
        copied, copying, averaged = self._plan(self._due("updates", updates), mirror=True)
        taus = np.zeros(len(copied))
        for tau, seeds in averaged:
            taus[seeds] = tau
        self.last_sync_update[copied], self.last_sync_step[copied] = updates, step
        return copied, copying, taus

    def syncs_hard(self, updates: int) -> bool:
        """Whether gradient update number `updates` syncs some seed's hard target."""
        return bool((self._due("updates", updates) & self.knobs.hard).any())

    def syncs_at_env_step(self, unit: str, clock: int) -> bool:
        """Whether some seed's env-step sync in `unit` is due at this clock value."""
        return unit in self.env_step_units and bool(self._due(unit, clock).any())

    def at_env_step(self, online: MLPParams, clock: int, step: int, updates: int, unit: str) -> None:
        """Sync the seeds whose period counts env steps in `unit` ("env_steps" before the step's
        updates, "env_steps_after_updates" after them) and is due at this clock value."""
        due = self._due(unit, clock)
        if due.any():
            copied = self._sync(online, due, mirror=False)
            self.last_sync_update[copied], self.last_sync_step[copied] = updates, step

    def sync_before_updates(self, online: MLPParams, clock: int, step: int, updates: int) -> None:
        """The env-step syncs due before this step's updates (SB3's order)."""
        if "env_steps" in self.env_step_units:
            self.at_env_step(online, clock, step, updates, "env_steps")

    def sync_after_updates(self, online: MLPParams, clock: int, step: int, updates: int) -> None:
        """The env-step syncs due after this step's updates (CleanRL's order)."""
        if "env_steps_after_updates" in self.env_step_units:
            self.at_env_step(online, clock, step, updates, "env_steps_after_updates")

    def after_update(self, online: MLPParams, updates: int, step: int) -> np.ndarray:
        """Apply each seed's rule after gradient update number `updates`; returns the seeds whose
        hard target was synced by it (K,) bool."""
        due = self._due("updates", updates)
        if self.network is None or not (due.any() or self.mirrored_seeds.any()):  # most updates
            return np.zeros(len(self.knobs.configs), dtype=bool)
        synced = self._sync(online, due, mirror=True)
        self.last_sync_update[synced], self.last_sync_step[synced] = updates, step
        return synced

    def after_updates(self, online: MLPParams, updates: int, count: int, step: int) -> np.ndarray:
        """after_update for gradient updates number updates + 1 .. updates + count, one per env
        step from `step`; returns the seeds each synced, (count, K) bool. Only the updates that
        sync some seed (or mirror one) call after_update: the others change nothing."""
        numbers = updates + 1 + np.arange(count)
        due = self._synced_by["updates"] & (numbers[:, None] % self._periods == 0)
        synced = np.zeros(due.shape, dtype=bool)
        if self.network is not None:
            for i in np.flatnonzero(due.any(1) | self.mirrored_seeds.any()):
                synced[i] = self.after_update(online, int(numbers[i]), step + i)
        return synced

    def lag(self, updates: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Updates and env steps since each hard target's last sync (NaN where not hard)."""
        hard = self.knobs.hard
        return np.where(hard, updates - self.last_sync_update, np.nan), np.where(
            hard, step - self.last_sync_step, np.nan
        )

    def distance(self, online: MLPParams) -> np.ndarray:
        """How far each seed's target is from its online network (NaN without a target)."""
        if self.network is None:
            return np.full(len(self.knobs.configs), np.nan)
        return np.where(self.knobs.has_target, self.network.distance(online).cpu().numpy(), np.nan)
