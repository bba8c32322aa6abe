"""The probe battery: every probe on several seeds, Q read at its states, judged against the exact values.

Budgets and tolerances are fixed here, with their reasons, before any result:

- TOLERANCE 0.2 on every Q-value: the probes' rewards are +-1 and their values at most 1 + gamma,
  so 0.2 is a fifth of the reward scale. Every wrong learning rule the probes are built for
  moves a value by 0.5 or more at gamma >= 0.5 (unmasked terminals toward 1 / (1 - gamma); a
  time limit treated as terminal from gamma to 0; an ignored observation or action from +-1 to
  their mean; the terminal flag of the step before swaps 1 and 1 + gamma; a dropped reset
  observation moves Q(s1) from 0 to 1 / (2 - gamma)), while a network that has fitted a
  handful of constants is off by far less than a tenth.
- Step budgets: a plain PyTorch DQN with a small net (two hidden layers of 64), a replay
  buffer, learning from about step 100 and a target synced every 100 steps needs one sync per
  backup, and a few hundred updates to fit each value: 1,000 env steps for a one-step probe and
  500 more for every further step between the reward and the farthest state (BASE_STEPS,
  STEPS_PER_DEPTH). An agent that syncs rarely needs more: budget_scale multiplies them all.
- The time-limit probe's value r / (1 - gamma) needs about 1 / (1 - gamma) backups, more than
  any budget here at gamma = 0.99, so it passes when Q is on its way there: at least twice the
  value a time-limit-as-terminal agent settles at (1 / (1 - gamma / 2) with its two-step limit)
  and not above r / (1 - gamma) by more than TOLERANCE of it (its values are 1 / (1 - gamma)
  reward scales, so its tolerance is relative; an agent without replay reaches the value and
  swings about it).
- SEEDS 3: a failure on every seed is a bug; on some seeds, fragile hyperparameters.
- Behaviour (the probe envs see every action taken in training): on ActionReward, whose best
  action is known, the share of the last LATE_SHARE of a run's steps spent on other actions,
  divided by (n - 1) / n, estimates the epsilon still in effect at the end (uniform exploration
  takes another action with probability epsilon (n - 1) / n when the greedy action is the best
  one). Common schedules end at epsilon 0.1 or below (Nature DQN 0.1, SB3 and CleanRL 0.05),
  CleanRL by half of training, SB3 by a tenth, and a linear schedule over the whole run still
  averages under 0.15 over its last tenth; MAX_LATE_EPSILON 0.5 sits halfway between those and
  no decay at all (1.0), so only a schedule that never got going fails it.
- Still moving (DelayedReward): a seed whose chain has the reward state right and its far end
  below the exact value is trained again on LATER_SCALE times the budget. A converged rule (a
  wrong discount) gives the same values again; an unfinished propagation gets the backups it
  lacked, so its far end rises toward gamma^k, by more than TOLERANCE since it was that far below.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from agents.probes.adapters import Agent, UserCodeError, q_values
from agents.probes.envs import PROBES, PROBES_BY_NAME, TIME_LIMIT, Probe, ProbeEnv, ProbeShape

TOLERANCE = 0.2
BASE_STEPS = 1_000
STEPS_PER_DEPTH = 500
SEEDS = 3
DEFAULT_GAMMA = 0.99
# Probes that measure the discount the agent applied: (probe, first state, reward state).
DISCOUNT_PROBES = {"DelayedReward": (0, -1), "TwoStep": (0, 1)}
DEFAULT_SHAPE = ProbeShape()
BEHAVIOUR_PROBE = "ActionReward"
LATE_SHARE = 0.1
MAX_LATE_EPSILON = 0.5
LATER_SCALE = 2.0
FOLLOWED_PROBES = ("DelayedReward",)
STATUSES = ("pass", "fail-every-seed", "fail-some-seeds", "not-applicable")


def budget(probe: Probe, scale: float = 1.0) -> int:
    """Env steps a probe is trained for (see the module docstring)."""
    return max(1, round((BASE_STEPS + STEPS_PER_DEPTH * (probe.depth - 1)) * scale))


def time_limit_terminal_q(gamma: float) -> float:
    """The value a time-limit-as-terminal agent settles at on the time-limit probe: the fixed
    point of Q = 1 + gamma (1 - 1/L) Q, one stored transition in L cut short."""
    return 1.0 / (1.0 - gamma * (1.0 - 1.0 / TIME_LIMIT))


def within(probe: Probe, measured: np.ndarray, expected: np.ndarray, gamma: float) -> np.ndarray:
    """Per (state, action): whether the measured Q passes (see the module docstring)."""
    close = np.abs(measured - expected) <= TOLERANCE
    if probe.name == "TimeLimit":
        floor = 2.0 * time_limit_terminal_q(gamma)
        close |= (measured >= floor) & (measured <= expected * (1 + TOLERANCE))
    return close


def measured_discount(probe: Probe, q: np.ndarray) -> float | None:
    """The discount the agent applied, from the values of a reward chain: the (k-1)-th root of
    V(first) / V(reward state), k-1 the steps between them. None when not measurable."""
    if probe.name not in DISCOUNT_PROBES:
        return None
    first, last = DISCOUNT_PROBES[probe.name]
    values = q.max(axis=1)
    steps = (len(values) - 1 if last == -1 else last) - first
    ratio = values[first] / values[last] if values[last] > 0 else math.nan
    if not ratio > 0:
        return None
    return float(ratio ** (1.0 / steps))


def late_epsilon(probe: Probe, actions, n_actions: int, gamma: float = DEFAULT_GAMMA) -> float | None:
    """The epsilon in effect over the last LATE_SHARE of a run's steps, from the actions it took at
    states with one best action: the share of other actions times n / (n - 1). None without such
    steps (no recording, or a probe whose actions are all worth the same)."""
    if n_actions < 2 or not len(actions):
        return None
    expected = probe.expected(gamma, n_actions)
    best = expected.argmax(axis=1)
    unique = (expected == expected.max(axis=1, keepdims=True)).sum(axis=1) == 1
    late = np.asarray(actions, dtype=np.int64)[-max(1, math.ceil(LATE_SHARE * len(actions))) :]
    late = late[unique[late[:, 0]]]
    if not len(late):
        return None
    other = float(np.mean(late[:, 1] != best[late[:, 0]]))
    return other * n_actions / (n_actions - 1)


@dataclass(frozen=True)
class ProbeResult:
    """One probe on one seed: Q measured at every state and action against the exact values."""

    probe: str
    seed: int
    gamma: float
    steps: int
    states: tuple[str, ...]
    measured: tuple[tuple[float, ...], ...]  # states x actions
    expected: tuple[tuple[float, ...], ...]
    passed: bool
    worst_state: str
    worst_action: int
    worst_measured: float
    worst_expected: float
    discount: float | None  # the discount measured on this probe, where it can be
    seconds: float
    late_epsilon: float | None = None  # the exploration left at the end of the run (BEHAVIOUR_PROBE)
    later: tuple[tuple[float, ...], ...] | None = None  # Q after LATER_SCALE times the budget (followed up)

    def __post_init__(self) -> None:
        if self.probe not in PROBES_BY_NAME:
            raise ValueError(f"probe={self.probe!r} is invalid: not a probe")
        if np.shape(self.measured) != np.shape(self.expected) or len(self.measured) != len(self.states):
            raise ValueError(f"measured has shape {np.shape(self.measured)}; expected {np.shape(self.expected)}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["states"] = list(self.states)
        data["measured"] = [list(row) for row in self.measured]
        data["expected"] = [list(row) for row in self.expected]
        return data

    def q(self) -> np.ndarray:
        return np.asarray(self.measured, dtype=np.float64)

    def lags(self) -> bool:
        """Whether a followed probe's chain has its reward state right and its far end below the
        exact value: what a still-propagating chain and a smaller discount both show."""
        if self.probe not in FOLLOWED_PROBES or self.passed:
            return False
        values, exact = self.q().max(axis=1), np.asarray(self.expected).max(axis=1)
        return bool(abs(values[-1] - exact[-1]) <= TOLERANCE and values[0] < exact[0] - TOLERANCE)

    @property
    def explores_late(self) -> bool:
        """Whether the run still explored at the end, on the probe that judges behaviour."""
        return self.probe == BEHAVIOUR_PROBE and self.late_epsilon is not None and self.late_epsilon > MAX_LATE_EPSILON


@dataclass(frozen=True)
class ProbeVerdict:
    """A probe over its seeds: pass, FAIL on every seed (a bug) or on some (fragile)."""

    probe: str
    status: str
    failed_seeds: int
    seeds: int
    reason: str = ""  # why not applicable

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is invalid: must be one of {STATUSES}")

    def to_dict(self) -> dict:
        return asdict(self)


def classify(probe: str, results: list[ProbeResult]) -> ProbeVerdict:
    failed = sum(not r.passed for r in results)
    if failed == 0:
        status = "pass"
    elif failed == len(results):
        status = "fail-every-seed"
    else:
        status = "fail-some-seeds"
    return ProbeVerdict(probe, status, failed, len(results))


def run_probe(
    agent: Agent,
    probe: Probe,
    shape: ProbeShape,
    seeds: list[int],
    gamma: float | None = None,
    budget_scale: float = 1.0,
) -> list[ProbeResult]:
    """Train the agent on one probe for each seed and read its Q at the probe's states. Gamma:
    the given one, else the agent's or the returned object's, else DEFAULT_GAMMA."""
    steps = budget(probe, budget_scale)
    measured, seconds = train_and_measure(agent, probe.name, shape, steps, list(seeds))
    return follow_up(agent, probe, shape, judge(probe, seeds, measured, gamma, steps, seconds), budget_scale)


def follow_up(
    agent: Agent, probe: Probe, shape: ProbeShape, results: list[ProbeResult], budget_scale: float = 1.0
) -> list[ProbeResult]:
    """The lagging seeds (ProbeResult.lags) trained again on LATER_SCALE times the budget, their
    Q kept as `later`: still moving, or settled (module docstring). Others are returned as they are."""
    lagging = [r for r in results if r.lags()]
    if not lagging:
        return results
    steps = budget(probe, budget_scale * LATER_SCALE)
    runs, _ = train_and_measure(agent, probe.name, shape, steps, [r.seed for r in lagging])
    later = {
        r.seed: tuple(tuple(float(v) for v in row) for row in run[0]) for r, run in zip(lagging, runs, strict=True)
    }
    return [replace(r, later=later[r.seed]) if r.seed in later else r for r in results]


def train_and_measure(
    agent: Agent, probe_name: str, shape: ProbeShape, steps: int, seeds: list[int]
) -> tuple[list[tuple[np.ndarray, float | None, float | None]], float]:
    """Train on one probe for each seed; each seed's Q at the probe's states, its gamma (the
    agent's, else the returned object's) and its late epsilon, and the seconds per seed. Runs in a
    worker process too."""
    probe = PROBES_BY_NAME[probe_name]
    started = time.perf_counter()
    trained = agent.train(probe, shape, steps, list(seeds))
    seconds = (time.perf_counter() - started) / max(1, len(seeds))
    obs = ProbeEnv(probe.name, shape.obs_shape, shape.n_actions).state_observations()
    measured = [
        (
            q_values(run, obs, shape.n_actions, agent.files),
            agent.gamma if agent.gamma is not None else run.gamma,
            late_epsilon(probe, run.actions, shape.n_actions),
        )
        for run in trained
    ]
    return measured, seconds


def judge(
    probe: Probe,
    seeds: list[int],
    measured: list[tuple],
    gamma: float | None,
    steps: int,
    seconds: float,
) -> list[ProbeResult]:
    """Each seed's Q against the exact values at its gamma (the given one, else the run's, else
    DEFAULT_GAMMA), and on BEHAVIOUR_PROBE its late exploration. measured: (Q, the run's gamma)
    or (Q, the run's gamma, its late epsilon) per seed."""
    results = []
    for seed, (q, run_gamma, *rest) in zip(seeds, measured, strict=True):
        explored = rest[0] if rest else None
        run_gamma = gamma if gamma is not None else run_gamma
        run_gamma = DEFAULT_GAMMA if run_gamma is None else float(run_gamma)
        expected = probe.expected(run_gamma, q.shape[1])
        ok = within(probe, q, expected, run_gamma)
        error = np.where(ok, 0.0, np.abs(q - expected))
        if not np.isfinite(q).all():
            ok, error = np.zeros_like(ok), np.where(np.isfinite(q), error, np.inf)
        worst = np.unravel_index(int(np.argmax(error if not ok.all() else np.abs(q - expected))), q.shape)
        results.append(
            ProbeResult(
                probe=probe.name,
                seed=int(seed),
                gamma=run_gamma,
                steps=steps,
                states=probe.labels,
                measured=tuple(tuple(float(v) for v in row) for row in q),
                expected=tuple(tuple(float(v) for v in row) for row in expected),
                passed=bool(ok.all()),
                worst_state=probe.labels[worst[0]],
                worst_action=int(worst[1]),
                worst_measured=float(q[worst]),
                worst_expected=float(expected[worst]),
                discount=measured_discount(probe, q),
                seconds=seconds,
                late_epsilon=None if explored is None else float(explored),
            )
        )
        if results[-1].explores_late:
            results[-1] = replace(results[-1], passed=False)
    return results


@dataclass(frozen=True)
class BatteryResult:
    """Every probe's per-seed results and verdict, and the discount the agent applied."""

    agent: str
    shape: ProbeShape
    seeds: tuple[int, ...]
    results: tuple[ProbeResult, ...]
    verdicts: tuple[ProbeVerdict, ...]
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(v.status in ("pass", "not-applicable") for v in self.verdicts)

    def of(self, probe: str) -> list[ProbeResult]:
        return [r for r in self.results if r.probe == probe]

    def discount(self) -> float | None:
        """The discount the agent applied: the median over seeds of the delayed-reward probe's
        (k-1)-th root (the two-step probe's ratio if that one was not run)."""
        for name in DISCOUNT_PROBES:
            values = [r.discount for r in self.of(name) if r.discount is not None]
            if values:
                return float(np.median(values))
        return None


def run_battery(
    agent: Agent,
    shape: ProbeShape = DEFAULT_SHAPE,
    seeds: list[int] | None = None,
    gamma: float | None = None,
    probes: list[str] | None = None,
    budget_scale: float = 1.0,
    on_probe: Callable[[ProbeVerdict, list[ProbeResult]], None] | None = None,
    workers: int = 1,
) -> BatteryResult:
    """Run the probes (all by default) on seeds (0 .. SEEDS-1 by default). A crash of the user's
    code stops the battery with its one-line UserCodeError.

    workers > 1 trains in that many processes (spawned; the agent is pickled, a user function
    by its FILE.py:FUNCTION spec): one task per probe and seed, or per probe for an agent that
    trains its seeds together (the engine). The results are the same as with one worker."""
    seeds = list(range(SEEDS)) if seeds is None else list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} is invalid: give distinct seeds")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid: must be an integer >= 1")
    chosen = PROBES if probes is None else tuple(PROBES_BY_NAME[name] for name in probes)
    started = time.perf_counter()
    runnable = [p for p in chosen if shape.n_actions >= p.min_actions]
    if workers > 1 and len(runnable) * len(seeds) > 1:
        measured = _measure_in_workers(agent, runnable, shape, seeds, budget_scale, workers)
    else:
        measured = None
    results: list[ProbeResult] = []
    verdicts: list[ProbeVerdict] = []
    notes = list(agent.notes)
    for probe in chosen:
        if probe not in runnable:
            verdict = ProbeVerdict(
                probe.name, "not-applicable", 0, 0, f"needs {probe.min_actions} actions; the env has {shape.n_actions}"
            )
            probe_results: list[ProbeResult] = []
        else:
            steps = budget(probe, budget_scale)
            try:
                if measured is None:
                    runs, seconds = train_and_measure(agent, probe.name, shape, steps, seeds)
                    notes += [n for n in agent.notes if n not in notes]
                else:
                    runs, seconds, worker_notes = measured.pop(probe.name)
                    notes += [n for n in worker_notes if n not in notes]
            except UserCodeError as exc:
                raise UserCodeError(f"probe {probe.name}: {exc}") from None
            probe_results = judge(probe, seeds, runs, gamma, steps, seconds)
            verdict = classify(probe.name, probe_results)
        try:
            probe_results = follow_up(agent, probe, shape, probe_results, budget_scale)
        except UserCodeError as exc:
            raise UserCodeError(f"probe {probe.name}: {exc}") from None
        results += probe_results
        verdicts.append(verdict)
        if on_probe is not None:
            on_probe(verdict, probe_results)
    return BatteryResult(
        agent.name, shape, tuple(seeds), tuple(results), tuple(verdicts), time.perf_counter() - started, tuple(notes)
    )


def _worker_task(agent: Agent, probe_name: str, shape: ProbeShape, steps: int, seeds: list[int]):
    import torch

    torch.set_num_threads(1)
    try:
        measured, seconds = train_and_measure(agent, probe_name, shape, steps, seeds)
    except UserCodeError as exc:
        return None, str(exc), list(agent.notes)
    return (measured, seconds), None, list(agent.notes)


def _measure_in_workers(agent: Agent, probes: list[Probe], shape: ProbeShape, seeds, budget_scale, workers: int):
    """Every probe's per-seed Q, trained in worker processes: {probe: (runs, seconds, notes)}."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = [list(seeds)] if getattr(agent, "trains_seeds_together", False) else [[s] for s in seeds]
    tasks = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for probe in probes:
            steps = budget(probe, budget_scale)
            for chunk in chunks:
                tasks[probe.name, tuple(chunk)] = pool.submit(_worker_task, agent, probe.name, shape, steps, chunk)
        measured = {}
        for probe in probes:
            runs, seconds, notes = [], 0.0, []
            for chunk in chunks:
                try:
                    done, error, worker_notes = tasks[probe.name, tuple(chunk)].result()
                except BrokenProcessPool:
                    raise UserCodeError(
                        "a worker process ended abruptly (the agent could not be sent to it, or it crashed); "
                        "run with one worker (--workers 1) to see the error"
                    ) from None
                if error is not None:
                    for future in tasks.values():
                        future.cancel()
                    raise UserCodeError(error)
                runs += done[0]
                seconds += done[1] * len(chunk) / len(seeds)
                notes += [n for n in worker_notes if n not in notes]
            measured[probe.name] = (runs, seconds, notes)
    return measured
