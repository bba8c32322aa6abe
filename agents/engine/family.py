"""Variant families: configs that can train side by side on one seed axis, and their knobs per seed.

Configs that share the network, the env, the batch size and the update schedule (the fields
of FAMILY_FIELDS) form a family; every other knob may differ between them and becomes a value
per seed (PureJaxRL's move: the seed axis carries the hyperparameters too). A knob whose value
every seed shares stays a Python scalar, so a family of one config runs exactly the arithmetic
of the single-variant engine; a knob that differs becomes a tensor with the seed axis first,
applied with the same elementwise operations in the same order (tests/test_engine.py checks
each seed against its solo run, bit for bit).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from agents.config import AgentConfig, ConfigError

# Fields every member of a family must share: they fix tensor shapes (network, batch, buffer
# layout), the env and the clock (when updates and checkpoints happen, and the Adam step count).
FAMILY_FIELDS = (
    "env_id",
    "total_env_steps",
    "batch_size",
    "learning_starts",
    "env_steps_per_update",
    "gradient_steps",
    "step_clock",
    "hidden_sizes",
    "layer_norm",
    "eval_period",
    "eval_episodes",
    "diagnostic_window",
    "device",
)


def family_key(config: AgentConfig) -> tuple:
    """Configs with equal keys can share one seed axis."""
    return tuple(getattr(config, name) for name in FAMILY_FIELDS) + (config.uses_replay,)


def check_family(configs: list[AgentConfig]) -> None:
    """A clear error naming the first shared field on which two members differ."""
    first = configs[0]
    for other in configs[1:]:
        for name in FAMILY_FIELDS:
            if getattr(other, name) != getattr(first, name):
                raise ConfigError(
                    f"{name}={getattr(other, name)!r} is invalid in this family: every member must share "
                    f"{name} (the first has {getattr(first, name)!r})"
                )
        if other.uses_replay != first.uses_replay:
            raise ConfigError(
                f"replay_capacity={other.replay_capacity!r} is invalid in this family: members with and "
                "without replay cannot share a seed axis"
            )


def per_seed(values: list, dtype: torch.dtype, device, trailing: int = 0):
    """A Python scalar if every seed has the same value, else a tensor (K, 1, ...) of them."""
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=dtype, device=device).view(-1, *([1] * trailing))


@dataclass
class SeedKnobs:
    """Every knob that may differ within a family, one entry per seed (scalar if shared)."""

    configs: list[AgentConfig]  # one per seed
    gamma: float | torch.Tensor  # (K, 1)
    mask_terminated: bool | torch.Tensor  # (K, 1): terminal masking
    mask_truncated: bool | torch.Tensor  # (K, 1): old-gym done (no bootstrap on truncation)
    double_q: bool | torch.Tensor  # (K, 1)
    huber: bool | torch.Tensor  # (K, 1): Huber loss, else MSE
    max_grad_norm: float | None | torch.Tensor  # (K,), inf where a seed does not clip
    learning_rate: float | list[float]
    has_target: np.ndarray  # (K,) bool
    hard: np.ndarray  # (K,) bool
    sync_period: np.ndarray  # (K,) int, 0 without a target
    sync_unit: np.ndarray  # (K,) str: config.SYNC_UNITS, "" without a target
    tau: np.ndarray  # (K,) float, nan where not polyak
    capacity: int | np.ndarray  # (K,)
    n_step: int | np.ndarray  # (K,)
    # Injected bugs (agents/catalogue/bugs.py), each False or a (K, 1) bool tensor.
    bug_target_gradient: bool | torch.Tensor
    bug_greedy_gather: bool | torch.Tensor
    bug_no_zero_grad: bool | torch.Tensor
    bug_terminal_shift: bool | torch.Tensor
    stale_target: np.ndarray  # (K,) bool: never synced after the first copy

    @classmethod
    def of(cls, configs: list[AgentConfig], device) -> SeedKnobs:
        check_family(configs)
        clips = [c.max_grad_norm for c in configs]
        if all(c == clips[0] for c in clips):
            max_grad_norm = clips[0]
        else:
            max_grad_norm = torch.tensor([np.inf if c is None else c for c in clips], device=device)
        return cls(
            configs=configs,
            gamma=per_seed([c.gamma for c in configs], torch.float32, device, 1),
            mask_terminated=per_seed([c.terminal_masking for c in configs], torch.bool, device, 1),
            mask_truncated=per_seed([not c.bootstrap_on_truncation for c in configs], torch.bool, device, 1),
            double_q=per_seed([c.double_q for c in configs], torch.bool, device, 1),
            huber=per_seed([c.loss == "huber" for c in configs], torch.bool, device, 1),
            max_grad_norm=max_grad_norm,
            learning_rate=_shared_or_list([c.learning_rate for c in configs]),
            has_target=np.array([c.target_network != "none" for c in configs]),
            hard=np.array([c.target_network == "hard" for c in configs]),
            sync_period=np.array([c.target_sync_period or 0 for c in configs]),
            sync_unit=np.array([c.target_sync_unit or "" for c in configs]),
            tau=np.array([np.nan if c.target_tau is None else c.target_tau for c in configs]),
            capacity=_shared_or_array([c.replay_capacity or 1 for c in configs]),
            n_step=_shared_or_array([c.n_step for c in configs]),
            bug_target_gradient=per_seed([c.bug_target_gradient for c in configs], torch.bool, device, 1),
            bug_greedy_gather=per_seed([c.bug_greedy_gather for c in configs], torch.bool, device, 1),
            bug_no_zero_grad=per_seed([c.bug_no_zero_grad for c in configs], torch.bool, device, 1),
            bug_terminal_shift=per_seed([c.bug_terminal_shift for c in configs], torch.bool, device, 1),
            stale_target=np.array([c.bug_stale_target for c in configs]),
        )

    @property
    def max_n_step(self) -> int:
        return int(np.max(self.n_step))

    @property
    def any_target(self) -> bool:
        return bool(self.has_target.any())

    @functools.cached_property
    def _schedules(self) -> list[tuple[AgentConfig, np.ndarray]]:
        """(a config, the seeds sharing its epsilon schedule), grouped once."""
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(self.configs):
            schedule = (
                c.epsilon_start,
                c.epsilon_end,
                c.epsilon_decay_steps,
                c.epsilon_decay_fraction,
                c.random_warmup,
                c.bug_epsilon_at_end,
            )
            groups.setdefault(schedule, []).append(i)
        return [(self.configs[seeds[0]], np.asarray(seeds)) for seeds in groups.values()]

    def epsilon(self, env_step: int) -> np.ndarray:
        """Each seed's exploration rate at a 0-based env step, (K,); one call per distinct schedule."""
        out = np.empty(len(self.configs))
        for config, seeds in self._schedules:
            out[seeds] = config.epsilon(env_step)
        return out


def _shared_or_list(values: list[float]):
    return values[0] if all(v == values[0] for v in values) else list(values)


def _shared_or_array(values: list[int]):
    return values[0] if all(v == values[0] for v in values) else np.asarray(values, dtype=np.int64)
