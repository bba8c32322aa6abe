"""The article's claims as one family of hypotheses: evidence per claim, Holm across the family,
and seeds on demand under a group-sequential design.

Each claim names the variants it reads and a function from their per-seed summaries to its
evidence (a stats.Decision carrying both one-sided p-values). `evaluate_family` is the whole
decision procedure: at each look (seed count) the claims still open are tested together, with
Holm's step-down adjustment over both directions of every open claim at the look's share of
alpha (O'Brien-Fleming spending); a claim is settled when it is supported or refuted, when it
is futile (from half the maximum seeds on, conditional power under the current trend below
10% in both directions: a non-binding stop that never adds a false verdict), or at the last
look. By the union bound over looks and Holm within each look, the chance of any false verdict,
support or refutation, over the whole family and all looks stays at or below alpha. A claim
whose evidence raised an exception is settled as an error at once and counts with p = 1 in
every look (as does a futile one in the looks after its stop), so a crash is never read as a
verdict and never helps another claim.

Data reach this module through a `fetch(variant_names, seed_count)` callable, so the procedure
is tested on synthetic data and run on trained runs by the same code.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agents.catalogue.presets import FACTORIAL_KNOBS, factorial_variant
from reports.analysis import factorial, stats

ERROR = stats.ERROR
# A "consistent" failure: the agent learns in fewer than 20% of seeds. Fixed before any result.
CONSISTENT_FAILURE_RATE = 0.2

Summaries = dict[str, pd.DataFrame]  # variant name -> per-seed summary (reports.analysis.metrics.per_seed)
Fetch = Callable[[tuple[str, ...], int], Summaries]


@dataclass(frozen=True)
class Evidence:
    """What one claim's test found at one look: the verdict's numbers plus named figures."""

    verdict: stats.Decision
    figures: dict = field(default_factory=dict)


# The env of every refutation on record before Acrobot-v1 joined (2026-12-02).
REFUTED_ON = ("CartPole-v1",)


@dataclass(frozen=True)
class Refutation:
    """A refutation on record: the measured numbers, and the profiles and envs they were
    measured at. There the claim's test is a strict xfail that accepts only the refutation
    itself; elsewhere the claim is open and its test says what it finds."""

    reason: str
    profiles: tuple[str, ...] = ("standard", "paper")
    envs: tuple[str, ...] = REFUTED_ON

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("Refutation.reason: empty; give the measured numbers")
        for name in ("profiles", "envs"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"Refutation.{name}: {value!r} is not a non-empty tuple of names")


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    metric: str
    variants: tuple[str, ...]
    # (summaries, alpha for seeds-needed) -> Evidence
    evaluate: Callable[[Summaries, float], Evidence]
    # Where the comparison changes several settings at once, say so in the ledger.
    note: str = ""
    # Refutations on record, each tied to the profiles and envs it was measured at.
    refuted: tuple[Refutation, ...] = ()
    # A claim from the literature: its citation and the paper's own statement and figure.
    source: str = ""
    paper: str = ""
    setting: str = ""  # the paper's scale and environment, to read a disagreement against


@dataclass(frozen=True)
class Settled:
    """A claim's final verdict and how it was reached."""

    claim: Claim
    verdict: str  # supported, refuted, inconclusive or error
    evidence: Evidence | None
    p_adjusted: float | None  # Holm-adjusted p of the claimed direction at the deciding look
    p_opposite_adjusted: float | None
    level: float  # the alpha share of the deciding look
    look: int  # 1-based
    looks: int
    seeds: int
    error: str | None = None
    order: int | None = None  # the claim's place in its family, for the ledger's order
    # Set when the claim stopped for futility before the last look: its conditional power
    # under the current trend (the larger of the two directions), below stats.FUTILITY_POWER.
    conditional_power: float | None = None

    def as_record(self) -> dict:
        """Plain fields for the results (tests.parquet row and details)."""
        verdict = self.evidence.verdict.as_dict() if self.evidence else {}
        return {
            **verdict,
            "verdict": self.verdict,
            "claim": self.claim.text,
            "claim_key": self.claim.key,
            "claim_order": self.order,
            "metric": self.claim.metric,
            "note": self.claim.note,
            "source": self.claim.source,
            "paper": self.claim.paper,
            "setting": self.claim.setting,
            "p_adjusted": self.p_adjusted,
            "p_opposite_adjusted": self.p_opposite_adjusted,
            "look_level": self.level,
            "look": self.look,
            "looks": self.looks,
            "seeds_used": self.seeds,
            "error": self.error,
            "conditional_power": self.conditional_power,
            **(self.evidence.figures if self.evidence else {}),
        }


# --- the claims' evidence -------------------------------------------------------------------


def _column(summary: pd.DataFrame, column: str) -> np.ndarray:
    """A per-seed column without the seeds where it is undefined (e.g. a hard-diverged seed)."""
    values = summary[column].to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _iqm(summary: pd.DataFrame, column: str = "late_return") -> float | None:
    values = _column(summary, column)
    return stats.iqm(values) if values.size else None


def _success_threshold(summaries: Summaries) -> float:
    first = next(iter(summaries.values()))
    if "success" not in first:
        raise LookupError("no success threshold is known for this env: give [env] success_threshold")
    return float(first.attrs["success_threshold"])


def _naive_fails(s: Summaries, alpha: float) -> Evidence:
    naive = s["article-naive"]
    successes = int(naive["success"].sum())
    verdict = stats.rate_below(successes, len(naive), CONSISTENT_FAILURE_RATE, alpha)
    return Evidence(verdict, {"late_return_iqm": _iqm(naive), "success_bound": CONSISTENT_FAILURE_RATE})


def _article_replay_vs_naive(s: Summaries, alpha: float) -> Evidence:
    replay, naive = s["article-replay"], s["article-naive"]
    verdict = stats.compare_greater(replay["late_return"], naive["late_return"], alpha)
    return Evidence(verdict, {"iqm": {"article-replay": _iqm(replay), "article-naive": _iqm(naive)}})


ALL_CELLS = factorial.ARTICLE_CELLS


def knob_strata(knob: int, fixed: dict[int, bool] | None = None) -> list[tuple[str, str]]:
    """(cell with the knob on, cell with it off) for every level of the other knobs, holding
    the knobs in `fixed` at the given level."""
    fixed = fixed or {}
    pairs = []
    for levels in factorial.cells(len(FACTORIAL_KNOBS)):
        if levels[knob] or any(levels[i] != on for i, on in fixed.items()):
            continue
        on = tuple(True if i == knob else v for i, v in enumerate(levels))
        pairs.append((factorial_variant(*on), factorial_variant(*levels)))
    return pairs


def stratified_effect(s: Summaries, pairs: list[tuple[str, str]], column: str, greater: bool, alpha: float):
    """Claim 'column is larger (greater=True) or smaller with the knob on', pooled over strata
    that hold every other knob fixed: mean P(improvement) over strata, stratified permutation
    p-values in both directions, and a stratified bootstrap interval."""
    strata = []
    for on, off in pairs:
        x, y = _column(s[on], column), _column(s[off], column)
        strata.append((x, y) if greater else (y, x))
    p_claimed = stats.stratified_rank_greater(strata)
    p_opposite = stats.stratified_rank_greater([(y, x) for x, y in strata])
    estimate = float(np.mean([stats.probability_of_improvement(x, y) for x, y in strata]))
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    draws = [
        np.mean([stats.probability_of_improvement(rng.choice(x, x.size), rng.choice(y, y.size)) for x, y in strata])
        for _ in range(stats.BOOTSTRAP_RESAMPLES // 4)
    ]
    low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    verdict = stats.decide(p_claimed, p_opposite, alpha)
    needed = stats.seeds_needed_for_improvement(estimate, alpha) if verdict == stats.INCONCLUSIVE else None
    n = int(min(min(x.size, y.size) for x, y in strata))
    per_stratum = {f"{on} vs {off}": stats.probability_of_improvement(*st) for (on, off), st in zip(pairs, strata)}
    return (
        stats.Decision(
            verdict, "mean P(improvement) over strata", estimate, low, high, p_claimed, n, needed, p_opposite
        ),
        per_stratum,
    )


MASK, REPLAY, TARGET = (FACTORIAL_KNOBS.index(k) for k in ("terminal_masking", "replay", "target_network"))


def _replay_improves(mask: bool):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        pairs = knob_strata(REPLAY, {MASK: mask})
        verdict, per_stratum = stratified_effect(s, pairs, "late_return", True, alpha)
        return Evidence(verdict, {"per_stratum_p_improvement": per_stratum})

    return evaluate


def _target_lowers(column: str):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        pairs = knob_strata(TARGET)
        verdict, per_stratum = stratified_effect(s, pairs, column, False, alpha)
        medians = {name: float(np.median(_column(s[name], column))) for pair in pairs for name in pair}
        return Evidence(verdict, {"per_stratum_p_lower": per_stratum, "median_per_cell": medians})

    return evaluate


def _target_helps_convergence(s: Summaries, alpha: float) -> Evidence:
    target, replay = s["article-target"], s["article-replay"]
    verdict = stats.compare_rates_greater(
        int(target["success"].sum()), len(target), int(replay["success"].sum()), len(replay), alpha
    )
    by_threshold = {}
    for shown in target.attrs.get("success_thresholds_shown", ()):
        column = f"success_{shown:g}"
        at = stats.compare_rates_greater(
            int(target[column].sum()), len(target), int(replay[column].sum()), len(replay), alpha
        )
        by_threshold[f"{shown:g}"] = {
            "article-target": float(target[column].mean()),
            "article-replay": float(replay[column].mean()),
            "rate_difference": at.effect_size,
            "ci": [at.ci_low, at.ci_high],
            "p_value": at.p_value,
            "p_opposite": at.p_opposite,
        }
    return Evidence(
        verdict,
        {
            "success_threshold": _success_threshold(s),
            "success_rates": {
                "article-target": float(target["success"].mean()),
                "article-replay": float(replay["success"].mean()),
            },
            "by_success_threshold": by_threshold,
        },
    )


def contrast_evidence(s: Summaries, column: str, weights: np.ndarray, statistic: str, alpha: float):
    """Claim 'the linear contrast weights . (cell means of column) over the 16 cells is > 0':
    its estimate, stratified bootstrap interval and p-values both ways (a Verdict)."""
    k = len(FACTORIAL_KNOBS)
    values = {levels: s[factorial_variant(*levels)][column].to_numpy(dtype=float) for levels in factorial.cells(k)}
    means = np.array([values[c].mean() for c in factorial.cells(k)])
    draws = factorial.cell_mean_draws(values, k, stats.BOOTSTRAP_RESAMPLES, stats.BOOTSTRAP_SEED) @ weights
    low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
    p_claimed = factorial.bootstrap_p_greater(values, k, weights)
    p_opposite = factorial.bootstrap_p_greater(values, k, -weights)
    n = min(v.size for v in values.values())
    # The percentile bootstrap is too optimistic with very few seeds per cell.
    if n < stats.MIN_BOOTSTRAP_SEEDS:
        p_claimed = p_opposite = 1.0
    verdict = stats.decide(p_claimed, p_opposite, alpha)
    return stats.Decision(verdict, statistic, float(weights @ means), low, high, p_claimed, int(n), None, p_opposite)


def _failure_is_missing_stabilisers(s: Summaries, alpha: float) -> Evidence:
    """D = phi(replay) + phi(target) - phi(mask) on late return: the stabilisers' Shapley share
    of the example 1 -> 3 gap against the terminal mask's."""
    k = len(FACTORIAL_KNOBS)
    weights = (
        factorial.shapley_weights(k, REPLAY) + factorial.shapley_weights(k, TARGET) - factorial.shapley_weights(k, MASK)
    )
    verdict = contrast_evidence(s, "late_return", weights, "phi(replay) + phi(target) - phi(mask)", alpha)
    return Evidence(verdict, {"attribution": factorial.article_attribution(s), "knobs": list(FACTORIAL_KNOBS)})


CLAIMS: dict[str, Claim] = {
    c.key: c
    for c in (
        Claim(
            "naive-fails",
            "The naive agent (example 1) consistently fails to learn.",
            "share of seeds whose late return reaches the success threshold (< 20%)",
            ("article-naive",),
            _naive_fails,
        ),
        Claim(
            "replay-improves-masked",
            "Experience replay improves on the naive agent (terminal states masked).",
            "late return: replay on vs off, other knobs held fixed (4 strata, masking on)",
            ALL_CELLS,
            _replay_improves(True),
        ),
        Claim(
            "replay-improves-unmasked",
            "Experience replay improves on the naive agent (terminal states unmasked, as in example 1).",
            "late return: replay on vs off, other knobs held fixed (4 strata, masking off)",
            ALL_CELLS,
            _replay_improves(False),
        ),
        Claim(
            "article-example-2-beats-example-1",
            "Example 2 beats example 1 (the article's own comparison).",
            "late return: article-replay vs article-naive",
            ("article-replay", "article-naive"),
            _article_replay_vs_naive,
            note="changes five settings at once (replay, batch size, learning start, terminal masking, "
            "time-limit masking): it cannot credit any one of them",
        ),
        Claim(
            "target-steadies-targets",
            "The target network stops the TD target from moving with every update (the moving target).",
            "relative TD-target drift per update (RMS change / RMS size), target on vs off, 8 strata",
            ALL_CELLS,
            _target_lowers("late_target_drift"),
        ),
        Claim(
            "target-lowers-td-error-variance",
            "The target network reduces the variance of the TD error.",
            "relative TD-error variance Var(delta) / mean(y^2), target on vs off, 8 strata",
            ALL_CELLS,
            _target_lowers("late_td_error_var_relative"),
            refuted=(
                Refutation(
                    "Refuted on Acrobot-v1 at the standard profile (20 seeds x 100k steps per cell, 2026-12-02): "
                    "mean P(lower relative TD-error variance with the target network) over the 8 strata = 0.39 "
                    "[0.35, 0.44], Holm-adjusted p of the opposite direction 0.006. It is lower with the target "
                    "network only where replay and terminal masking are both on (P = 0.94 and 0.95), higher in "
                    "all seeds of three strata (P = 0). On CartPole-v1 the claim is supported (0.80 [0.76, 0.84]).",
                    profiles=("standard",),  # measured there only
                    envs=("Acrobot-v1",),
                ),
            ),
        ),
        Claim(
            "target-helps-convergence",
            "The target network makes convergence more probable than replay alone.",
            "share of seeds whose late return reaches the success threshold (example 3 vs example 2)",
            ("article-target", "article-replay"),
            _target_helps_convergence,
        ),
        Claim(
            "failure-is-missing-stabilisers",
            "Example 1 fails for lack of replay (and a target network), not because of its unmasked terminal states.",
            "Shapley shares of the example 1 -> 3 late-return gap: replay + target minus terminal masking",
            ALL_CELLS,
            _failure_is_missing_stabilisers,
            refuted=(
                Refutation(
                    "Refuted at the standard profile (20 seeds x 50k steps per cell, 2026-11-25): of the example "
                    "1 -> 3 late-return gap of 409 [380, 435], terminal masking carries a Shapley share of 85% "
                    "[80%, 90%], replay 19% [16%, 21%], the target network -1% [-5%, 2%] and old-gym done -2% "
                    "[-6%, 1%]; phi(replay) + phi(target) - phi(mask) = -274 [-298, -249]. Example 1 fails "
                    "because of its unmasked terminal states. On Acrobot-v1 the claim is supported (+246 [230, 262]).",
                ),
            ),
        ),
    )
}


# --- the decision procedure -------------------------------------------------------------------


def _evidence_or_error(claim: Claim, fetch: Fetch, seeds: int, alpha: float) -> tuple[Evidence | None, str | None]:
    try:
        return claim.evaluate(fetch(claim.variants, seeds), alpha), None
    except Exception as exc:  # a crash is recorded as an error, never as a verdict
        return None, "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _conditional_power(verdict: stats.Decision, fraction: float, final_level: float) -> float:
    """The better of the two directions' conditional power (a one-sided claim has no opposite).
    A p-value that could not be computed (NaN) says nothing about futility: the claim goes on."""
    p_opposite = verdict.p_opposite if verdict.p_opposite is not None else 1.0
    if math.isnan(verdict.p_value) or math.isnan(p_opposite):
        return 1.0
    return max(stats.conditional_power(p, fraction, final_level) for p in (verdict.p_value, p_opposite))


def evaluate_family(
    claims: list[Claim],
    fetch: Fetch,
    stages: list[int],
    alpha: float = stats.ALPHA,
    on_look: Callable[[int, int, list[Claim]], None] | None = None,
    futility: bool = True,
) -> dict[str, Settled]:
    """Settle every claim: Holm over both directions of the open claims at each look's
    O'Brien-Fleming level; more seeds (the next look) only for claims still inconclusive and,
    with `futility`, not futile (non-binding: see stats.FUTILITY_POWER). on_look(look, seeds,
    open claims) is told of each look before its seeds are fetched."""
    levels = stats.stage_levels(stages, alpha)
    # The most lenient bar any claim can face at the last look: alone in the family there,
    # its better direction's p is Holm-adjusted by 2. Judging futility against it keeps every
    # claim that could still be settled.
    futility_level = levels[-1] / 2
    order = {c.key: i for i, c in enumerate(claims)}
    settled: dict[str, Settled] = {}
    family = len(claims)
    for look, (seeds, level) in enumerate(zip(stages, levels), start=1):
        open_claims = [c for c in claims if c.key not in settled]
        if not open_claims:
            break
        if on_look is not None:
            on_look(look, seeds, open_claims)
        fraction = seeds / stages[-1]  # information fraction of this look
        # One fetch of every open claim's variants first, so a look's new seed blocks train as
        # large variant families shared among the workers; claim by claim, a one-variant claim
        # would leave all workers but one waiting. A failure here is raised again, and recorded,
        # by each claim that needs the failed variant.
        with contextlib.suppress(Exception):
            fetch(tuple(dict.fromkeys(name for c in open_claims for name in c.variants)), seeds)
        # Seeds needed are quoted at the strictest Holm step of the last look.
        needed_alpha = levels[-1] / (2 * family)
        found = {c.key: _evidence_or_error(c, fetch, seeds, needed_alpha) for c in open_claims}
        p_values = []
        for c in open_claims:
            evidence, _ = found[c.key]
            v = evidence.verdict if evidence else None
            p_values += [v.p_value if v else 1.0, v.p_opposite if v and v.p_opposite is not None else 1.0]
        # Claims supported or refuted at earlier looks are out of this look's family: their error
        # was spent there. Claims stopped without a verdict (futile or crashed) keep their place
        # with p = 1: dropping them would loosen the bar for the others after seeing the data.
        held = sum(s.verdict in (stats.INCONCLUSIVE, ERROR) for s in settled.values())
        adjusted = stats.holm(p_values + [1.0] * (2 * held))
        for i, c in enumerate(open_claims):
            evidence, error = found[c.key]
            p_claim, p_opp = float(adjusted[2 * i]), float(adjusted[2 * i + 1])
            common = dict(
                claim=c, evidence=evidence, level=level, look=look, looks=len(stages), seeds=seeds, order=order[c.key]
            )
            if error is not None:
                settled[c.key] = Settled(
                    verdict=ERROR, p_adjusted=None, p_opposite_adjusted=None, error=error, **common
                )
                continue
            if p_claim < level:
                verdict = stats.SUPPORTED
            elif p_opp < level:
                verdict = stats.REFUTED
            elif look == len(stages):
                verdict = stats.INCONCLUSIVE
            elif not futility or fraction < stats.FUTILITY_FROM:
                continue
            else:
                common["conditional_power"] = _conditional_power(evidence.verdict, fraction, futility_level)
                if common["conditional_power"] >= stats.FUTILITY_POWER:
                    continue
                verdict = stats.INCONCLUSIVE
            settled[c.key] = Settled(verdict=verdict, p_adjusted=p_claim, p_opposite_adjusted=p_opp, **common)
    return settled
