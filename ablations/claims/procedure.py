"""The decision procedure every family of claims goes through: evidence per claim, Holm across
the family, and seeds on demand under a group-sequential design.

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
is tested on synthetic data and run on trained runs by the same code. The claims themselves are
data beside it: the article's (article.py), the literature's and the bug catalogue's.
"""

from __future__ import annotations

import contextlib
import json
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.analysis import stats

ERROR = stats.ERROR

Summaries = dict[str, pd.DataFrame]  # variant name -> per-seed summary (reports.analysis.metrics.per_seed)
Fetch = Callable[[tuple[str, ...], int], Summaries]


@dataclass(frozen=True)
class Evidence:
    """What one claim's test found at one look: the verdict's numbers plus named figures."""

    verdict: stats.Decision
    figures: dict = field(default_factory=dict)


# Where a refutation was measured when its record does not say: the suite's first env.
REFUTED_ON = ("CartPole-v1",)
REFUTATIONS = Path(__file__).with_name("refutations.json")


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


def refutations(key: str) -> tuple[Refutation, ...]:
    """The refutations on record for a claim (or a property test's case, "test:case"), read from
    refutations.json: measured numbers live in data, not in source strings."""
    records = json.loads(REFUTATIONS.read_text(encoding="utf-8"))
    return tuple(
        Refutation(entry["reason"], tuple(entry["profiles"]), tuple(entry["envs"])) for entry in records.get(key, ())
    )


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
