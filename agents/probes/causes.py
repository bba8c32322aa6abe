"""Failure patterns of the probes -> named likely causes, with the numbers and the fix.

Each failing seed of a probe is read two ways: against the Q-values named wrong learning rules
converge to on that probe (agents/probes/envs.py: unmasked terminals, a time limit treated as
terminal, no bootstrap, the previous step's terminal flag, (s', a, r, s') stored, a broadcast
loss, a dropped reset observation), and against patterns no closed form needs (values above any
return the probe pays, actions or observations not told apart, a measured discount off the
declared one, a chain not yet propagated, values at 1/B of their targets, bootstraps from an
action index, exploration left at the end). Within a probe, the causes it isolates come first,
then the most seeds explained.

Across probes (`explain`, the one ranking the printed lines, causes.parquet and the HTML all
use): a mechanism is established by the probe that isolates it, and put first on every failing
probe it is derived to disturb (MECHANISMS below). Each signature is derived from what the bug
does to the Bellman target on the probe's MDP, written next to its check, not fitted to runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.probes.battery import (
    DISCOUNT_PROBES,
    LATE_SHARE,
    MAX_LATE_EPSILON,
    TOLERANCE,
    BatteryResult,
    ProbeResult,
    time_limit_terminal_q,
)
from agents.probes.envs import PROBES_BY_NAME

# name -> (what is wrong, the fix), in plain language.
CAUSES: dict[str, tuple[str, str]] = {
    "unmasked": (
        "the target bootstraps through terminal states",
        "multiply the bootstrap term by (1 - terminated)",
    ),
    "terminal_shift": (
        "each transition is stored with the previous step's terminal flag",
        "store the terminated flag returned by the same env.step that returned next_obs",
    ),
    "time_limit_terminal": (
        "the time limit is treated as terminal (old gym's done, or terminated or truncated, masks the bootstrap)",
        "mask the bootstrap with terminated only (old gym: done and not info.get('TimeLimit.truncated'))",
    ),
    "no_bootstrap": (
        "no value is carried back from the next state: next_obs stored as obs, a target network never "
        "synced, or the bootstrap term dropped",
        "store the next_obs env.step returns and copy the online weights into the target network every C steps",
    ),
    "wrong_discount": (
        "the discount applied per step is not the declared one",
        "apply gamma once per step, the one you declare: y = r + gamma * (1 - terminated) * max_a Q_target(s', a)",
    ),
    "self_bootstrap": (
        "each transition bootstraps from its own state: the stored next state is the current observation",
        "store the next_obs that env.step returns as the transition's next state",
    ),
    "greedy_gather": (
        "only the greedy action's value is learned: Q(s, a) is read at the argmax, not at the action taken",
        "q = q_net(obs).gather(1, actions[:, None]).squeeze(1) with the stored actions",
    ),
    "broadcast": (
        "every Q regresses to the batch's mean target: a (B, 1) prediction against a (B,) target broadcasts "
        "the loss to (B, B)",
        "squeeze the gathered Q to shape (B,) before the loss (q.gather(1, a[:, None]).squeeze(1))",
    ),
    "observation_ignored": (
        "Q does not depend on the observation: it does not reach the network (a constant or stale input)",
        "feed the batch of stored observations to the network, shaped (B, obs_size)",
    ),
    "actions_ignored": (
        "Q does not tell the actions apart: Q(s, a) is not read at the action taken",
        "q = q_net(obs).gather(1, actions[:, None]).squeeze(1), actions as int64",
    ),
    "wrong_action": (
        "the greedy action is wrong: Q(s, a) is updated at another action than the one taken",
        "gather Q at the stored action (not the argmax, not the next action)",
    ),
    "reset_dropped": (
        "the reset observation is dropped: each episode's first step is stored from the last one's final observation",
        "after an episode ends, continue from the observation env.reset() returns",
    ),
    "no_learning": (
        "Q stays near its initial values: no learning (the optimizer never steps, gradients do not reach the "
        "network, or no update runs within the budget)",
        "check that loss.backward() and optimizer.step() run every update and learning starts within the budget",
    ),
    "unstable": (
        "Q overshoots the values and scatters: the updates are too large or pile up (gradients never zeroed, "
        "a learning rate too high)",
        "call optimizer.zero_grad() before every loss.backward(); then lower the learning rate or clip gradients",
    ),
    "fragile": (
        "the values are reached on some seeds and missed on others: the run does not settle on every seed",
        "learn from a replay buffer with a target network, lower the learning rate, or give the probes more steps",
    ),
    "diverged": ("Q is not finite: training diverged", "lower the learning rate or clip gradients"),
    "too_slow": (
        "the values are still propagating back from the reward: too few updates or target syncs within the "
        "budget (the states near the reward have their values, the far ones lag)",
        "run one update per env step (not one per episode) and sync the target every C updates; or give the "
        "probes more steps (--budget-scale)",
    ),
    "next_state_not_stored": (
        "each transition is stored as (s', a, r, s'): the current observation is overwritten by next_obs "
        "before the transition is stored",
        "store (obs, action, reward, next_obs, terminated) first, then set obs = next_obs",
    ),
    "batch_summed": (
        "Q(s, a) is summed over the batch: one scalar against the batch's targets, so each Q learns its target "
        "divided by the batch size",
        "reduce over the action axis only: (q_net(s) * one_hot(a)).sum(dim=1), or "
        "q_net(s).gather(1, a[:, None]).squeeze(1)",
    ),
    "argmax_as_value": (
        "the target bootstraps from the index of the best next action (argmax), not its value (max): "
        "y = r + gamma * j for an action index j",
        "y = r + gamma * (1 - terminated) * Q_target(s').max(1).values, not .argmax(1)",
    ),
    "epsilon_never_decays": (
        "the agent still explores at the end of training: epsilon never decays (a decrement that floors to 0 "
        "with //, a schedule never stepped)",
        "decay epsilon to its final value (0.05 to 0.1 in SB3 and CleanRL) over the first part of training; "
        "compute the decrement with /, not //",
    ),
}
# Causes about what the agent did, not the values it learned: their numbers are an epsilon.
BEHAVIOUR_CAUSES = ("epsilon_never_decays",)


@dataclass(frozen=True)
class Cause:
    """A named likely cause of one probe's failure, with the seeds it explains and the numbers."""

    name: str
    probe: str
    seeds: int  # failing seeds this cause explains
    failed: int  # failing seeds of the probe
    total: int  # seeds the probe ran on
    state: str
    measured: float  # mean over the explained seeds
    expected: float
    detail: str = ""  # a figure the cause adds (the measured discount)
    source: str = ""  # the probe that isolates this cause, when it is read from there and not here

    def __post_init__(self) -> None:
        if self.name not in CAUSES:
            raise ValueError(f"name={self.name!r} is invalid: not a known cause")
        if self.source and self.source not in PROBES_BY_NAME:
            raise ValueError(f"source={self.source!r} is invalid: not a probe")

    @property
    def what(self) -> str:
        return CAUSES[self.name][0]

    @property
    def fix(self) -> str:
        return CAUSES[self.name][1]

    def sentence(self) -> str:
        """'Q at s1 reaches 97.60 on 3 of 3 seeds, expected 1.00: the target bootstraps ...; multiply ...'."""
        detail = f" ({self.detail})" if self.detail else ""
        if self.source:
            detail += f" (as {self.source}, the probe that isolates it, shows)"
        if self.name in BEHAVIOUR_CAUSES:
            return (
                f"epsilon about {self.measured:.2f} over the last {LATE_SHARE:.0%} of training on {self.seeds} of "
                f"{self.total} seeds (common schedules end at 0.1 or below; flagged above {self.expected:.2f}): "
                f"{self.what}{detail}; {self.fix}"
            )
        return (
            f"Q at {self.state} reaches {self.measured:.2f} on {self.seeds} of {self.total} seeds, expected "
            f"{self.expected:.2f}: {self.what}{detail}; {self.fix}"
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "probe": self.probe,
            "seeds": self.seeds,
            "failed": self.failed,
            "total": self.total,
            "state": self.state,
            "measured": self.measured,
            "expected": self.expected,
            "detail": self.detail,
            "source": self.source,
            "sentence": self.sentence(),
        }


def _spread(q: np.ndarray, axis: int) -> float:
    return float((q.max(axis=axis) - q.min(axis=axis)).max())


# The mechanisms each probe is built to isolate (its `checks`): on a probe, these come before
# readings it merely shows (a discount chain that also looks flat is a discount problem there).
OWN: dict[str, tuple[str, ...]] = {
    "ConstantReward": ("no_learning", "batch_summed", "greedy_gather", "diverged"),
    "ObservationReward": ("observation_ignored",),
    "TwoStep": ("no_bootstrap", "wrong_discount"),
    "ActionReward": ("actions_ignored", "wrong_action", "epsilon_never_decays"),
    "ObservationActionReward": ("wrong_action", "greedy_gather"),
    "TimeLimit": ("time_limit_terminal", "too_slow"),
    "TerminateOrTruncate": ("time_limit_terminal",),
    "DelayedReward": ("argmax_as_value", "too_slow", "wrong_discount", "no_bootstrap"),
    "ResetObservation": ("reset_dropped",),
    "LastStep": ("next_state_not_stored", "unmasked", "terminal_shift", "self_bootstrap", "no_bootstrap"),
}
# Probes whose exact values are the rewards alone (one step, then terminal): under a batch-summed
# Q every value is exactly its reward / B, with nothing bootstrapped to compound it.
ONE_STEP = ("ConstantReward", "ObservationReward", "ActionReward", "ObservationActionReward")
# Under a Q summed over the batch, each Q(s, a) converges to its target / B: the sum over a batch
# of Q_i must equal the batch's mean target (1/B) sum_i y_i for every batch drawn, which only
# Q_i = y_i / B satisfies. Batches of 8 or more (SB3 and Nature DQN 32, CleanRL 128) put the scale
# at 1/8 or below.
MAX_BATCH_SCALE = 1 / 8


def _spread(q: np.ndarray, axis: int) -> float:
    return float((q.max(axis=axis) - q.min(axis=axis)).max())


def _chain_readings(
    q: np.ndarray, expected: np.ndarray, gamma: float, later: np.ndarray | None = None
) -> list[tuple[str, str]]:
    """The reward chain of DelayedReward (V(s_i) = gamma^(k-i), the reward state last) read for
    the three ways its values go wrong short of a closed form: (name, detail). later: Q after a
    longer budget, where the battery followed the seed up."""
    values, exact = q.max(axis=1), expected.max(axis=1)
    n_actions, found = q.shape[1], []
    boot, steps = values[:-1], len(values) - 1
    # argmax for max: each bootstrapped target is 0 + gamma * j, j the index of the next state's best
    # action, whatever that state is worth. Under the bug every action of a state has the same
    # target, so which action is ahead in the target network (j) flips from sync to sync and the
    # value settles at gamma times j's average: anywhere in [0, gamma (n - 1)]. (A first reading
    # assumed j fixed, values on the grid gamma * j; the runs showed values between, which the
    # flipping explains; the check below was widened to the range after that look.) Any rule with
    # V(s_i) = d V(s_(i+1)), 0 <= d <= 1, keeps the chain rising toward the reward; a value above its
    # successor's by more than the two values' tolerances, inside that range, is the index showing.
    in_range = bool(np.all((boot >= -TOLERANCE) & (boot <= gamma * (n_actions - 1) + TOLERANCE)))
    if in_range and np.any(boot > values[1:] + 2 * TOLERANCE):
        found.append(("argmax_as_value", ""))
    # Too few backups: after K target syncs the K states nearest the reward have their values and
    # the rest still sit near where they started, so the chain (reward state right, far end low)
    # is not geometric; a converged wrong discount d leaves exactly V(s_i) = V(reward) d^(k-i).
    # A value above the geometric chain through the two ends by more than the tolerance is the
    # unfinished propagation, not a discount.
    reward_right = abs(values[-1] - exact[-1]) <= TOLERANCE
    if reward_right and values[0] < exact[0] - TOLERANCE and values[-1] > 0:
        d = max(values[0], 0.0) / values[-1]
        geometric = values[-1] * d ** (np.arange(steps, -1, -1) / steps)
        # Still moving: given more steps (the battery's follow-up), the far end rose by more than
        # the tolerance; a converged rule would have given the same values again.
        rise = None if later is None else float(later.max(axis=1)[0] - values[0])
        if rise is not None and rise > TOLERANCE:
            found.append(("too_slow", f"V(s0) rose by {rise:.2f} given twice the steps: still propagating"))
        elif np.max(values - geometric) > TOLERANCE:
            found.append(("too_slow", "the near end of the chain has its values, the far end lags"))
    return found


def seed_causes(result: ProbeResult) -> list[tuple[str, tuple[int, int], str]]:
    """The causes one failing seed fits, the probe's own first: (name, (state, action) shown, detail)."""
    probe = PROBES_BY_NAME[result.probe]
    q, expected, gamma = result.q(), np.asarray(result.expected), result.gamma
    worst = (probe.labels.index(result.worst_state), result.worst_action)
    if not np.isfinite(q).all():
        return [("diverged", worst, "")]
    found: list[tuple[str, tuple[int, int], str]] = []
    n_actions = q.shape[1]
    alternatives = probe.alternatives(gamma, n_actions)
    # Closed-form fixed points of wrong rules.
    for name, alt in alternatives.items():
        known = np.isfinite(alt)
        if known.any() and np.all(np.abs(q[known] - alt[known]) <= TOLERANCE):
            found.append((name, worst, ""))
    # LastStep with (s', a, r, s') stored: s0's step is stored as (s1, r 1, s1), a self-loop
    # climbing toward 1 / (1 - gamma); s1's as (s0, r 1, s0, terminated), exactly 1. So Q(s0) sits at
    # 1 (not 1 + gamma) while Q(s1) is above anything a masked two-step return pays, on its way.
    next_state_pattern = (
        probe.name == "LastStep"
        and np.abs(q[0] - 1.0).max() <= TOLERANCE
        and q[1].min() > expected[0].max() + TOLERANCE
    )
    if next_state_pattern:
        found.append(("next_state_not_stored", (1, int(q[1].argmax())), ""))
    # Values above every return the probe pays (a rule that has not reached its fixed point yet).
    ceiling = expected.max() + TOLERANCE
    if probe.name != "TimeLimit" and q.max() > ceiling:
        high = np.unravel_index(int(np.argmax(q)), q.shape)
        if probe.name == "LastStep" and not next_state_pattern and q[0].max() <= expected[0].max() + TOLERANCE:
            found.append(("terminal_shift", high, ""))
        if probe.name == "LastStep" and np.abs(q[1] - expected[1]).max() <= TOLERANCE:
            found.append(("self_bootstrap", high, ""))
        # Bootstrapping through terminals moves every value toward its unmasked fixed point (up for
        # rewards +1, down for -1). On the reset probe unmasked terminals turn s1's last step (r 0)
        # into a self-loop whose fixed point 0 pulls only by 1 - gamma per sync, so values there can
        # drift either way: read as overshoot here, and as unmasked when LastStep shows it (explain).
        unmasked = alternatives.get("unmasked")
        off = np.abs(q - expected) > TOLERANCE
        if unmasked is not None:
            toward = bool(np.all((np.sign(q - expected) * np.sign(unmasked - expected))[off] > 0))
        else:
            toward = probe.name != "ResetObservation" and not (q < expected - TOLERANCE).any()
        found.append(("unmasked" if toward else "unstable", high, ""))
    # Every state's best action has the right value but other actions do not: only the argmax learns.
    if n_actions > 1 and _spread(expected, 1) == 0 and np.abs(q.max(1) - expected.max(1)).max() <= TOLERANCE:
        found.append(("greedy_gather", worst, ""))
    if probe.name == "TimeLimit":
        settled = time_limit_terminal_q(gamma)
        high = np.unravel_index(int(np.argmax(q)), q.shape)
        # Above r / (1 - gamma) by more than its tolerance: a correct agent climbs toward the value
        # from below, so the discount applied is larger than the declared one (or it overshoots).
        if q.max() > expected.max() * (1 + TOLERANCE):
            at_least = 1 - 1 / q.max()
            detail = f"Q needs a discount of at least {at_least:.3f}, declared {gamma:.3f}"
            found.append(("wrong_discount", high, detail))
            found.append(("unstable", high, ""))
        # argmax for max: Q = 1 + gamma * j for an action index j. j = 0 and 1 coincide with no
        # bootstrap (1) and a terminal time limit (1 / (1 - gamma/2)); j >= 2 (3 or more actions) is its own.
        indices = np.arange(2, n_actions)
        if len(indices) and np.abs(q.max() - (1 + gamma * indices)).min() <= TOLERANCE:
            found.append(("argmax_as_value", worst, ""))
        # Settled at the time-limit-as-terminal value, or still below the floor.
        if q.max() < settled - TOLERANCE:
            found.append(("no_learning", worst, ""))
        elif q.min() > settled + TOLERANCE and q.max() < 2 * settled:
            found.append(("too_slow", worst, ""))
    # Q summed over the batch: every value its reward / B on the one-step probes. The scale c is
    # the least-squares one; each value must sit within one scaled reward of c times its exact
    # value (so every reward's sign is learned), at c <= 1/8.
    if probe.name in ONE_STEP:
        scale = float((q * expected).sum() / (expected * expected).sum())
        if 0 < scale <= MAX_BATCH_SCALE and np.abs(q - scale * expected).max() <= scale * np.abs(expected).max():
            found.append(("batch_summed", worst, f"Q is {scale:.3f} of its exact value, 1 / {1 / scale:.0f}"))
    # Observations or actions not told apart where the exact values differ.
    if len(q) > 1 and _spread(expected, 0) > 2 * TOLERANCE and _spread(q, 0) < TOLERANCE:
        found.append(("observation_ignored", worst, ""))
    if n_actions > 1 and _spread(expected, 1) > 2 * TOLERANCE:
        if _spread(q, 1) < TOLERANCE:
            found.append(("actions_ignored", worst, ""))
        elif np.any(q.argmax(1) != expected.argmax(1)):
            state = int(np.flatnonzero(q.argmax(1) != expected.argmax(1))[0])
            found.append(("wrong_action", (state, int(expected[state].argmax())), ""))
    # The reward chain: an action index for a value, an unfinished propagation, or a discount.
    later = None if result.later is None else np.asarray(result.later, dtype=np.float64)
    chain = _chain_readings(q, expected, gamma, later) if probe.name == "DelayedReward" else []
    found += [(name, (0, 0), detail) for name, detail in chain]
    if result.discount is not None and probe.name in DISCOUNT_PROBES and not chain:
        first, last = DISCOUNT_PROBES[probe.name]
        steps = (len(q) - 1 if last == -1 else last) - first
        # A tolerance of TOLERANCE on V(first) is about TOLERANCE / steps on its steps-th root.
        if abs(result.discount - gamma) > TOLERANCE / steps and q.max(1)[last] > 1 - TOLERANCE:
            twice = abs(result.discount - gamma**2) <= TOLERANCE / steps / 2
            detail = f"measured {result.discount:.3f} per step, declared {gamma:.3f}" + (
                ": gamma applied twice" if twice else ""
            )
            found.append(("wrong_discount", (first, 0), detail))
    # Values that barely left their initial ones, where the exact ones are far from 0.
    if np.abs(q).max() < 3 * TOLERANCE <= np.abs(expected).max():
        found.append(("no_learning", worst, ""))
    # Behaviour: still exploring at the end, on the probe whose best action is known.
    if result.explores_late:
        found.append(("epsilon_never_decays", worst, ""))
    unique: dict[str, tuple[str, tuple[int, int], str]] = {}
    for item in found:
        unique.setdefault(item[0], item)
    own = OWN.get(probe.name, ())
    return sorted(unique.values(), key=lambda item: item[0] not in own)


def probe_causes(results: list[ProbeResult]) -> list[Cause]:
    """One probe's likely causes over its failing seeds, read on this probe alone: the most seeds
    explained first, then the probe's own mechanisms; "fragile" first when some seeds pass."""
    failing = [r for r in results if not r.passed]
    if not failing:
        return []
    probe = PROBES_BY_NAME[failing[0].probe]
    by_name: dict[str, list[tuple[ProbeResult, tuple[int, int], str]]] = {}
    for result in failing:
        for name, where, detail in seed_causes(result):
            by_name.setdefault(name, []).append((result, where, detail))
    causes = []
    for name, hits in by_name.items():
        state, action = hits[0][1]
        if name in BEHAVIOUR_CAUSES:
            measured = float(np.mean([r.late_epsilon for r, _, _ in hits]))
            expected = MAX_LATE_EPSILON
        else:
            measured = float(np.mean([r.q()[state, action] for r, _, _ in hits]))
            expected = float(np.asarray(hits[0][0].expected)[state, action])
        causes.append(
            Cause(
                name,
                probe.name,
                len(hits),
                len(failing),
                len(results),
                probe.labels[state],
                measured,
                expected,
                hits[0][2],
            )  # fmt: skip
        )
    # Stable sort: most seeds explained first, ties in the order found (the probe's own first).
    causes = sorted(causes, key=lambda c: -c.seeds)
    if len(failing) < len(results):
        # Passing seeds show the mechanism works: what differs between seeds is the likelier cause.
        worst = max(failing, key=lambda r: abs(r.worst_measured - r.worst_expected))
        fragile = Cause("fragile", probe.name, len(failing), len(failing), len(results), worst.worst_state,
                        worst.worst_measured, worst.worst_expected)  # fmt: skip
        causes.insert(0, fragile)
    return causes


# --- across probes ---------------------------------------------------------------------------
# Which probes each mechanism disturbs, derived from what it does to the stored transitions or the
# target on each probe's MDP (agents/probes/envs.py); the probe that isolates it is in MECHANISMS.
_ALL = tuple(PROBES_BY_NAME)
# Probes with a terminal step (all but TimeLimit, whose episodes only truncate).
_TERMINAL = tuple(p for p in _ALL if p != "TimeLimit")
# Probes whose episodes have more than one step before a terminal: a flag from the step before
# can differ from the step's own (one-step episodes always follow a terminal step).
_MULTI_STEP = ("TwoStep", "TerminateOrTruncate", "DelayedReward", "ResetObservation")
# Probes with a transition to another state: (s', a, r, s') or (s, a, r, s) loses it. On the
# one-step probes and TimeLimit every stored next state is the state itself, so both pass.
_MOVING = ("TwoStep", "TerminateOrTruncate", "DelayedReward", "ResetObservation")
# Probes that bootstrap (a non-terminal step): a wrong bootstrap value shows only there.
_BOOTSTRAPPING = ("TwoStep", "TimeLimit", "TerminateOrTruncate", "DelayedReward", "ResetObservation", "LastStep")
# Probes whose reset observation can differ from the last episode's final one (a random start, or
# a terminal that shows another state): a dropped reset observation changes what they store.
# ConstantReward, ActionReward, TimeLimit (one state) and LastStep (its terminal shows s0, the start)
# store the same transitions with or without it.
RESET_CHANGES = ("ObservationReward", "ObservationActionReward", "TwoStep", "TerminateOrTruncate", "DelayedReward",
                 "ResetObservation")  # fmt: skip


@dataclass(frozen=True)
class Mechanism:
    """A cause as read across probes: the probes whose reading establishes it (any of them, as the
    best-supported reading there), the probes it is derived to disturb, and the probes it leaves
    exact (a failure there means something else)."""

    cause: str
    isolated_by: tuple[str, ...]
    disturbs: tuple[str, ...]
    leaves_exact: tuple[str, ...] = ()
    also: tuple[tuple[str, str], ...] = ()  # (probe, reading): any one of them must be read too

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise ValueError(f"cause={self.cause!r} is invalid: not a known cause")
        for probe in (*self.isolated_by, *self.disturbs, *self.leaves_exact, *(p for p, _ in self.also)):
            if probe not in PROBES_BY_NAME:
                raise ValueError(f"probe={probe!r} is invalid: not a probe")


# In priority order: where two established mechanisms disturb a probe, the first is named first.
# Mechanisms that change every Q (the loss over the wrong quantity) come first, then what is
# stored, then the masks, then the discount, then convergence.
MECHANISMS: tuple[Mechanism, ...] = (
    # Q summed over the batch: ConstantReward's targets are all 1, so the only thing the sum can
    # do there is scale them (Q = 1/B); every probe's values are scaled alike.
    Mechanism("batch_summed", ("ConstantReward",), _ALL),
    # Q read at the argmax: on ConstantReward every action pays 1, so only which action is updated differs.
    Mechanism("greedy_gather", ("ConstantReward",), _ALL),
    # (B, 1) against (B,): on ActionReward (one state, one step) only the action dimension can
    # flatten, and a dropped reset cannot (its reset observation is its terminal one); the loss
    # also flattens LastStep and ResetObservation at their replay-mean values, or ObservationReward at 0.
    Mechanism(
        "broadcast",
        ("ActionReward",),
        _ALL,
        also=(
            ("LastStep", "broadcast"),
            ("ResetObservation", "broadcast"),
            ("ObservationReward", "observation_ignored"),
        ),
    ),
    # argmax for max: only a chain long enough to show a value above its successor isolates it.
    Mechanism("argmax_as_value", ("DelayedReward", "TimeLimit"), _BOOTSTRAPPING),
    Mechanism("next_state_not_stored", ("LastStep",), _MOVING, ("ConstantReward", "ActionReward", "TimeLimit")),
    Mechanism("self_bootstrap", ("LastStep",), _MOVING, ("ConstantReward", "ActionReward", "TimeLimit")),
    Mechanism("terminal_shift", ("LastStep",), _MULTI_STEP, ("ConstantReward", "ActionReward")),
    Mechanism("unmasked", ("LastStep",), _TERMINAL),
    Mechanism("no_bootstrap", ("TwoStep",), _BOOTSTRAPPING),
    # A dropped reset: ResetObservation isolates it; LastStep and ActionReward store the same
    # transitions without the reset observation, so a failure there is something else (a broadcast
    # loss flattens ActionReward; (s', a, r, s') lifts LastStep's s1).
    Mechanism("reset_dropped", ("ResetObservation",), RESET_CHANGES, ("LastStep", "ActionReward", "ConstantReward")),
    Mechanism("time_limit_terminal", ("TimeLimit",), ("TerminateOrTruncate",)),
    Mechanism(
        "wrong_discount",
        ("DelayedReward", "TwoStep"),
        ("TimeLimit", "TwoStep", "DelayedReward", "LastStep", "TerminateOrTruncate"),
    ),  # fmt: skip
    Mechanism("too_slow", ("DelayedReward",), ("TimeLimit",)),
    # Overshoot on the reset probe, unless LastStep shows unmasked terminals (established above).
    Mechanism("unstable", ("ResetObservation",), _ALL),
    Mechanism("epsilon_never_decays", ("ActionReward",), ()),
)
MECHANISMS_BY_CAUSE = {m.cause: m for m in MECHANISMS}


def _best_supported(causes: list[Cause], name: str) -> bool:
    """Whether `name` is among a probe's readings explaining the most failing seeds, and those are
    most of the seeds it ran on (a reading of one seed in three establishes nothing)."""
    readings = [c for c in causes if c.name != "fragile"]
    most = max((c.seeds for c in readings), default=0)
    return any(c.name == name and c.seeds == most and 2 * c.seeds > c.total for c in readings)


def established(first: dict[str, list[Cause]], failing: set[str]) -> list[tuple[str, str]]:
    """The mechanisms the probes that isolate them show, in priority order: (cause, that probe)."""
    found = []
    for mechanism in MECHANISMS:
        source = next((p for p in mechanism.isolated_by if _best_supported(first.get(p, []), mechanism.cause)), None)
        if mechanism.cause == "broadcast":  # read as flat actions on its probe
            source = source or ("ActionReward" if _best_supported(first.get("ActionReward", []), "actions_ignored")
                                else None)  # fmt: skip
        if source is None or failing & set(mechanism.leaves_exact):
            continue
        if mechanism.also and not any(
            any(c.name == name for c in first.get(probe, [])) for probe, name in mechanism.also
        ):  # fmt: skip
            continue
        if mechanism.cause == "unstable" and any(cause == "unmasked" for cause, _ in found):
            continue
        # A probe establishes one mechanism, the first in priority its readings support (a dropped
        # reset also lifts ResetObservation's never-stored s0: not a second, unstable, mechanism).
        if any(source == shown for _, shown in found):
            continue
        found.append((mechanism.cause, source))
    return found


def _promote(causes: list[Cause], name: str, source: str, results: list[ProbeResult]) -> list[Cause]:
    """`name` first on a probe: its own reading moved up, or (read from `source`) added for every
    failing seed at the worst value."""
    mine = [c for c in causes if c.name == name]
    rest = [c for c in causes if c.name != name]
    if mine:
        return mine + rest
    failing = [r for r in results if not r.passed]
    worst = max(failing, key=lambda r: abs(r.worst_measured - r.worst_expected))
    at = [r.q()[list(r.states).index(worst.worst_state), worst.worst_action] for r in failing]
    added = Cause(name, worst.probe, len(failing), len(failing), len(results), worst.worst_state,
                  float(np.mean(at)), worst.worst_expected, "", source)  # fmt: skip
    return [added, *rest]


def explain(battery: BatteryResult) -> dict[str, list[Cause]]:
    """Every failing probe's likely causes, one ranking for every output: each probe read alone,
    then each established mechanism put first on the failing probes it disturbs."""
    first = {v.probe: probe_causes(battery.of(v.probe)) for v in battery.verdicts}
    failing = {v.probe for v in battery.verdicts if v.status.startswith("fail")}
    shown = established(first, failing)
    causes = {}
    for probe, found in first.items():
        for name, source in shown:
            mechanism = MECHANISMS_BY_CAUSE[name]
            fails = probe in failing
            if fails and (probe == source or probe in mechanism.disturbs):
                found = _promote(found, name, "" if probe == source else source, battery.of(probe))
                break
        causes[probe] = found
    return causes


def headline(battery: BatteryResult, causes: dict[str, list[Cause]]) -> Cause | None:
    """The cause to read first: the top one of the first failing probe on every seed, else of the
    first failing probe (the order of the probes)."""
    fails = [v for v in battery.verdicts if v.status.startswith("fail") and causes.get(v.probe)]
    every = [v for v in fails if v.status == "fail-every-seed"]
    chosen = (every or fails or [None])[0]
    return None if chosen is None else causes[chosen.probe][0]


def summary_line(battery: BatteryResult) -> str:
    """The discount the agent applied against the one it declares."""
    discount = battery.discount()
    gammas = {r.gamma for r in battery.results}
    declared = f"{gammas.pop():.3f}" if len(gammas) == 1 else "several"
    if discount is None:
        return f"discount: not measurable (declared {declared})"
    source = next(name for name in DISCOUNT_PROBES if any(r.discount is not None for r in battery.of(name)))
    return f"discount: measured {discount:.4f} per step (median over seeds, probe {source}), declared {declared}"
