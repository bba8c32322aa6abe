"""Agent configuration: one frozen dataclass holding every knob the ablations vary.

A config is validated on construction, round-trips through JSON, and has a stable
content hash that result caches key on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

LOSSES = ("mse", "huber")
BUG_FIELDS = (
    "bug_target_gradient",
    "bug_stale_target",
    "bug_greedy_gather",
    "bug_no_zero_grad",
    "bug_epsilon_at_end",
    "bug_terminal_shift",
)
TARGET_NETWORKS = ("none", "hard", "polyak")
# What a target's sync period counts (a hard copy, or a Polyak average, every C of them):
# gradient updates (the article's and Mnih et al.'s rule, checked after each update), or env
# steps on the step clock, checked at every env step
# before that step's updates (Stable-Baselines3's order: its _on_step syncs, then the burst of
# gradient steps runs) or after them (CleanRL's order: update, then sync, in one iteration).
SYNC_UNITS = ("updates", "env_steps", "env_steps_after_updates")
# The clock the update, learning-start and env-step sync conditions read at the step just
# taken: the number of env steps taken so far (SB3's num_timesteps; 1 at the first step), or
# the 0-based index of that step (CleanRL's global_step; 0 at the first step).
STEP_CLOCKS = ("steps_taken", "step_index")
# The engine's execution paths (train(..., path=...); docs/speed.md): how the arithmetic is done,
# never what is trained, so not a config field. Here, free of torch, for command-line choices.
ENGINE_PATHS = ("exact", "fast", "compiled", "fused")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the value."""


def _bad(field_name: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{field_name}={value!r} is invalid: {why}")


def _require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, value, "must be an integer")
    if value < minimum:
        raise _bad(name, value, f"must be >= {minimum}")


def _require_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(name, value, "must be a number")
    if not math.isfinite(value):
        raise _bad(name, value, "must be finite")
    return float(value)


# The usual value of a target rule's own field when a config leaves it unset: the article's
# (and the suite's presets') hard sync period, and the soft-update coefficient of TD3/SAC,
# which averages after every update.
DEFAULT_SYNC_PERIOD = 100
DEFAULT_POLYAK_PERIOD = 1
DEFAULT_TAU = 0.005
TARGET_RULE_FIELDS = ("target_sync_period", "target_sync_unit", "target_tau")


@dataclass(frozen=True)
class AgentConfig:
    """Every knob of a DQN agent variant; units are env steps unless a name says updates."""

    env_id: str = "CartPole-v1"
    total_env_steps: int = 50_000
    gamma: float = 0.99
    learning_rate: float = 1e-3
    loss: str = "mse"
    # Transitions per gradient update; must be 1 without replay (the latest transition).
    batch_size: int = 64
    # None = no replay: each update learns from the transition just observed (article example 1).
    replay_capacity: int | None = 10_000
    # The first gradient update comes at the first step whose clock (step_clock) reaches this.
    learning_starts: int = 64
    # Env steps between training steps: a training step runs when the clock is a multiple of it.
    env_steps_per_update: int = 1
    # Gradient updates per training step, each on a fresh batch (SB3's gradient_steps); -1
    # means as many as env steps between training steps (SB3's -1 with one env).
    gradient_steps: int = 1
    step_clock: str = "steps_taken"
    target_network: str = "hard"
    # Units (target_sync_unit) between syncs of the target: hard copies online -> target, or
    # Polyak averages; unset means DEFAULT_SYNC_PERIOD for a hard target, DEFAULT_POLYAK_PERIOD
    # for a polyak one, and nothing without a target.
    target_sync_period: int | None = None
    # What target_sync_period counts (SYNC_UNITS); unset means "updates" under a target rule.
    target_sync_unit: str | None = None
    # Polyak coefficient, target <- (1 - tau) target + tau online at each sync (target_network=
    # "polyak"); unset means DEFAULT_TAU for a polyak target and nothing otherwise.
    target_tau: float | None = None
    # Drop the bootstrap term on terminated transitions; False reproduces example 1's bug.
    terminal_masking: bool = True
    # Keep bootstrapping on time-limit truncation; False reproduces old-gym `done`.
    bootstrap_on_truncation: bool = True
    double_q: bool = False
    # Multi-step returns: the target sums up to n rewards before bootstrapping (needs replay).
    n_step: int = 1
    max_grad_norm: float | None = None
    # Injectable bugs (agents/catalogue/bugs.py has the catalogue: what each does, where it is seen, its
    # symptom). All off by default; the two article quirks above are bugs of the same kind.
    bug_target_gradient: bool = False  # the TD target is not detached: gradient flows through it
    bug_stale_target: bool = False  # the target network is never synced after its first copy
    bug_greedy_gather: bool = False  # Q(s, a) read at the greedy action, not the action taken
    bug_no_zero_grad: bool = False  # gradients are never zeroed: each update adds to the last
    bug_epsilon_at_end: bool = False  # exploration starts at epsilon_end: the decay is skipped
    bug_terminal_shift: bool = False  # each transition is stored with the previous step's terminal flag
    epsilon_start: float = 0.1
    epsilon_end: float = 0.1
    # Env steps of linear decay from epsilon_start to epsilon_end; 0 = constant epsilon_end.
    epsilon_decay_steps: int = 0
    # Or the decay as a fraction of total_env_steps (SB3's and CleanRL's exploration_fraction),
    # so it keeps its share of a run a profile shortens; exclusive with epsilon_decay_steps.
    epsilon_decay_fraction: float | None = None
    # Uniformly random actions at every step before learning starts (the clock below
    # learning_starts), whatever epsilon says: SB3's warm-up.
    random_warmup: bool = False
    hidden_sizes: tuple[int, ...] = (64, 64)
    # LayerNorm (no learnable scale or shift) after every hidden layer, before its ReLU.
    layer_norm: bool = False
    # Env steps between checkpoints (diagnostics and greedy evaluation).
    eval_period: int = 1_000
    eval_episodes: int = 10
    # Gradient updates before each checkpoint over which training statistics are summarised.
    diagnostic_window: int = 100
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise _bad("env_id", self.env_id, "must be a non-empty gymnasium id")
        _require_int("total_env_steps", self.total_env_steps, 1)
        gamma = _require_float("gamma", self.gamma)
        if not 0.0 <= gamma <= 1.0:
            raise _bad("gamma", self.gamma, "must lie in [0, 1]")
        lr = _require_float("learning_rate", self.learning_rate)
        if lr <= 0:
            raise _bad("learning_rate", self.learning_rate, "must be > 0")
        if self.loss not in LOSSES:
            raise _bad("loss", self.loss, f"must be one of {LOSSES}")
        _require_int("batch_size", self.batch_size, 1)
        if self.replay_capacity is None:
            if self.batch_size != 1:
                raise _bad(
                    "batch_size",
                    self.batch_size,
                    "without replay (replay_capacity=None) each update uses the latest "
                    "transition only, so batch_size must be 1",
                )
        else:
            _require_int("replay_capacity", self.replay_capacity, 1)
            if self.replay_capacity < self.batch_size:
                raise _bad(
                    "replay_capacity",
                    self.replay_capacity,
                    f"must be >= batch_size={self.batch_size}",
                )
        # learning_starts may be below batch_size: batches are drawn with replacement from what
        # is stored (SB3's zoo configs start learning at once).
        _require_int("learning_starts", self.learning_starts, 1)
        _require_int("env_steps_per_update", self.env_steps_per_update, 1)
        self._validate_schedule()
        self._validate_target()
        if not isinstance(self.terminal_masking, bool):
            raise _bad("terminal_masking", self.terminal_masking, "must be a bool")
        if not isinstance(self.bootstrap_on_truncation, bool):
            raise _bad("bootstrap_on_truncation", self.bootstrap_on_truncation, "must be a bool")
        if not isinstance(self.layer_norm, bool):
            raise _bad("layer_norm", self.layer_norm, "must be a bool")
        for name in BUG_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise _bad(name, getattr(self, name), "must be a bool")
        if self.bug_target_gradient and self.target_network != "none":
            raise _bad(
                "bug_target_gradient",
                True,
                "only bites without a target network (the gradient would flow into a network nobody trains)",
            )
        if self.bug_stale_target and self.target_network == "none":
            raise _bad("bug_stale_target", True, "needs a target network to leave stale")
        if not isinstance(self.double_q, bool):
            raise _bad("double_q", self.double_q, "must be a bool")
        if self.double_q and self.target_network == "none":
            raise _bad("double_q", self.double_q, "needs a target network (target_network='hard' or 'polyak')")
        _require_int("n_step", self.n_step, 1)
        if self.n_step > 1 and self.replay_capacity is None:
            raise _bad("n_step", self.n_step, "multi-step returns are read from the replay buffer: needs replay")
        if self.max_grad_norm is not None and _require_float("max_grad_norm", self.max_grad_norm) <= 0:
            raise _bad("max_grad_norm", self.max_grad_norm, "must be > 0 or None")
        for name in ("epsilon_start", "epsilon_end"):
            value = _require_float(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise _bad(name, getattr(self, name), "must lie in [0, 1]")
        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if not isinstance(self.hidden_sizes, tuple) or not self.hidden_sizes:
            raise _bad("hidden_sizes", self.hidden_sizes, "must be a non-empty tuple of layer widths")
        for width in self.hidden_sizes:
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise _bad("hidden_sizes", self.hidden_sizes, "every width must be an integer >= 1")
        _require_int("eval_period", self.eval_period, 1)
        _require_int("eval_episodes", self.eval_episodes, 0)
        _require_int("diagnostic_window", self.diagnostic_window, 1)
        if not isinstance(self.device, str) or not self.device:
            raise _bad("device", self.device, "must be a torch device string such as 'cpu' or 'cuda'")

    def _validate_schedule(self) -> None:
        """When updates happen and how exploration decays (the fields other libraries set)."""
        if self.gradient_steps == -1:
            object.__setattr__(self, "gradient_steps", self.env_steps_per_update)
        _require_int("gradient_steps", self.gradient_steps, 1)
        if self.step_clock not in STEP_CLOCKS:
            raise _bad("step_clock", self.step_clock, f"must be one of {STEP_CLOCKS}")
        if not isinstance(self.random_warmup, bool):
            raise _bad("random_warmup", self.random_warmup, "must be a bool")
        _require_int("epsilon_decay_steps", self.epsilon_decay_steps, 0)
        if self.epsilon_decay_fraction is not None:
            fraction = _require_float("epsilon_decay_fraction", self.epsilon_decay_fraction)
            if not 0.0 < fraction <= 1.0:
                raise _bad("epsilon_decay_fraction", self.epsilon_decay_fraction, "must lie in (0, 1] or be None")
            if self.epsilon_decay_steps:
                why = "set either it or epsilon_decay_steps, not both"
                raise _bad("epsilon_decay_fraction", self.epsilon_decay_fraction, why)

    def _validate_target(self) -> None:
        if self.target_network not in TARGET_NETWORKS:
            raise _bad("target_network", self.target_network, f"must be one of {TARGET_NETWORKS}")
        # A field that belongs to one target rule takes that rule's usual value when unset, so a
        # config never has to unset a default that belongs to another rule.
        if self.target_network != "none":
            if self.target_sync_period is None:
                period = DEFAULT_SYNC_PERIOD if self.target_network == "hard" else DEFAULT_POLYAK_PERIOD
                object.__setattr__(self, "target_sync_period", period)
            if self.target_sync_unit is None:
                object.__setattr__(self, "target_sync_unit", "updates")
            _require_int("target_sync_period", self.target_sync_period, 1)
            if self.target_sync_unit not in SYNC_UNITS:
                raise _bad("target_sync_unit", self.target_sync_unit, f"must be one of {SYNC_UNITS}")
        elif self.target_sync_period is not None:
            raise _bad("target_sync_period", self.target_sync_period, "needs a target network (hard or polyak)")
        elif self.target_sync_unit is not None:
            raise _bad("target_sync_unit", self.target_sync_unit, "needs a target network (hard or polyak)")
        if self.target_network == "polyak":
            if self.target_tau is None:
                object.__setattr__(self, "target_tau", DEFAULT_TAU)
            tau = _require_float("target_tau", self.target_tau)
            if not 0.0 < tau <= 1.0:
                raise _bad("target_tau", self.target_tau, "must lie in (0, 1]")
        elif self.target_tau is not None:
            raise _bad("target_tau", self.target_tau, "applies only to target_network='polyak'")

    # --- derived values -------------------------------------------------------------

    @property
    def uses_replay(self) -> bool:
        return self.replay_capacity is not None

    def clock(self, env_step: int) -> int:
        """The step clock (step_clock) once the 0-based env step `env_step` has been taken."""
        return env_step + 1 if self.step_clock == "steps_taken" else env_step

    def trains_at(self, clock: int) -> bool:
        """Whether a training step (gradient_steps updates) runs at this clock value."""
        return clock >= self.learning_starts and clock % self.env_steps_per_update == 0

    def multiples_after_start(self, period: int) -> int:
        """Clock values c of the run with c >= learning_starts and c a multiple of `period`."""
        last = self.clock(self.total_env_steps - 1)
        return max(0, last // period - (self.learning_starts - 1) // period)

    @property
    def gradient_updates(self) -> int:
        """Gradient updates the run makes: gradient_steps at every training step (trains_at)."""
        return self.gradient_steps * self.multiples_after_start(self.env_steps_per_update)

    @property
    def decay_steps(self) -> float:
        """Env steps of the epsilon decay (a fraction of the run when epsilon_decay_fraction is set)."""
        if self.epsilon_decay_fraction is not None:
            return self.epsilon_decay_fraction * self.total_env_steps
        return self.epsilon_decay_steps

    def epsilon(self, env_step: int) -> float:
        """Exploration rate at a 0-based env step: 1 during a random warm-up, else linear from
        start to end over decay_steps, then constant."""
        if self.random_warmup and self.clock(env_step) < self.learning_starts:
            return 1.0
        decay = self.decay_steps
        if env_step >= decay or self.bug_epsilon_at_end:
            return self.epsilon_end
        fraction = env_step / decay
        return self.epsilon_start + fraction * (self.epsilon_end - self.epsilon_start)

    # --- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["hidden_sizes"] = list(self.hidden_sizes)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _bad(unknown[0], data[unknown[0]], "is not a configuration field")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        return cls.from_dict(json.loads(text))

    def content_hash(self) -> str:
        """Stable hash of every field's value (sorted-key JSON, sha256, 16 hex digits)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> AgentConfig:
        """A copy with `changes`; switching the target rule drops the old rule's own fields
        (their usual values for the new rule fill in) unless `changes` sets them."""
        rule = changes.get("target_network", self.target_network)
        if rule != self.target_network:
            for name in TARGET_RULE_FIELDS:
                changes.setdefault(name, None)
        return dataclasses.replace(self, **changes)
