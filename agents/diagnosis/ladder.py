"""The one-knob ladder around a user's DQN: every stabiliser or setting switched on its own.

Each rung changes one knob of the base config and nothing else, so comparing it with the base
credits that knob alone. A knob whose change is not a valid config on its own (double Q without
a target network, a sync period on a polyak target that averages after every update) gets no
rung; `skipped` says why, as it does for a grid point that lands on an earlier rung's config. A
few knobs are one switch that sets several fields together, stated in their description: replay
(capacity, batch size and learning start, as the article defines replay; multi-step returns go
when replay goes) and the target network (double Q goes when the target goes, since it needs one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from agents.catalogue.bugs import CATALOGUE, Bug
from agents.config import AgentConfig, ConfigError
from agents.envprofile import env_profile

# Values a rung switches to where the base has the knob off. Each is a common choice stated in
# the rung's description: the article's replay and sync period, the DQN paper's clipping norm
# (as in the suite's replay-target-huber-clip variant), CleanRL's exploration schedule.
REPLAY_ON = {"replay_capacity": 10_000, "batch_size": 64, "learning_starts": 64}
TARGET_SYNC_PERIOD = 100
GRAD_CLIP_NORM = 10.0
# Log grids around the base, wide enough that a rate or period 100x off has a rung within 10x of
# its fix on the first ladder (and reaches it in the repair path's next round).
LR_FACTORS = (0.01, 0.1, 0.3, 3.0, 10.0)
SYNC_FACTORS = (0.01, 0.1, 0.3, 3.0, 10.0)
# A Polyak target's step size tau on the same kind of grid, capped at 1 (a full copy at each sync):
# a tau 100x too small (a target that barely moves) has a rung within 10x of the usual 0.005-0.01.
TAU_FACTORS = (0.1, 10.0, 100.0)
# A learning start beyond this share of the run leaves too few updates; the rung moves it to
# LEARNING_START_SHARE of the run (CleanRL's 10k of 500k steps), at least one batch.
LATE_LEARNING_START = 0.1
LEARNING_START_SHARE = 0.02
EPSILON_SCHEDULE = {"epsilon_start": 1.0, "epsilon_end": 0.05, "decay_fraction": 0.5}
# Discounts a rung tries: the common 0.99 (a horizon of about 100 steps) and 0.9 (about 10, which
# also bounds the values: a shorter horizon is a stabiliser in its own right).
DISCOUNTS = (0.9, 0.99)
# The budget rung: 4x the env steps (the factor lint calls far, agents/diagnosis/lint.py FAR), offered while
# the budget is below the env's typical one (rl-zoo's n_timesteps, agents/envprofile.py).
BUDGET_FACTOR = 4
# The update schedule moves by this factor toward one gradient update per env step (the top of
# the sources' 0.1-1, agents/diagnosis/lint.py UPDATE_RATIOS), never past it.
SCHEDULE_FACTOR = 4
# Batch sizes toward Revisiting Rainbow's >= 64 (rl-zoo 64-128, CleanRL 128), capped here.
BATCH_FACTORS = (2, 4)
MAX_BATCH = 256
# Revisiting Rainbow's best classic-control networks: 2-3 layers of >= 256 units (rl-zoo's [256, 256]).
WIDE = 256


@dataclass(frozen=True)
class Rung:
    """One change to the base: a short key (part of the variant's name), what it does, the config."""

    key: str
    description: str
    config: AgentConfig
    # The config fields the rung changes against its base (one knob; several for a switch that
    # sets fields together), in AgentConfig's order: what reports/diagnosis/cause.py reads a finding against.
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key or not all(c.isalnum() or c in "-." for c in self.key):
            raise ConfigError(f"key={self.key!r} is invalid: letters, digits, '-' and '.' only")
        unknown = [name for name in self.fields if name not in AgentConfig.__dataclass_fields__]
        if unknown:
            raise ConfigError(f"fields={self.fields!r} is invalid: {unknown[0]!r} is not a config field")


def _replay(base: AgentConfig) -> tuple[str, str, dict]:
    if base.uses_replay:
        extra = " and multi-step returns, which need it" if base.n_step > 1 else ""
        return (
            "no-replay",
            f"Removing replay (learning from the latest transition only: batch 1, learning from step 1{extra})",
            {"replay_capacity": None, "batch_size": 1, "learning_starts": 1, "n_step": 1},
        )
    return (
        "replay",
        "Adding replay (a batch of 64 from a buffer of 10,000, learning from step 64)",
        dict(REPLAY_ON),
    )


def _target(base: AgentConfig) -> tuple[str, str, dict]:
    if base.target_network != "none":
        extra = " (and double Q, which needs it)" if base.double_q else ""
        return (
            "no-target",
            f"Removing the target network{extra}",
            {"target_network": "none", "target_sync_period": None, "target_tau": None, "double_q": False},
        )
    return (
        "target",
        f"Adding a target network (synced every {TARGET_SYNC_PERIOD} updates)",
        {"target_network": "hard", "target_sync_period": TARGET_SYNC_PERIOD},
    )


def _sync_period(factor: float) -> Callable[[AgentConfig], tuple[str, str, dict] | str]:
    def change(base: AgentConfig):
        # One line for the whole grid (the list dedupes it). A Polyak target that averages after
        # every update has tau as its knob; one that averages on an interval (SB3's or CleanRL's
        # tau < 1) has both.
        if base.target_network == "none":
            return "sync period: the base has no target network"
        if base.target_network == "polyak" and base.target_sync_period == 1:
            return "sync period: the base's polyak target averages after every update (its tau rungs stand in)"
        period = max(1, round(base.target_sync_period * factor))
        if period == base.target_sync_period:
            return f"sync period x{factor:g}: rounds to the same period"
        # The period counts updates or env steps (target_sync_unit); the run has that many of each.
        by_updates = base.target_sync_unit == "updates"
        unit, run = ("update", base.gradient_updates) if by_updates else ("env step", base.total_env_steps)
        if period > run and period > base.target_sync_period:
            return f"sync period x{factor:g}: {period} {unit}s is longer than the run's {run}"
        sync = "Syncing the target" if base.target_network == "hard" else "Averaging the target"
        return (
            f"sync-x{factor:g}",
            f"{sync} every {period} {unit}{'s' if period > 1 else ''} instead of {base.target_sync_period}",
            {"target_sync_period": period},
        )

    return change


def _tau(factor: float):
    def change(base: AgentConfig):
        if base.target_network != "polyak":
            return None  # a hard target has no tau; its sync period is the knob
        tau = min(1.0, base.target_tau * factor)
        if tau == base.target_tau:
            return f"tau x{factor:g}: the base's tau {base.target_tau:g} is already 1 (a full copy at each sync)"
        copy = " (a full copy at each sync)" if tau == 1.0 else ""
        return (f"tau-x{factor:g}", f"Polyak tau {tau:.3g}{copy} instead of {base.target_tau:.3g}", {"target_tau": tau})

    return change


def _double_q(base: AgentConfig):
    if base.target_network == "none":
        return "double Q: needs a target network, which the base does not have"
    if base.double_q:
        return ("no-double-q", "Removing double Q (plain max over the target network)", {"double_q": False})
    return ("double-q", "Adding double Q (online argmax, target evaluation)", {"double_q": True})


def _loss(base: AgentConfig):
    if base.loss == "mse":
        return ("huber", "Switching the loss from MSE to Huber", {"loss": "huber"})
    return ("mse", "Switching the loss from Huber to MSE", {"loss": "mse"})


def _clipping(base: AgentConfig):
    if base.max_grad_norm is None:
        return ("clip", f"Clipping gradients to norm {GRAD_CLIP_NORM:g}", {"max_grad_norm": GRAD_CLIP_NORM})
    return ("no-clip", f"Removing gradient clipping (norm {base.max_grad_norm:g})", {"max_grad_norm": None})


def _learning_rate(factor: float):
    def change(base: AgentConfig):
        rate = base.learning_rate * factor
        description = f"Learning rate {rate:.3g} instead of {base.learning_rate:.3g}"
        return (f"lr-x{factor:g}", description, {"learning_rate": rate})

    return change


def _learning_start(base: AgentConfig):
    if base.learning_starts <= LATE_LEARNING_START * base.total_env_steps:
        return f"learning start: {base.learning_starts} is within the first {LATE_LEARNING_START:.0%} of the run"
    start = max(base.batch_size, round(LEARNING_START_SHARE * base.total_env_steps))
    return (
        "early-start",
        f"Learning from step {start} instead of {base.learning_starts} ({LEARNING_START_SHARE:.0%} of the "
        f"{base.total_env_steps:,}-step run)",
        {"learning_starts": start},
    )


def _exploration(base: AgentConfig):
    # A schedule that ends with the agent acting mostly at random (epsilon_end >= 0.5, lint's
    # random-behaviour) gets CleanRL's schedule too: its constant rung would stay random.
    if base.decay_steps == 0 or base.epsilon_start == base.epsilon_end or base.epsilon_end >= 0.5:
        s = EPSILON_SCHEDULE
        steps = max(1, int(base.total_env_steps * s["decay_fraction"]))
        return (
            "eps-decay",
            f"Decaying exploration from {s['epsilon_start']:g} to {s['epsilon_end']:g} over the first "
            f"{s['decay_fraction']:.0%} of training (CleanRL's schedule) instead of "
            + (f"a constant {base.epsilon_end:g}" if base.decay_steps == 0 else f"ending at {base.epsilon_end:g}"),
            {"epsilon_start": s["epsilon_start"], "epsilon_end": s["epsilon_end"], "epsilon_decay_steps": steps},
        )
    return (
        "eps-constant",
        f"Constant exploration at {base.epsilon_end:g} instead of decaying from {base.epsilon_start:g}",
        {"epsilon_start": base.epsilon_end, "epsilon_decay_steps": 0, "epsilon_decay_fraction": None},
    )


def _bug_off(bug: Bug):
    """A rung that switches off a catalogued bug the base has on (its one bug_ switch)."""
    ((field, _),) = bug.changes

    def change(base: AgentConfig):
        if not getattr(base, field):
            return None  # no rung and nothing to say: the base does not have the bug
        what = bug.what[0].lower() + bug.what[1:].rstrip(".")
        return (f"no-bug-{bug.name}", f"Fixing the {bug.name} bug ({what})", {field: False})

    return change


def _discount(gamma: float):
    def change(base: AgentConfig):
        if base.gamma == gamma:
            return None  # the base's own discount
        horizon = f"a horizon of about {round(1 / (1 - gamma))} steps"
        return (f"gamma-{gamma:g}", f"Discount {gamma:g} ({horizon}) instead of {base.gamma:g}", {"gamma": gamma})

    return change


def _budget(base: AgentConfig):
    # One knob, the budget: only total_env_steps changes. A decay given as a fraction of the run
    # (epsilon_decay_fraction) keeps its share by itself; schedules given in env steps (learning
    # start, decay steps, sync period) keep their length, as they would if the user trained longer.
    try:
        typical = env_profile(base.env_id).typical_budget
    except ConfigError:
        typical = None
    if typical is None:
        return f"steps x{BUDGET_FACTOR}: no typical budget is known for {base.env_id}"
    if base.total_env_steps >= typical:
        return f"steps x{BUDGET_FACTOR}: the budget is already at least {base.env_id}'s typical {typical:,} (rl-zoo)"
    steps = BUDGET_FACTOR * base.total_env_steps
    return (
        f"steps-x{BUDGET_FACTOR}",
        f"Training for {steps:,} env steps instead of {base.total_env_steps:,} ({base.env_id}'s typical budget is "
        f"{typical:,})",
        {"total_env_steps": steps},
    )


def _schedule(field: str, factor: float):
    """A rung moving one update-schedule field by `factor` toward one update per env step: fewer
    env steps between training steps or more gradient steps each when updates are fewer than env
    steps, the reverse when they are more. Never past one per env step."""

    def change(base: AgentConfig):
        every, steps = base.env_steps_per_update, base.gradient_steps
        if every == steps:
            return "update schedule: already one gradient update per env step"
        fewer = steps < every  # fewer updates than env steps
        if field == "env_steps_per_update" and (factor < 1) == fewer:
            value = max(every // SCHEDULE_FACTOR, steps) if fewer else min(every * SCHEDULE_FACTOR, steps)
        elif field == "gradient_steps" and (factor > 1) == fewer:
            value = min(steps * SCHEDULE_FACTOR, every) if fewer else max(steps // SCHEDULE_FACTOR, every)
        else:
            return None  # the direction away from one update per env step
        new_every, new_steps = (value, steps) if field == "env_steps_per_update" else (every, value)
        what = "Training every" if field == "env_steps_per_update" else "Training with"
        name = "train-every" if field == "env_steps_per_update" else "grad-steps"
        return (
            f"{name}-x{factor:g}",
            f"{what} {f'{new_every} env steps' if field == 'env_steps_per_update' else f'{new_steps} gradient steps'}"
            f" instead of {every if field == 'env_steps_per_update' else steps}: {new_steps} update(s) every "
            f"{new_every} env step(s), {new_steps / new_every:.2g} per env step instead of {steps / every:.2g}",
            {field: value},
        )

    return change


def _burst(base: AgentConfig):
    # Smaller, more frequent training steps at the same updates per env step: both fields of the
    # schedule divided together (one knob, the training step's size). Offered for bursts of 4 or
    # more updates every 4 or more env steps.
    every, steps = base.env_steps_per_update, base.gradient_steps
    if steps < SCHEDULE_FACTOR or every < SCHEDULE_FACTOR:
        return "smaller bursts: the base trains in bursts of fewer than 4 updates or every fewer than 4 env steps"
    new_every, new_steps = every // SCHEDULE_FACTOR, steps // SCHEDULE_FACTOR
    return (
        f"burst-x{1 / SCHEDULE_FACTOR:g}",
        f"Training in bursts of {new_steps} updates every {new_every} env steps instead of {steps} every {every}",
        {"env_steps_per_update": new_every, "gradient_steps": new_steps},
    )


def _batch(factor: int):
    def change(base: AgentConfig):
        if not base.uses_replay:
            return "batch size: the base has no replay (a batch of its latest transition)"
        if base.batch_size >= MAX_BATCH:
            return f"batch size: the base's {base.batch_size} is already at least {MAX_BATCH}"
        size = min(MAX_BATCH, base.batch_size * factor)
        capped = f", capped at {MAX_BATCH}" if size < base.batch_size * factor else ""
        return (f"batch-x{factor}", f"Batches of {size} instead of {base.batch_size}{capped}", {"batch_size": size})

    return change


def _width(base: AgentConfig):
    # Every hidden layer at least WIDE units; a single hidden layer becomes two (Revisiting
    # Rainbow's 2-3 layers). One field, the network: hidden_sizes.
    hidden = base.hidden_sizes
    wide = tuple(max(width, WIDE) for width in hidden) if len(hidden) >= 2 else (max(hidden[0], WIDE), WIDE)
    if wide == hidden:
        return f"network: every one of the base's {len(hidden)} hidden layers already has >= {WIDE} units"
    return (
        f"width-{WIDE}",
        f"Hidden layers of {list(wide)} instead of {list(hidden)} (Revisiting Rainbow: 2-3 layers of >= {WIDE} "
        "units on classic control)",
        {"hidden_sizes": wide},
    )


def _flip(field: str, on: str, off: str):
    def change(base: AgentConfig):
        value = getattr(base, field)
        return (f"{'no-' if value else ''}{field.replace('_', '-')}", off if value else on, {field: not value})

    return change


# In the order the report lists rungs before ranking: the article's switches and the bugs first.
# A change returns a rung (key, description, fields), a line saying why it has none, or None.
CHANGES: tuple[Callable[[AgentConfig], tuple[str, str, dict] | str | None], ...] = (
    _flip("terminal_masking", "Masking terminal states in the target", "Not masking terminal states (example 1's bug)"),
    _flip(
        "bootstrap_on_truncation",
        "Bootstrapping at the time limit instead of treating it as terminal",
        "Treating the time limit as terminal (old-gym done)",
    ),
    *(_bug_off(bug) for bug in CATALOGUE if bug.changes[0][0].startswith("bug_")),
    _replay,
    _target,
    *(_sync_period(factor) for factor in SYNC_FACTORS),
    *(_tau(factor) for factor in TAU_FACTORS),
    _double_q,
    _loss,
    _clipping,
    *(_learning_rate(factor) for factor in LR_FACTORS),
    _learning_start,
    _exploration,
    *(_discount(gamma) for gamma in DISCOUNTS),
    _budget,
    _schedule("env_steps_per_update", 1 / SCHEDULE_FACTOR),
    _schedule("env_steps_per_update", SCHEDULE_FACTOR),
    _schedule("gradient_steps", SCHEDULE_FACTOR),
    _schedule("gradient_steps", 1 / SCHEDULE_FACTOR),
    _burst,
    *(_batch(factor) for factor in BATCH_FACTORS),
    _width,
)


def _changed_fields(base: AgentConfig, config: AgentConfig) -> tuple[str, ...]:
    """The fields config sets differently from base, in AgentConfig's order."""
    return tuple(f.name for f in dataclasses.fields(config) if getattr(base, f.name) != getattr(config, f.name))


def _changes(base: AgentConfig, config: AgentConfig) -> str:
    """Every field a rung changes, as 'field old -> new', so a rung that sets several says so."""
    return ", ".join(
        f"{f.name} {getattr(base, f.name)!r} -> {getattr(config, f.name)!r}"
        for f in dataclasses.fields(config)
        if getattr(base, f.name) != getattr(config, f.name)
    )


def one_knob_ladder(base: AgentConfig) -> tuple[list[Rung], list[str]]:
    """The rungs around `base` (each a valid config differing from it), and a line for every
    knob that has no rung and why."""
    rungs, skipped = [], []
    for change in CHANGES:
        outcome = change(base)
        if outcome is None:
            continue
        if isinstance(outcome, str):
            if outcome not in skipped:
                skipped.append(outcome)
            continue
        key, description, fields = outcome
        try:
            config = base.replace(**fields)
        except ConfigError as exc:
            skipped.append(f"{key}: {exc}")
            continue
        same = next((rung.key for rung in rungs if rung.config == config), None)
        if same is not None:  # a grid point that rounds or caps onto an earlier one: train it once
            skipped.append(f"{key}: the same config as {same}")
            continue
        if config != base:
            changed = _changed_fields(base, config)
            if len(changed) > 1:  # several fields: the sentence names each (and only what changed)
                description = f"{description}; changes {_changes(base, config)}"
            rungs.append(Rung(key, description, config, changed))
    return rungs, skipped
