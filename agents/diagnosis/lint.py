"""Config lint: what a seasoned DQN reviewer flags in a config before anything trains.

Each rule reads the config alone (no run), with the facts of its env where a rule needs them
(agents/envprofile.py: the typical budget, the episode limit, the goal, sparsity), and says which
field, its value, why it is a problem and what to change. Rules are pure functions; `lint` runs
them all and orders the findings by class: what makes training pointless, then what breaks the
values, then secondary biases (in RULES order within a class). Thresholds are fixed from the
literature or the env (cited per rule), never tuned on this suite's runs or on reported cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents.catalogue.bugs import CATALOGUE
from agents.config import AgentConfig, ConfigError
from agents.envprofile import EnvProfile, env_profile

# The order classes a finding carries, the order lint prints them in (docs/lint-rules.md).
POINTLESS = 1  # nothing useful can be learned: no updates, far too short, never synced, random
BREAKS_VALUES = 2  # the TD targets or the step are wrong: unmasked terminals, bugs, lr, gamma, no target
SECONDARY = 3  # a real bias or a sub-optimal setting that rarely stops learning on its own
ORDER_CLASSES = {
    POINTLESS: "makes training pointless",
    BREAKS_VALUES: "breaks the values",
    SECONDARY: "secondary",
}
# "Far" below or above what the sources use: a factor of 4 everywhere in this module (a budget
# under a quarter of rl-zoo's, a horizon under a quarter of the goal's distance, 4x outside the
# update ratios, a quarter of Revisiting Rainbow's width), fixed before looking at any case.
FAR = 4.0

# Adam learning rates DQNs use on the classic-control and Box2D envs this suite trains:
# CleanRL's 2.5e-4, SB3's 1e-4, rl-zoo's tuned 6.3e-4 to 2.3e-3, the article's 1e-3. A rate
# 10x outside [1e-4, 2.3e-3] is far outside what anyone reports working.
TYPICAL_LEARNING_RATES = (1e-4, 2.3e-3)
FAR_OUTSIDE = 10.0
# gamma: the envs' episodes run 200-1,000 steps and rl-zoo uses 0.98-0.99; a horizon
# 1 / (1 - gamma) under 10 steps cannot see a pole fall or a goal reached.
# That 10-step floor holds on every env; on a goal-reaching env the horizon must also reach the
# goal (see `discount`).
MIN_HORIZON = 10.0
# Gradient updates per env step (gradient_steps / env_steps_per_update) in the sources: CleanRL's
# dqn.py 0.1 (train_frequency 10), Mnih et al. 2015 and SB3's defaults 0.25 (every 4 steps),
# rl-zoo's classic-control entries 0.5 (CartPole 128 every 256, MountainCar 8 every 16) to 1
# (Acrobot, LunarLander: gradient_steps -1). Far outside is FAR times beyond either end.
UPDATE_RATIOS = (0.1, 1.0)
# The largest burst (updates per training step) in the sources: rl-zoo's CartPole-v1, 128.
LARGEST_BURST = 128
# Batches: 32 is the smallest the sources use (Mnih et al. 2015, SB3's default); Revisiting
# Rainbow (Obando-Ceron & Castro 2021) finds DQN with batches under 64 sub-optimal on classic
# control. Lint flags only what lies below every source; the ladder's batch rungs try 64-256.
MIN_BATCH = 32
# Networks: Revisiting Rainbow finds 2-3 layers of >= 256 units best on classic control (rl-zoo
# uses [256, 256]; SB3's default [64, 64] and CleanRL's 120-84 also learn CartPole). Far below:
# a layer under a quarter of 256 units, or fewer hidden units in all than a quarter of 2 x 256.
WIDE_LAYER = 256
# Exploration: a behaviour epsilon at or above this at the end of the schedule means the agent
# mostly acts at random for as long as it trains (CleanRL ends at 0.05, SB3 and rl-zoo 0.01-0.1).
RANDOM_EPSILON = 0.5
# Multi-step returns longer than this are off-policy-biased enough that Rainbow's n = 3 and
# Ape-X's n = 5 are the usual range; n beyond 10 is rarely used without a correction.
MAX_N_STEP = 10


@dataclass(frozen=True)
class Finding:
    """One lint finding: the rule, the field and its value, why it is a problem, what to change."""

    rule: str
    field: str
    value: object
    why: str
    fix: str
    # The order class (ORDER_CLASSES): lint prints class 1 first, then 2, then 3.
    order: int = SECONDARY

    def __post_init__(self) -> None:
        if not self.rule or not self.field or not self.why or not self.fix:
            raise ValueError(f"finding {self.rule!r} needs a rule, a field, a reason and a fix")
        if self.order not in ORDER_CLASSES:
            raise ValueError(f"order={self.order!r} is invalid: one of {sorted(ORDER_CLASSES)}")

    def line(self) -> str:
        return f"{self.field} = {self.value!r}: {self.why}; {self.fix}"

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "field": self.field,
            "value": repr(self.value),
            "why": self.why,
            "fix": self.fix,
            "order": self.order,
            "order_class": ORDER_CLASSES[self.order],
        }


Rule = Callable[[AgentConfig], list[Finding]]


def no_update(c: AgentConfig) -> list[Finding]:
    # With no gradient update the network stays its random initialisation: nothing can be learned.
    if c.gradient_updates > 0:
        return []
    if c.learning_starts > c.total_env_steps:
        return [
            Finding(
                "no-update",
                "learning_starts",
                c.learning_starts,
                f"no gradient update ever happens: learning starts after the run's {c.total_env_steps:,} env steps",
                f"set learning_starts well below total_env_steps (say {max(c.batch_size, c.total_env_steps // 50)})",
                POINTLESS,
            )
        ]
    return [
        Finding(
            "no-update",
            "env_steps_per_update",
            c.env_steps_per_update,
            f"no gradient update ever happens: no update step falls between learning_starts={c.learning_starts} "
            f"and the run's end at {c.total_env_steps:,}",
            "update every 1 to 4 env steps (DQN's 4, CleanRL's 10 at most)",
            POINTLESS,
        )
    ]


def _syncs_after_learning_starts(c: AgentConfig) -> int:
    """Target syncs (copies or averages) once updates have begun: every C-th update, or every
    clock multiple of C from learning_starts on when the period counts env steps (earlier ones
    sync an untrained network onto its own copy)."""
    if c.target_sync_unit == "updates":
        return c.gradient_updates // c.target_sync_period
    return c.multiples_after_start(c.target_sync_period)


def never_synced(c: AgentConfig) -> list[Finding]:
    # A hard target synced less often than once per run is the random initial network all along:
    # the TD targets never improve (the stale-target bug, by configuration).
    if c.target_network != "hard" or c.gradient_updates == 0 or _syncs_after_learning_starts(c) > 0:
        return []
    if c.target_sync_unit == "updates":
        run = f"the run makes only {c.gradient_updates:,} gradient updates"
        fix = f"sync every 100-1,000 updates (at most {max(1, c.gradient_updates // 10):,} here, ten syncs a run)"
    else:
        run = f"no multiple of it falls between learning_starts={c.learning_starts:,} and the run's last env step"
        fix = f"sync every at most {max(1, c.total_env_steps // 10):,} env steps here (ten syncs a run)"
    return [
        Finding(
            "never-synced",
            "target_sync_period",
            c.target_sync_period,
            f"the target network is never synced: {run}, so every target comes from the initial random network",
            fix,
            POINTLESS,
        )
    ]


def target_barely_moves(c: AgentConfig) -> list[Finding]:
    # Polyak averaging moves the target by a share tau per average (one per update by default):
    # with tau x averages < 1 the target keeps most of its random initial weights all run.
    if c.target_network != "polyak" or c.gradient_updates == 0:
        return []
    averages = _syncs_after_learning_starts(c)
    if c.target_tau * averages >= 1:
        return []
    return [
        Finding(
            "target-barely-moves",
            "target_tau",
            c.target_tau,
            f"tau x averages = {c.target_tau * averages:.2g} < 1 ({averages:,} averages after learning starts): "
            "the target keeps most of its initial random weights all run",
            f"raise target_tau to at least {10 / max(averages, 1):.2g} (0.005 with >= 2,000 averages)",
            POINTLESS,
        )
    ]


def random_behaviour(c: AgentConfig) -> list[Finding]:
    # Epsilon-greedy with epsilon near 1 ignores the Q-values: the data never shows the effect of
    # acting well, so states a good policy reaches are never in the buffer.
    if c.epsilon_end < RANDOM_EPSILON:
        return []
    decays = c.decay_steps > 0 and c.epsilon_start != c.epsilon_end and not c.bug_epsilon_at_end
    how = f"ends at {c.epsilon_end:g}" if decays else f"stays at {c.epsilon_end:g} (no decay)"
    return [
        Finding(
            "random-behaviour",
            "epsilon_end",
            c.epsilon_end,
            f"exploration {how}: the agent acts at random most of the time and never exploits what it learns",
            "decay epsilon to 0.01-0.1 (CleanRL: from 1.0 to 0.05 over half the run)",
            POINTLESS,
        )
    ]


def decay_beyond_run(c: AgentConfig) -> list[Finding]:
    # A decay longer than the run stops part way: the schedule's end value is never used.
    if c.decay_steps <= c.total_env_steps or c.epsilon_start == c.epsilon_end or c.bug_epsilon_at_end:
        return []
    reached = c.epsilon(c.total_env_steps - 1)
    return [
        Finding(
            "decay-beyond-run",
            "epsilon_decay_steps",
            c.epsilon_decay_steps,
            f"the decay is longer than the run's {c.total_env_steps:,} env steps: epsilon only reaches "
            f"{reached:.2g}, not {c.epsilon_end:g}",
            f"decay over at most half the run ({c.total_env_steps // 2:,} steps)",
            # Pointless when the schedule stops where the agent still acts mostly at random.
            POINTLESS if reached >= RANDOM_EPSILON else SECONDARY,
        )
    ]


# A known bug breaks the values unless named here: a stale target is never synced (pointless);
# the time limit as terminal (Pardo et al. 2018) and a skipped exploration decay bias learning
# but rarely stop it on their own.
BUG_ORDER = {"stale-target": POINTLESS, "time-limit-terminal": SECONDARY, "epsilon-at-end": SECONDARY}


def known_bugs(c: AgentConfig) -> list[Finding]:
    # The catalogue's bugs are switches: a config that sets one trains a known-broken DQN.
    return [
        Finding(
            f"bug-{bug.name}",
            bug.changes[0][0],
            bug.changes[0][1],
            f"{bug.what} Symptom: {bug.symptom}",
            f"set {', '.join(f'{field} = {not value!r}' for field, value in bug.changes)}",
            BUG_ORDER.get(bug.name, BREAKS_VALUES),
        )
        for bug in CATALOGUE
        if all(getattr(c, field) == value for field, value in bug.changes)
    ]


def learning_rate_range(c: AgentConfig) -> list[Finding]:
    # Far outside the rates DQNs use: too large diverges or oscillates, too small never moves.
    low, high = TYPICAL_LEARNING_RATES
    if low / FAR_OUTSIDE <= c.learning_rate <= high * FAR_OUTSIDE:
        return []
    side = "large" if c.learning_rate > high else "small"
    return [
        Finding(
            "learning-rate",
            "learning_rate",
            c.learning_rate,
            f"more than {FAR_OUTSIDE:g}x too {side} for Adam on these envs (DQNs use {low:g} to {high:g})",
            f"try {low:g} to {high:g} (CleanRL 2.5e-4, the article 1e-3)",
            BREAKS_VALUES,
        )
    ]


def _profile(c: AgentConfig, profile: EnvProfile | None) -> EnvProfile | None:
    """The env's profile: the one given, else the registered env's; None for an env gymnasium
    cannot find (the env rules then stay silent; training would report the bad env itself)."""
    if profile is not None:
        return profile
    try:
        return env_profile(c.env_id)
    except ConfigError:
        return None


def _needed_horizon(profile: EnvProfile | None) -> tuple[float, str]:
    """Steps 1 / (1 - gamma) must reach on this env, and why: the 10-step floor, or on a goal-
    reaching env a quarter of the goal's distance (gamma^T = exp(-T / H) discounts a goal T steps
    away below exp(-4), 2%, of the value scale when H < T / 4)."""
    if profile is not None and profile.goal_steps is not None and profile.goal_steps / FAR > MIN_HORIZON:
        return profile.goal_steps / FAR, (
            f"a solving episode reaches {profile.env_id}'s goal only after about {profile.goal_steps} steps of -1"
        )
    return MIN_HORIZON, "a horizon that short cannot see the consequences of an action here"


def discount(c: AgentConfig, profile: EnvProfile | None = None) -> list[Finding]:
    # gamma sets the horizon H = 1 / (1 - gamma), against the env's horizon (_needed_horizon);
    # gamma = 1 with bootstrapping at the time limit has no finite fixed point on a never-ending
    # reward stream.
    need, why = _needed_horizon(_profile(c, profile))
    lowest = 1 - 1 / need
    if c.gamma < lowest - 1e-12:  # 1 - 1/10 is 0.9 in floats, but guard the boundary anyway
        horizon = 1 / (1 - c.gamma)
        return [
            Finding(
                "short-horizon",
                "gamma",
                c.gamma,
                f"a horizon of {horizon:.3g} steps is far too short: {why}",
                f"use gamma >= {lowest:.3g}: 0.98-0.99 (rl-zoo, CleanRL)",
                BREAKS_VALUES,
            )
        ]
    if c.gamma >= 1.0 and c.bootstrap_on_truncation:
        return [
            Finding(
                "no-discount",
                "gamma",
                c.gamma,
                "no discount while bootstrapping at the time limit: the values have no bound and can grow without end",
                "use gamma = 0.99",
                BREAKS_VALUES,
            )
        ]
    return []


def short_budget(c: AgentConfig, profile: EnvProfile | None = None) -> list[Finding]:
    # A budget under a quarter of the smallest one a tuned DQN is known to learn the env in
    # (rl-zoo's n_timesteps, agents/envprofile.py): the run ends before learning can show.
    profile = _profile(c, profile)
    if profile is None or profile.typical_budget is None or FAR * c.total_env_steps >= profile.typical_budget:
        return []
    return [
        Finding(
            "short-budget",
            "total_env_steps",
            c.total_env_steps,
            f"far below the {profile.typical_budget:,} env steps a tuned DQN trains on {profile.env_id} "
            f"({profile.typical_budget_source}): the run ends before it can learn",
            f"train for at least {profile.typical_budget:,} env steps",
            POINTLESS,
        )
    ]


def no_target_with_replay(c: AgentConfig) -> list[Finding]:
    # Replay decorrelates the data, but without a target network each update still moves the
    # target it regresses on (Mnih et al. 2015 needed both; SB3, CleanRL and rl-zoo all keep one).
    if not c.uses_replay or c.target_network != "none":
        return []
    return [
        Finding(
            "no-target",
            "target_network",
            c.target_network,
            "replay without a target network: every update chases a target that moves with it",
            "add a target network (target_network = 'hard', synced every 100-1,000 updates; CleanRL 500 steps)",
            BREAKS_VALUES,
        )
    ]


def _update_ratio_finding(c: AgentConfig) -> Finding | None:
    """Far from the sources' updates per env step (UPDATE_RATIOS): too few to learn in the
    budget, or so many that each transition is fitted over and over before new data arrives."""
    if c.gradient_updates == 0:
        return None  # no-update says so
    ratio = c.gradient_steps / c.env_steps_per_update
    low, high = UPDATE_RATIOS
    if ratio * FAR < low:
        return Finding(
            "few-updates",
            "env_steps_per_update",
            c.env_steps_per_update,
            f"{c.gradient_steps} update(s) every {c.env_steps_per_update} env steps is {ratio:.2g} per env step, "
            f"far below the {low:g}-{high:g} DQNs use: the network barely trains in the run",
            f"train every 1-10 env steps (Mnih et al. 4, CleanRL 10) or raise gradient_steps toward "
            f"{c.env_steps_per_update // 10 or 1}",
            POINTLESS,
        )
    if ratio > FAR * high:
        return Finding(
            "many-updates",
            "gradient_steps",
            c.gradient_steps,
            f"{c.gradient_steps} updates every {c.env_steps_per_update} env step(s) is {ratio:.2g} per env step, "
            f"far above the {low:g}-{high:g} DQNs use: each transition is fitted many times before new data arrives",
            f"use at most {c.env_steps_per_update} gradient step(s) per training step (1 update per env step)",
            BREAKS_VALUES,
        )
    return None


def update_ratio(c: AgentConfig) -> list[Finding]:
    finding = _update_ratio_finding(c)
    return [finding] if finding else []


def update_gap(c: AgentConfig, profile: EnvProfile | None = None) -> list[Finding]:
    # Training steps further apart than the env's longest episode: whole episodes are played by a
    # policy that never changes, then learned from in one go. rl-zoo's longest gap (256 env steps
    # on CartPole-v1) stays under its 500-step limit. Silent when few-updates already names the field.
    profile = _profile(c, profile)
    limit = profile.max_episode_steps if profile else None
    if limit is None or c.env_steps_per_update <= limit or c.gradient_updates == 0:
        return []
    if (ratio_finding := _update_ratio_finding(c)) and ratio_finding.field == "env_steps_per_update":
        return []
    return [
        Finding(
            "update-gap",
            "env_steps_per_update",
            c.env_steps_per_update,
            f"training steps come further apart than {profile.env_id}'s longest episode ({limit} steps): whole "
            "episodes are played by a policy that does not learn between them",
            f"train at least once per {limit} env steps (Mnih et al. every 4, rl-zoo at most every 256)",
            SECONDARY,
        )
    ]


def update_burst(c: AgentConfig) -> list[Finding]:
    # A burst far beyond the largest in the sources (rl-zoo CartPole-v1's 128 updates per
    # training step) fits one buffer state many times over. Silent when many-updates names it.
    if c.gradient_steps <= FAR * LARGEST_BURST or c.gradient_updates == 0:
        return []
    if (ratio_finding := _update_ratio_finding(c)) and ratio_finding.field == "gradient_steps":
        return []
    return [
        Finding(
            "update-burst",
            "gradient_steps",
            c.gradient_steps,
            f"bursts of {c.gradient_steps} updates, far beyond the {LARGEST_BURST} of rl-zoo's largest: the network "
            "fits the buffer as it stands many times over between training steps",
            f"train more often with fewer gradient steps each (at most {LARGEST_BURST} per training step)",
            SECONDARY,
        )
    ]


def small_batch(c: AgentConfig) -> list[Finding]:
    # Below every batch the sources use (MIN_BATCH); without replay the batch is 1 by definition
    # and no-stabiliser or the missing replay is the finding.
    if not c.uses_replay or c.batch_size >= MIN_BATCH:
        return []
    return [
        Finding(
            "small-batch",
            "batch_size",
            c.batch_size,
            f"below the {MIN_BATCH} of Mnih et al. and SB3 (Revisiting Rainbow finds DQN sub-optimal under 64): "
            "noisy gradient steps",
            "use a batch of 64-256 (rl-zoo 64-128, CleanRL 128)",
            SECONDARY,
        )
    ]


def small_network(c: AgentConfig) -> list[Finding]:
    # Far below Revisiting Rainbow's best (WIDE_LAYER units in 2-3 layers): a layer under a
    # quarter of that width, or fewer hidden units in all than a quarter of two such layers.
    narrowest, units = min(c.hidden_sizes), sum(c.hidden_sizes)
    if narrowest * FAR >= WIDE_LAYER and units * FAR >= 2 * WIDE_LAYER:
        return []
    return [
        Finding(
            "small-network",
            "hidden_sizes",
            c.hidden_sizes,
            f"{len(c.hidden_sizes)} hidden layer(s) of {', '.join(map(str, c.hidden_sizes))} units, far below the "
            f"2-3 layers of >= {WIDE_LAYER} that Revisiting Rainbow finds best on classic control",
            f"use hidden_sizes = [{WIDE_LAYER}, {WIDE_LAYER}] (rl-zoo), at least [64, 64] (SB3)",
            SECONDARY,
        )
    ]


def sparse_exploration(c: AgentConfig, profile: EnvProfile | None = None) -> list[Finding]:
    # On a sparse-reward env (agents/envprofile.py) epsilon-greedy sees the goal only by chance.
    # Named whatever the schedule, because no AgentConfig knob changes how the agent explores
    # beyond epsilon's schedule: the honest fix may be outside this suite.
    profile = _profile(c, profile)
    if profile is None or not profile.sparse_reward or c.epsilon_end >= RANDOM_EPSILON:
        return []  # random-behaviour is the finding when exploration stays random
    return [
        Finding(
            "sparse-exploration",
            "epsilon_start",
            c.epsilon_start,
            f"{profile.env_id}'s reward is sparse (-1 every step until a goal random actions rarely reach): "
            "epsilon-greedy finds the goal only by chance, and no knob of this suite beyond the epsilon "
            "schedule changes how the agent explores",
            "explore from epsilon 1.0 over a long share of a full budget (rl-zoo: 20% of 120,000 steps; "
            "CleanRL: 50% of 500,000); if the goal is still never reached, the fix is outside this suite "
            "(reward shaping, an exploration bonus, noisy networks)",
            SECONDARY,
        )
    ]


def replay_sizes(c: AgentConfig) -> list[Finding]:
    # A buffer less than half of learning_starts has overwritten most of the warm-up's transitions
    # before the first update, and from then on holds only recent, correlated ones. (A buffer
    # about as large as learning_starts is CleanRL's default, 10,000 and 10,000: not a defect.)
    # Moot when no update ever runs: no-update says so.
    if c.replay_capacity is None or 2 * c.replay_capacity >= c.learning_starts or c.gradient_updates == 0:
        return []
    return [
        Finding(
            "small-buffer",
            "replay_capacity",
            c.replay_capacity,
            f"less than half of learning_starts={c.learning_starts}: the buffer overwrites most of its data "
            "before the first update and holds only recent, correlated transitions",
            "use a buffer of 10,000-100,000 transitions (SB3 1e6, CleanRL 1e4 on CartPole)",
            SECONDARY,
        )
    ]


def no_stabiliser(c: AgentConfig) -> list[Finding]:
    # Online Q-learning with neither replay nor a target network is the deadly triad's classic
    # unstable case (the article's example 1; Mnih et al. 2015 needed both).
    if c.uses_replay or c.target_network != "none":
        return []
    return [
        Finding(
            "no-stabiliser",
            "replay_capacity",
            c.replay_capacity,
            "neither replay nor a target network: each update chases its own moving, correlated target",
            "add replay (replay_capacity = 10000, batch_size = 64) and a target network (target_network = 'hard')",
            BREAKS_VALUES,
        )
    ]


def long_n_step(c: AgentConfig) -> list[Finding]:
    # Uncorrected n-step returns from old epsilon-greedy data mix in the behaviour policy's value.
    if c.n_step <= MAX_N_STEP:
        return []
    return [
        Finding(
            "long-n-step",
            "n_step",
            c.n_step,
            f"uncorrected {c.n_step}-step returns from replayed data are biased toward the old behaviour policy",
            f"use n_step of 1 to 5 (Rainbow 3), at most {MAX_N_STEP}",
            SECONDARY,
        )
    ]


def no_evaluation(c: AgentConfig) -> list[Finding]:
    # Without evaluation episodes nothing measures the greedy policy: no run can be judged.
    if c.eval_episodes > 0:
        return []
    return [
        Finding(
            "no-evaluation",
            "eval_episodes",
            c.eval_episodes,
            "no evaluation episode ever runs, so no return is measured and no run can be judged",
            "evaluate at least 5 episodes per checkpoint",
            # Nothing of the run can be judged: as pointless for a diagnosis as no training.
            POINTLESS,
        )
    ]


# Within an order class the findings print in this order: training that cannot happen, then a
# broken target or behaviour, then the known bugs, then settings far from the literature; among
# the secondary ones, the env's sparse reward and the update schedule before the time-limit bias.
RULES: tuple[Rule, ...] = (
    no_update,
    short_budget,
    never_synced,
    target_barely_moves,
    random_behaviour,
    decay_beyond_run,
    update_ratio,
    no_evaluation,
    sparse_exploration,
    update_gap,
    update_burst,
    known_bugs,
    no_stabiliser,
    no_target_with_replay,
    learning_rate_range,
    discount,
    replay_sizes,
    small_batch,
    small_network,
    long_n_step,
)
# Rules that read the env's profile (an optional second argument).
ENV_RULES = (short_budget, discount, update_gap, sparse_exploration)


def lint(config: AgentConfig, profile: EnvProfile | None = None) -> list[Finding]:
    """Every finding of every rule on the config, by order class (POINTLESS first), RULES order
    within a class. `profile` is the env's (agents/envprofile.py); by default the registered env's."""
    profile = _profile(config, profile)
    findings = [finding for rule in RULES for finding in (rule(config, profile) if rule in ENV_RULES else rule(config))]
    return sorted(findings, key=lambda finding: finding.order)  # stable: RULES order within a class
