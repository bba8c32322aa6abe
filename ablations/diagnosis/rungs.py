"""A user's DQN diagnosed: what became of each of its seeds, and which one-knob change helps.

The rungs of the ladder (agents/diagnosis/ladder.py) are claims of one family, "this change improves the
late return over the base", settled by the same procedure as the article's claims
(ablations/claims/article.py: Holm over both directions of every rung, seeds on demand). A refuted rung
is a change that makes the DQN worse; that is a finding, reported as such.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablations.claims.procedure import Claim, Evidence, Summaries
from agents.catalogue.bugs import CATALOGUE
from agents.config import AgentConfig
from agents.diagnosis.lint import lint
from reports.analysis import stats
from reports.analysis.metrics import SEED_OUTCOMES, seed_outcomes, seed_summary
from reports.diagnosis.record import Base, LintLine, SeedFigures, SymptomLine, rung_evidence
from reports.diagnosis.symptoms import symptoms

DIAGNOSIS_MODULE = "test_diagnosis.py"
RUNG_METRIC = "late return: the change vs your DQN (P(change > base), one-sided Mann-Whitney U)"


def trains(converged: int, seeds: int) -> bool:
    """ "Your DQN trains": a majority of its seeds (more than half) converge, i.e. end with a late
    return at or above the env's success threshold. Fixed before any diagnosis was run."""
    return 2 * converged > seeds


def outcome_counts(summary, success_threshold: float) -> dict[str, int]:
    """How many seeds of a per-seed summary ended in each of SEED_OUTCOMES."""
    counts = seed_outcomes(summary, success_threshold).value_counts()
    return {outcome: int(counts.get(outcome, 0)) for outcome in SEED_OUTCOMES}


def _figures(summary, success_threshold: float) -> SeedFigures:
    values = summary["late_return"].to_numpy(dtype=float)
    return SeedFigures(
        late_return_iqm=stats.iqm(values),
        late_return_median=float(np.median(values)),
        learned=int((values >= success_threshold).sum()),
        seeds=int(values.size),
        outcomes=outcome_counts(summary, success_threshold),
    )


def _rung_improves(rung: str, base: str, key: str, description: str):
    def evaluate(s: Summaries, alpha: float) -> Evidence:
        threshold = float(s[base].attrs["success_threshold"])
        verdict = stats.compare_greater(s[rung]["late_return"], s[base]["late_return"], alpha)
        figures = (_figures(s[base], threshold), _figures(s[rung], threshold))
        return Evidence(verdict, rung_evidence(key, description, base, rung, threshold, *figures))

    return evaluate


def rung_claims(settings) -> list[Claim]:
    """One claim per rung of the session's ladder (none outside a diagnosis)."""
    if not settings.diagnosis:
        return []
    base, *rungs = settings.session_variants
    claims = []
    for variant in rungs:
        key = variant.name.removeprefix(f"{base.name}+")
        claims.append(
            Claim(
                variant.name,
                f"{variant.summary} improves the late return of {base.name}.",
                RUNG_METRIC,
                (variant.name, base.name),
                _rung_improves(variant.name, base.name, key, variant.summary),
            )
        )
    return claims


# A bug "matches well" when the base sits this many spreads from the ladder's runs, on average
# over the bug's signature features, in the declared directions. Fixed before any diagnosis.
MATCH_THRESHOLD = 1.0


def base_record(settings, run, rungs: list) -> Base:
    """The base's part of the diagnosis record: what became of each seed of the user's DQN (run),
    the config's lint as the user wrote it (before the session sized it), the runs' symptoms and
    the bug catalogue read against the ladder's runs (rungs)."""
    summary = seed_summary(run)
    threshold = run.env_profile.success_threshold
    counts = outcome_counts(summary, threshold)
    interval = stats.wilson_interval(counts["converged"], len(summary))
    return Base(
        variant=run.variant,
        config_file=str(settings.config_file.path),
        trains=trains(counts["converged"], len(summary)),
        success_threshold=threshold,
        success_source=run.env_profile.success_source,
        outcomes=counts,
        late_returns=tuple(summary["late_return"].tolist()),
        late_return_iqm=stats.iqm(summary["late_return"]),
        share_converged=interval.estimate,
        share_low=interval.low,
        share_high=interval.high,
        lint=tuple(LintLine.from_dict(finding.to_dict()) for finding in lint(settings.config_file.config)),
        symptoms=tuple(
            SymptomLine.from_dict(symptom.to_dict())
            for symptom in symptoms(run.checkpoints, run.env_profile, run.config.gamma)
        ),
        skipped_rungs=tuple(settings.skipped_rungs),
        bugs_in_config=tuple(bugs_in_config(run.config)),
        bug_matches=tuple(bug_matches(summary, [seed_summary(r) for r in rungs])),
    )


def bugs_in_config(config: AgentConfig) -> list[str]:
    """The catalogue's bugs that the config itself switches on (visible without any run)."""
    return [bug.name for bug in CATALOGUE if all(getattr(config, f) == v for f, v in bug.changes)]


def bug_matches(base, rungs: list) -> list[dict]:
    """Rank the catalogue by how well the base's diagnostics show each bug's signature. The
    ladder's runs on the same env are the reference population: each feature is standardised by
    their median and spread (MAD), and a bug scores the mean over its signature of direction x
    (base's median - reference) / spread. No twin is known for a user's DQN, so this reads "the
    base differs from its neighbours the way bug X differs from its twin", nothing stronger."""
    reference = pd.concat(rungs, ignore_index=True) if rungs else None
    if reference is None:
        return []
    matches = []
    for bug in CATALOGUE:
        scores = []
        for feature, direction in bug.signature:
            if feature not in base or feature not in reference:
                continue
            values = reference[feature].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            own = base[feature].to_numpy(dtype=float)
            own = own[np.isfinite(own)]
            if values.size < 3 or own.size == 0:  # a base that never updated has no loss features
                continue
            mine = float(np.median(own))
            centre = float(np.median(values))
            spread = 1.4826 * float(np.median(np.abs(values - centre)))
            if spread > 0:
                scores.append(direction * (mine - centre) / spread)
        if scores:
            score = float(np.mean(scores))
            matches.append({"bug": bug.name, "score": score, "matches": score >= MATCH_THRESHOLD})
    return sorted(matches, key=lambda m: -m["score"])
