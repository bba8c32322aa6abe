"""The article's claims across environments: one results folder per env, one table and heatmap.

Each folder is a whole session on one env (`pytest ablations --ablation-env ...`), so each
env's claims were settled as their own family; the table puts the verdicts side by side and
does not pool evidence across envs.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from reports.analysis.stats import Verdict
from reports.render.html import TEMPLATES, _interval, _num, _p, share_cells, write_text_atomically  # noqa: E402
from reports.render.tables import attribution, verdict_fields  # noqa: E402
from reports.results import ReportError, Results, load_results

COLUMNS = ["claim_key", "claim", "env_id", "profile", "verdict", "statistic", "effect_size", "ci_low", "ci_high"]
COLUMNS += ["p_value", "p_adjusted", "seeds_used"]
# The heatmap's colour: which way the verdict went (the effect's own scale differs by claim).
VERDICT_SIGN = {Verdict.SUPPORTED: 1.0, Verdict.INCONCLUSIVE: 0.0, Verdict.REFUTED: -1.0}


def claims_by_env(results: list[Results]) -> pd.DataFrame:
    """One row per (claim, env): the verdict, its statistic and effect with interval, the
    Holm-adjusted p and the seeds it used, as each env's session recorded them."""
    rows = []
    envs = [r.env_id for r in results]
    if len(set(envs)) != len(envs):
        raise ReportError(f"two results folders are on the same env ({', '.join(envs)}): give one per env")
    for result in results:
        claims = result.tests[result.tests["property"] == "claims"]
        for row in claims.itertuples():
            details = json.loads(row.details) if row.details else {}
            rows.append(
                {
                    "claim_key": details.get("claim_key") or row.test,
                    "claim": row.claim,
                    "env_id": result.env_id,
                    "profile": result.meta.get("profile"),
                    "statistic": row.statistic,
                    **verdict_fields(row),
                    "seeds_used": details.get("seeds_used"),
                    "_order": details.get("claim_order"),
                }
            )
    frame = pd.DataFrame(rows, columns=COLUMNS + ["_order"])
    frame["_order"] = pd.to_numeric(frame["_order"])
    return frame.sort_values(["_order", "claim_key", "env_id"]).drop(columns="_order").reset_index(drop=True)


def env_reach(result: Results) -> dict:
    """How far the env let any variant get: of all runs (variant x seed), how many reach the
    success threshold at their best checkpoint and in their late return. Where none ever does,
    no variant found what the task rewards, so its claims never put a stabiliser to the test."""
    seeds = result.seed_table
    threshold = result.env_profile.success_threshold
    reach = {"threshold": threshold, "runs": len(seeds), "best": None, "late": None}
    if threshold is not None:
        reach["best"] = int((seeds["best_return"] >= threshold).sum())
        reach["late"] = int((seeds["late_return"] >= threshold).sum())
    return reach


def attribution_by_env(results: list[Results]) -> pd.DataFrame:
    """Each env's Shapley values of the example 1 -> 3 late-return gap (and the gap itself),
    over every seed all 16 cells ran there; envs without the 16 cells are left out."""
    parts = []
    for result in results:
        table = attribution(result)
        rows = table[(table["metric"] == "late_return") & table["kind"].isin(["shapley", "gap"])].copy()
        rows.insert(0, "env_id", result.env_id)
        parts.append(rows)
    columns = ["env_id", "kind", "name", "estimate", "ci_low", "ci_high", "share", "share_low", "share_high", "seeds"]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return frame[columns].reset_index(drop=True)


def heatmap(frame: pd.DataFrame, path: Path) -> Path:
    """Claims x envs: colour by verdict (supported, inconclusive, refuted), the effect written in."""
    keys = list(dict.fromkeys(frame["claim_key"]))
    envs = list(dict.fromkeys(frame["env_id"]))
    sign = frame.pivot(index="claim_key", columns="env_id", values="verdict").reindex(index=keys, columns=envs)
    effect = frame.pivot(index="claim_key", columns="env_id", values="effect_size").reindex(index=keys, columns=envs)
    colour = sign.apply(lambda column: column.map(VERDICT_SIGN)).astype(float)
    labels = np.vectorize(lambda v, e: "error" if v == Verdict.ERROR else ("" if pd.isna(e) else f"{e:.2g}\n{v}"))(
        sign.to_numpy(dtype=object), effect.to_numpy(dtype=float)
    )
    fig, ax = plt.subplots(figsize=(2.2 + 2.2 * len(envs), 0.9 + 0.75 * len(keys)))
    sns.heatmap(colour, vmin=-1, vmax=1, cmap="RdYlGn", annot=labels, fmt="", cbar=False, linewidths=1, ax=ax)
    ax.set(xlabel="", ylabel="")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_across_report(directories: list[str | Path], output: str | Path) -> Path:
    """Load each env's results folder and write the claims x environments page."""
    results = [load_results(d) for d in directories]
    frame = claims_by_env(results)
    target = Path(output)
    with tempfile.TemporaryDirectory() as work:
        png = heatmap(frame, Path(work) / "claims_by_env.png")
        figure = base64.b64encode(png.read_bytes()).decode()
    envs = [
        {
            "env_id": r.env_id,
            "profile": r.meta.get("profile"),
            "seeds": len(r.meta.get("seeds", [])),
            "steps": r.meta.get("env_steps"),
            "folder": str(r.directory),
            **_reach_cells(env_reach(r)),
        }
        for r in results
    ]
    shapley = [
        {
            "env": row["env_id"],
            "name": "gap (example 3 - example 1)" if row["kind"] == "gap" else row["name"].replace("_", " "),
            "estimate": _num(row["estimate"]),
            "interval": _interval(row["ci_low"], row["ci_high"]),
            **share_cells(row),
            "seeds": _num(row["seeds"]),
        }
        for _, row in attribution_by_env(results).iterrows()
    ]
    rows = [
        {
            "claim": row["claim"],
            "env": row["env_id"],
            "verdict": row["verdict"],
            "effect": f"{row['statistic']} = {_num(row['effect_size'])}" if pd.notna(row["effect_size"]) else "",
            "interval": _interval(row["ci_low"], row["ci_high"]),
            "p_adjusted": _p(row["p_adjusted"]),
            "seeds": _num(row["seeds_used"]),
        }
        for _, row in frame.iterrows()
    ]
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html = environment.get_template("across.html.j2").render(envs=envs, rows=rows, figure=figure, shapley=shapley)
    write_text_atomically(target, html)
    table = target.with_suffix(".csv")
    frame.to_csv(table.with_suffix(".csv.tmp"), index=False)
    os.replace(table.with_suffix(".csv.tmp"), table)
    return target


def _reach_cells(reach: dict) -> dict:
    """The env table's reach columns: the threshold and 'k of n' runs at the best and late checkpoints."""
    if reach["threshold"] is None:
        return {"threshold": "none known", "best": "", "late": "", "never": False}
    return {
        "threshold": _num(reach["threshold"]),
        "best": f"{reach['best']} of {reach['runs']}",
        "late": f"{reach['late']} of {reach['runs']}",
        "never": reach["best"] == 0,
    }
