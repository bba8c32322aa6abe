"""Config lint: what a seasoned DQN reviewer flags in a config before anything trains.

Each rule reads the config alone (no run) and says which field, its value, why it is a
problem and what to change. Rules are pure functions of the config; `lint` runs them all in a
fixed order, the ones that make training pointless first. Thresholds are fixed from the
literature (cited per rule), never tuned on this suite's runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents.catalogue.bugs import CATALOGUE
from agents.config import AgentConfig

# Adam learning rates DQNs use on the classic-control and Box2D envs this suite trains:
# CleanRL's 2.5e-4, SB3's 1e-4, rl-zoo's tuned 6.3e-4 to 2.3e-3, the article's 1e-3. A rate
# 10x outside [1e-4, 2.3e-3] is far outside what anyone reports working.
TYPICAL_LEARNING_RATES = (1e-4, 2.3e-3)
FAR_OUTSIDE = 10.0
# gamma: the envs' episodes run 200-1,000 steps and rl-zoo uses 0.98-0.99; a horizon
# 1 / (1 - gamma) under 10 steps cannot see a pole fall or a goal reached.
MIN_GAMMA = 0.9
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

    def __post_init__(self) -> None:
        if not self.rule or not self.field or not self.why or not self.fix:
            raise ValueError(f"finding {self.rule!r} needs a rule, a field, a reason and a fix")

    def line(self) -> str:
        return f"{self.field} = {self.value!r}: {self.why}; {self.fix}"

    def to_dict(self) -> dict:
        return {"rule": self.rule, "field": self.field, "value": repr(self.value), "why": self.why, "fix": self.fix}


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
        )
    ]


def known_bugs(c: AgentConfig) -> list[Finding]:
    # The catalogue's bugs are switches: a config that sets one trains a known-broken DQN.
    return [
        Finding(
            f"bug-{bug.name}",
            bug.changes[0][0],
            bug.changes[0][1],
            f"{bug.what} Symptom: {bug.symptom}",
            f"set {', '.join(f'{field} = {not value!r}' for field, value in bug.changes)}",
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
        )
    ]


def discount(c: AgentConfig) -> list[Finding]:
    # gamma sets the horizon 1 / (1 - gamma); gamma = 1 with bootstrapping at the time limit has
    # no finite fixed point on a never-ending reward stream.
    if c.gamma < MIN_GAMMA:
        return [
            Finding(
                "short-horizon",
                "gamma",
                c.gamma,
                f"a horizon of {1 / (1 - c.gamma):.2g} steps is shorter than the consequences of an action here",
                "use 0.98-0.99 (rl-zoo, CleanRL)",
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
            )
        ]
    return []


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
        )
    ]


# In the order the findings print: training that cannot happen, then a broken target or
# behaviour, then the known bugs, then settings far from the literature.
RULES: tuple[Rule, ...] = (
    no_update,
    never_synced,
    target_barely_moves,
    random_behaviour,
    decay_beyond_run,
    known_bugs,
    no_stabiliser,
    learning_rate_range,
    discount,
    replay_sizes,
    long_n_step,
    no_evaluation,
)


def lint(config: AgentConfig) -> list[Finding]:
    """Every finding of every rule on the config, in RULES order."""
    return [finding for rule in RULES for finding in rule(config)]
