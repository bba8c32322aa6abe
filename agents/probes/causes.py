"""Failure patterns of the probes -> named likely causes, with the numbers and the fix.

Each failing seed of a probe is read two ways: against the Q-values named wrong learning rules
converge to on that probe (agents/probes/envs.py: unmasked terminals, a time limit treated as
terminal, no bootstrap, the previous step's terminal flag, an ignored observation, a dropped
reset observation), and against patterns no closed form needs (values above any return the
probe pays, actions or observations not told apart, the wrong greedy action, a measured
discount off the declared one, no learning). Causes are ranked by the seeds they explain; a
few patterns read across probes (a (B, 1) against (B,) broadcast flattens both the observation
and the action probes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.probes.battery import DISCOUNT_PROBES, TOLERANCE, BatteryResult, ProbeResult, time_limit_terminal_q
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
        "Q climbs toward r / (1 - gamma) too slowly to tell from a time limit treated as terminal",
        "sync the target more often, or give the probes more steps (budget_scale)",
    ),
}


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

    def __post_init__(self) -> None:
        if self.name not in CAUSES:
            raise ValueError(f"name={self.name!r} is invalid: not a known cause")

    @property
    def what(self) -> str:
        return CAUSES[self.name][0]

    @property
    def fix(self) -> str:
        return CAUSES[self.name][1]

    def sentence(self) -> str:
        """'Q at s1 reaches 97.60 on 3 of 3 seeds, expected 1.00: the target bootstraps ...; multiply ...'."""
        detail = f" ({self.detail})" if self.detail else ""
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
            "sentence": self.sentence(),
        }


def _spread(q: np.ndarray, axis: int) -> float:
    return float((q.max(axis=axis) - q.min(axis=axis)).max())


def seed_causes(result: ProbeResult) -> list[tuple[str, tuple[int, int], str]]:
    """The causes one failing seed's Q fits, most specific first: (name, (state, action) shown, detail)."""
    probe = PROBES_BY_NAME[result.probe]
    q, expected, gamma = result.q(), np.asarray(result.expected), result.gamma
    worst = (probe.labels.index(result.worst_state), result.worst_action)
    if not np.isfinite(q).all():
        return [("diverged", worst, "")]
    found: list[tuple[str, tuple[int, int], str]] = []
    # Closed-form fixed points of wrong rules.
    for name, alt in probe.alternatives(gamma, q.shape[1]).items():
        known = np.isfinite(alt)
        if known.any() and np.all(np.abs(q[known] - alt[known]) <= TOLERANCE):
            found.append((name, worst, ""))
    # Values above every return the probe pays (a rule that has not reached its fixed point yet).
    ceiling = expected.max() + TOLERANCE
    if probe.name != "TimeLimit" and q.max() > ceiling:
        high = np.unravel_index(int(np.argmax(q)), q.shape)
        if probe.name == "LastStep" and q[0].max() <= expected[0].max() + TOLERANCE:
            found.append(("terminal_shift", high, ""))
        if probe.name == "LastStep" and np.abs(q[1] - expected[1]).max() <= TOLERANCE:
            found.append(("self_bootstrap", high, ""))
        # Bootstrapping through terminals moves every value toward its unmasked fixed point (up
        # for rewards +1, down for -1), and cannot lift the reset probe's (its terminal step pays
        # 0 and bootstraps from itself): values off the other way, or on that probe, are overshoot.
        unmasked = probe.alternatives(gamma, q.shape[1]).get("unmasked")
        off = np.abs(q - expected) > TOLERANCE
        if unmasked is not None:
            toward = bool(np.all((np.sign(q - expected) * np.sign(unmasked - expected))[off] > 0))
        else:
            toward = probe.name != "ResetObservation" and not (q < expected - TOLERANCE).any()
        found.append(("unmasked" if toward else "unstable", high, ""))
    # Every state's best action has the right value but other actions do not: only the argmax learns.
    if q.shape[1] > 1 and _spread(expected, 1) == 0 and np.abs(q.max(1) - expected.max(1)).max() <= TOLERANCE:
        found.append(("greedy_gather", worst, ""))
    # The time-limit probe: settled at the time-limit-as-terminal value, or still below the floor.
    if probe.name == "TimeLimit":
        settled = time_limit_terminal_q(gamma)
        if q.max() < settled - TOLERANCE:
            found.append(("no_learning", worst, ""))
        elif q.min() > settled + TOLERANCE and q.max() < 2 * settled:
            found.append(("too_slow", worst, ""))
    # Observations or actions not told apart where the exact values differ.
    if len(q) > 1 and _spread(expected, 0) > 2 * TOLERANCE and _spread(q, 0) < TOLERANCE:
        found.append(("observation_ignored", worst, ""))
    if q.shape[1] > 1 and _spread(expected, 1) > 2 * TOLERANCE:
        if _spread(q, 1) < TOLERANCE:
            found.append(("actions_ignored", worst, ""))
        elif np.any(q.argmax(1) != expected.argmax(1)):
            state = int(np.flatnonzero(q.argmax(1) != expected.argmax(1))[0])
            found.append(("wrong_action", (state, int(expected[state].argmax())), ""))
    # The discount applied, where a reward chain measures it.
    if result.discount is not None and probe.name in DISCOUNT_PROBES:
        first, last = DISCOUNT_PROBES[probe.name]
        steps = (len(q) - 1 if last == -1 else last) - first
        # A tolerance of TOLERANCE on V(first) is about TOLERANCE / steps on its steps-th root.
        if abs(result.discount - gamma) > TOLERANCE / steps and q.max(1)[last] > 1 - TOLERANCE:
            twice = abs(result.discount - gamma**2) <= TOLERANCE / steps / 2
            detail = f"measured {result.discount:.3f} per step, declared {gamma:.3f}" + (
                ": gamma applied twice" if twice else ""
            )
            found.append(("wrong_discount", (first, 0), detail))
    # The reset probe: only the first observation's value is wrong.
    if probe.name == "ResetObservation" and abs(q[1] - expected[1]).max() <= TOLERANCE:
        found.append(("reset_dropped", (0, worst[1]), ""))
    if not found and np.abs(q).max() < 3 * TOLERANCE <= np.abs(expected).max():
        found.append(("no_learning", worst, ""))
    unique: dict[str, tuple[str, tuple[int, int], str]] = {}
    for item in found:
        unique.setdefault(item[0], item)
    return list(unique.values())


def probe_causes(results: list[ProbeResult], relabel: dict[str, tuple[str, ...]] | None = None) -> list[Cause]:
    """One probe's likely causes over its failing seeds, the most seeds explained first.

    relabel maps a cause name to the names it reads as, in order (what other probes show; see
    explain); "" stands for a seed no cause fits."""
    failing = [r for r in results if not r.passed]
    if not failing:
        return []
    relabel = relabel or {}
    probe = PROBES_BY_NAME[failing[0].probe]
    by_name: dict[str, list[tuple[ProbeResult, tuple[int, int], str]]] = {}
    order: list[str] = []
    for result in failing:
        found = seed_causes(result)
        if not found and "" in relabel:
            where = (probe.labels.index(result.worst_state), result.worst_action)
            found = [(name, where, "") for name in relabel[""]]
        seen: set[str] = set()
        for name, where, detail in found:
            for label in relabel.get(name, (name,)):
                if label in seen:
                    continue
                seen.add(label)
                if label not in by_name:
                    order.append(label)
                by_name.setdefault(label, []).append((result, where, detail if label == name else ""))
    causes = []
    for name in order:
        hits = by_name[name]
        state, action = hits[0][1]
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
    # Stable sort: most seeds explained first, ties in the order found (most specific first).
    causes = sorted(causes, key=lambda c: -c.seeds)
    if len(failing) < len(results):
        # Passing seeds show the mechanism works: what differs between seeds is the likelier cause.
        worst = max(failing, key=lambda r: abs(r.worst_measured - r.worst_expected))
        fragile = Cause("fragile", probe.name, len(failing), len(failing), len(results), worst.worst_state,
                        worst.worst_measured, worst.worst_expected)  # fmt: skip
        causes.insert(0, fragile)
    return causes


# The probes built for one mechanism each: what they show is the likelier cause elsewhere too.
DEDICATED = ("LastStep", "TwoStep", "DelayedReward", "ConstantReward", "ResetObservation")
# Among causes shown on those, which is named first where several fit (the last one wins).
PRIORITY = (
    "time_limit_terminal", "greedy_gather", "no_bootstrap", "unmasked", "unstable", "self_bootstrap", "terminal_shift"
)  # fmt: skip


def explain(battery: BatteryResult) -> dict[str, list[Cause]]:
    """Every failing probe's likely causes, with the patterns that read across probes applied:
    a first reading of each probe, then every probe read again in the light of the others."""
    first = {v.probe: probe_causes(battery.of(v.probe)) for v in battery.verdicts}

    def top(probe: str) -> str | None:
        found = [c for c in first.get(probe, []) if c.name != "fragile"]
        return found[0].name if found else None

    relabel: dict[str, tuple[str, ...]] = {}
    # A broadcast loss flattens Q over observations and actions alike.
    flat_obs = any(c.name == "observation_ignored" for c in first.get("ObservationReward", []))
    flat_actions = any(c.name == "actions_ignored" for p in ("ActionReward", "ObservationActionReward")
                       for c in first.get(p, []))  # fmt: skip
    if flat_obs and flat_actions:
        relabel["observation_ignored"] = ("broadcast", "observation_ignored")
        relabel["actions_ignored"] = ("broadcast", "actions_ignored")
    # The previous step's terminal flag, seen on its probe, lifts some values and masks others.
    if top("LastStep") == "terminal_shift":
        relabel["unmasked"] = relabel["unstable"] = ("terminal_shift",)
    # Overshoot on the reset probe, which unmasked terminals cannot lift: values too high are overshoot.
    elif top("ResetObservation") == "unstable":
        relabel["unmasked"] = ("unstable",)
    shown = [top(p) for p in DEDICATED if top(p) is not None]
    shown = [relabel.get(name, (name,))[0] for name in shown]
    if shown:
        # A seed no cause fits: the mechanism the dedicated probes show is the likely one.
        relabel[""] = (max(shown, key=lambda name: PRIORITY.index(name) if name in PRIORITY else -1),)
    causes = {v.probe: probe_causes(battery.of(v.probe), relabel) for v in battery.verdicts}
    for name in PRIORITY:
        if name in shown:
            for probe, found in causes.items():
                fragile = [c for c in found if c.name == "fragile"]
                rest = sorted((c for c in found if c.name != "fragile"), key=lambda c, name=name: c.name != name)
                causes[probe] = fragile + rest
    return causes


def summary_line(battery: BatteryResult) -> str:
    """The discount the agent applied against the one it declares."""
    discount = battery.discount()
    gammas = {r.gamma for r in battery.results}
    declared = f"{gammas.pop():.3f}" if len(gammas) == 1 else "several"
    if discount is None:
        return f"discount: not measurable (declared {declared})"
    source = next(name for name in DISCOUNT_PROBES if any(r.discount is not None for r in battery.of(name)))
    return f"discount: measured {discount:.4f} per step (median over seeds, probe {source}), declared {declared}"
