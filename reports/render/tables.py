"""Read an ablation results folder and build the report's tables (pandas, exported as CSV + Parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from reports.analysis import factorial, stats
from reports.analysis.metrics import per_seed, soft_divergence_bound, soft_divergence_rates
from reports.diagnosis.record import Diagnosis
from reports.results import Results


def seed_table(results: Results) -> pd.DataFrame:
    """per_seed metrics of every variant, one row per (variant, seed)."""
    return results.seed_table


def _rate(flags: pd.Series) -> tuple[float, float, float]:
    interval = stats.wilson_interval(int(flags.sum()), len(flags))
    return interval.estimate, interval.low, interval.high


def variant_summary(results: Results) -> pd.DataFrame:
    """One row per variant: returns with 95% bootstrap intervals, rates with Wilson intervals."""
    rows = []
    for variant, seeds in seed_table(results).groupby("variant", sort=True):
        late = seeds["late_return"]
        iqm, mean = stats.bootstrap_ci(late, stats.iqm), stats.bootstrap_ci(late, np.mean)
        row = {
            "variant": variant,
            "seeds": len(seeds),
            "late_return_iqm": iqm.estimate,
            "late_return_iqm_low": iqm.low,
            "late_return_iqm_high": iqm.high,
            "late_return_mean": mean.estimate,
            "late_return_mean_low": mean.low,
            "late_return_mean_high": mean.high,
            "median_peak_max_abs_q": float(seeds["peak_max_abs_q"].median()),
            "median_late_td_target_var": float(seeds["late_td_target_var"].median()),
        }
        for flag in ("success", "soft_diverged", "overshoot", "hard_diverged", "collapsed"):
            if flag in seeds:
                rate, low, high = _rate(seeds[flag])
                row.update({f"{flag}_rate": rate, f"{flag}_low": low, f"{flag}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


LEDGER_DETAILS = (
    "metric",
    "note",
    "look",
    "looks",
    "seeds_used",
    "look_level",
    "conditional_power",
    "error",
    "claim_order",
)
LITERATURE_DETAILS = ("source", "paper", "setting", "claim_key")


def claim_ledger(results: Results, family: str = "claims") -> pd.DataFrame:
    """One row per claim of a family (the article's claims, or "literature"): the claim in plain
    words, metric, effect, interval, raw and Holm-adjusted p, the look that settled it, the
    seeds it used and any futility stop's conditional power, verdict; literature claims also
    their source, the paper's words and setting."""
    claims = results.tests[results.tests["property"] == family].copy()
    details = [json.loads(d) if d else {} for d in claims["details"]]
    extra = LITERATURE_DETAILS if family in ("literature", "bugs") else ()
    for name in LEDGER_DETAILS + extra:
        claims[name] = [d.get(name) for d in details]
    columns = ["claim", "metric", "note", "statistic", "effect_size", "ci_low", "ci_high", "p_value", "p_adjusted"]
    columns += ["look", "looks", "look_level", "conditional_power", "seeds_used", "n", "verdict", "seeds_needed"]
    columns += ["outcome", "error", *extra]
    # The claims' own order (as defined), then any row without one (a crash before recording).
    claims["claim_order"] = pd.to_numeric(claims["claim_order"]).fillna(len(claims) + 1000)
    ordered = claims.sort_values(["claim_order", "node_id"])
    return ordered[columns + ["node_id"]].reset_index(drop=True)


def attribution(results: Results) -> pd.DataFrame:
    """The factorial attribution of the example 1 -> 3 gap: one row per (metric, contrast), with
    estimates, intervals, Shapley shares and the seeds per cell behind them.

    Computed from the runs over every seed all 16 cells hold, so a folder whose cells ran to more
    seeds than the attribution claim's deciding look reports them all; from the claim's own record
    where a cell is missing (a folder of an older or partial session)."""
    columns = ["metric", "kind", "name", "estimate", "ci_low", "ci_high", "share", "share_low", "share_high"]
    columns += ["seeds", "source"]
    present = set(results.runs["variant"].unique())
    if present.issuperset(factorial.ARTICLE_CELLS):
        runs = results.runs[results.runs["variant"].isin(factorial.ARTICLE_CELLS)]
        common = set.intersection(*(set(frame["seed"]) for _, frame in runs.groupby("variant")))
        if len(common) >= 2:
            runs = runs[runs["seed"].isin(common)]
            # per_seed on the common seeds alone, as the claims summarise the seeds they fetch.
            summaries = {
                variant: per_seed(frame, results.profile, results.gamma(variant))
                for variant, frame in runs.groupby("variant")
            }
            tables = factorial.article_attribution(summaries)
            rows = [
                {"metric": m, **row, "seeds": len(common), "source": "runs"}
                for m, table in tables.items()
                for row in table
            ]
            return pd.DataFrame(rows, columns=columns)
    rows = []
    claim = results.tests[results.tests["test"].str.startswith("test_claim[failure-is-missing-stabilisers")]
    for row in claim.itertuples():
        n = getattr(row, "n", None)  # the claim's seeds per cell (absent from older folders)
        seeds = None if n is None or pd.isna(n) else int(n)
        for metric, table in (json.loads(row.details) if row.details else {}).get("attribution", {}).items():
            rows += [{"metric": metric, **entry, "seeds": seeds, "source": "claim"} for entry in table]
    return pd.DataFrame(rows, columns=columns)


def test_table(results: Results) -> pd.DataFrame:
    columns = ["node_id", "property", "variants", "verdict", "statistic", "effect_size", "ci_low", "ci_high"]
    columns += ["p_value", "n", "seeds_needed", "outcome", "duration_s"]
    return results.tests[[c for c in columns if c in results.tests]].sort_values("node_id").reset_index(drop=True)


def soft_divergence_sensitivity(results: Results) -> pd.DataFrame:
    """Share of seeds soft-diverged at every margin over the return bound, per variant and
    definition (sustained over the late checkpoints, the verdicts' definition; or the peak
    ever crossing it): how a soft-divergence verdict moves with the threshold."""
    rows = []
    for variant, frame in results.runs.groupby("variant", sort=True):
        gamma = results.gamma(variant)
        rates = soft_divergence_rates(frame, results.profile, gamma)
        sustained, peak = {"variant": variant, "definition": "sustained"}, {"variant": variant, "definition": "peak"}
        for margin, (held, crossed, total) in rates.items():
            column = f"{soft_divergence_bound(results.profile, gamma, margin, frame):g}"
            sustained[column], peak[column] = held / total, crossed / total
        rows += [sustained, peak]
    return pd.DataFrame(rows)


def improvement_matrix(results: Results) -> pd.DataFrame:
    """P(late return of row variant > column variant) over seeds, for every pair."""
    seeds = seed_table(results)
    groups = {v: g["late_return"].to_numpy() for v, g in seeds.groupby("variant", sort=True)}
    names = list(groups)
    matrix = [[stats.probability_of_improvement(groups[a], groups[b]) for b in names] for a in names]
    return pd.DataFrame(matrix, index=pd.Index(names, name="variant"), columns=names)


def success_thresholds(results: Results) -> pd.DataFrame:
    """Claim (d) at every success threshold shown (the verdict uses the primary one): success
    rates of example 3 and example 2, their difference with its interval, and Fisher's p."""
    rows = []
    for _test, details in results.details("test_claim[target-helps-convergence"):
        primary = details.get("success_threshold")
        for threshold, figures in (details.get("by_success_threshold") or {}).items():
            low, high = figures.get("ci") or (None, None)
            rows.append(
                {
                    "threshold": float(threshold),
                    "primary": primary is not None and float(threshold) == float(primary),
                    "article_target_rate": figures.get("article-target"),
                    "article_replay_rate": figures.get("article-replay"),
                    "rate_difference": figures.get("rate_difference"),
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": figures.get("p_value"),
                }
            )
    columns = ["threshold", "primary", "article_target_rate", "article_replay_rate", "rate_difference"]
    return pd.DataFrame(rows, columns=columns + ["ci_low", "ci_high", "p_value"])


def recognition(results: Results) -> pd.DataFrame:
    """The bug-recognition check's table: per label, seeds, recognised share, chance and p."""
    rows = []
    for _test, details in results.details("test_signatures_recognise_the_bugs"):
        rows += details.get("recognition") or []
    return pd.DataFrame(rows, columns=["label", "seeds", "recognised", "chance", "p_value"])


VERDICT_FIELDS = ("verdict", "effect_size", "ci_low", "ci_high", "p_value", "p_adjusted")


def verdict_fields(row) -> dict:
    """A test row's verdict, effect, interval and raw and adjusted p (a tests.parquet itertuple)."""
    return {name: getattr(row, name) for name in VERDICT_FIELDS}


def diagnosis(results: Results) -> pd.DataFrame:
    """The rungs of a diagnosis ranked by their effect on late return (reports.diagnosis.record),
    as a table: P(change > base) first, then the change in late-return IQM; crashed rungs last."""
    record = Diagnosis.from_results(results)
    return Diagnosis.empty_table() if record is None else record.table()


def export_tables(results: Results, directory: str | Path) -> dict[str, pd.DataFrame]:
    """Write every table as CSV and Parquet (each via a temp file renamed into place)."""
    tables = {
        "variant_summary": variant_summary(results),
        "claim_ledger": claim_ledger(results),
        "literature": claim_ledger(results, "literature"),
        "bugs": claim_ledger(results, "bugs"),
        "recognition": recognition(results),
        "tests": test_table(results),
        "seeds": seed_table(results),
        "improvement_matrix": improvement_matrix(results).reset_index(),
        "soft_divergence_sensitivity": soft_divergence_sensitivity(results),
        "attribution": attribution(results),
        "success_thresholds": success_thresholds(results),
        "diagnosis": diagnosis(results),
    }
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        for suffix, write in ((".csv", lambda f, p: f.to_csv(p, index=False)), (".parquet", _to_parquet)):
            tmp = out / f".{name}{suffix}.tmp"
            write(frame, tmp)
            tmp.replace(out / f"{name}{suffix}")
    return tables


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)
