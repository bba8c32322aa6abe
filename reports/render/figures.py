"""Seaborn figures of an ablation run (Agg backend), saved as PNG and SVG."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display is ever needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from reports.analysis.metrics import soft_divergence_bound  # noqa: E402
from reports.render.tables import attribution, improvement_matrix, seed_table  # noqa: E402
from reports.results import Results

ARTICLE = ("article-naive", "article-replay", "article-target")
BAND_RESAMPLES = 1_000


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    png: Path
    svg: Path


def sweep_members(results: Results, knobs: set[str], base: str = "article-target") -> list[str]:
    """Variants whose config differs from `base` only in `knobs` (plus base itself)."""
    configs = results.variant_configs
    if base not in configs:
        return []
    members = []
    for name, config in configs.items():
        differing = {k for k in set(config) | set(configs[base]) if config.get(k) != configs[base].get(k)}
        if differing <= knobs:
            members.append(name)
    return sorted(members)


def common_grid(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Every (variant, seed) resampled onto the variant's full checkpoint grid: a run that
    stopped early (every seed diverged) keeps its last value, so bands never thin out."""
    parts = []
    for variant, frame in runs.groupby("variant"):
        grid = np.sort(frame["env_step"].unique())
        wide = frame.pivot_table(index="env_step", columns="seed", values=column, aggfunc="first").reindex(grid)
        wide = wide.ffill()
        long = wide.reset_index().melt(id_vars="env_step", var_name="seed", value_name=column)
        long.insert(0, "variant", variant)
        parts.append(long)
    return pd.concat(parts, ignore_index=True)


def named_variants(results: Results) -> list[str]:
    """The variants that are not sweep points (sweeps have figures of their own), article first."""
    present = set(results.runs["variant"])
    sweeps = set(sweep_members(results, {"target_sync_period"}))
    sweeps |= set(sweep_members(results, {"replay_capacity", "batch_size", "learning_starts"}))
    cells = {name for name in present if name.startswith("cell-")}  # factorial cells: their own figure
    named = (present - sweeps - cells) | ({"article-target"} & present)
    return [v for v in ARTICLE if v in named] + sorted(named - set(ARTICLE))


def _learning_curves(results: Results, ax) -> None:
    data = common_grid(results.runs, "eval_return")
    shown = named_variants(results)
    sns.lineplot(
        data=data[data["variant"].isin(shown)],
        x="env_step",
        y="eval_return",
        hue="variant",
        hue_order=shown,
        errorbar=("ci", 95),
        n_boot=BAND_RESAMPLES,
        seed=0,
        ax=ax,
    )
    ax.set(xlabel="env steps", ylabel="greedy eval return")


def _max_q(results: Results, ax) -> None:
    data = common_grid(results.runs, "max_abs_q")
    shown = named_variants(results)
    data = data[(data["max_abs_q"] > 0) & data["variant"].isin(shown)]
    sns.lineplot(
        data=data, x="env_step", y="max_abs_q", hue="variant", hue_order=shown, errorbar=("pi", 50), ax=ax, linewidth=1
    )
    ax.set_yscale("log")
    limit = soft_divergence_bound(results.profile, 0.99, 0.0, results.runs)
    if limit is not None:
        ax.axhline(limit, color="black", linestyle="-", linewidth=1, label=f"max|r|/(1-gamma) = {limit:g}")
    bound = soft_divergence_bound(results.profile, 0.99, checkpoints=results.runs)
    if bound is not None:
        ax.axhline(bound, color="black", linestyle="--", linewidth=1, label=f"soft-divergence bound {bound:g}")
    ax.set(xlabel="env steps", ylabel="max |Q| over probe states (median, IQR)")
    ax.legend(fontsize=7, ncol=2)


def _sawtooth(results: Results, ax) -> bool:
    """Distance series of the hard-sync tests that update every env step, one per sync period."""
    suffix = "-update-every-step]"
    series, periods_seen = [], set()
    for test, details in sorted(results.details("test_hard_sync_sawtooth")):
        period = details.get("sync_period")
        if not test.endswith(suffix) or period in periods_seen or period not in (10, 100):
            continue
        periods_seen.add(period)
        variant = test[test.index("[") + 1 : -len(suffix)]
        for i, distance in enumerate(details.get("online_target_distance") or []):
            if distance is not None:
                series.append({"update": i + 1, "distance": distance, "variant (C)": f"{variant} (C={period})"})
    if not series:
        return False
    sns.lineplot(data=pd.DataFrame(series), x="update", y="distance", hue="variant (C)", ax=ax, linewidth=1)
    ax.set(xlabel="gradient updates", ylabel="online-target L2 distance (mean of 2 seeds)")
    return True


def _sweep(results: Results, knob: str, members: list[str], metrics: list[tuple[str, str]], axes) -> bool:
    if len(members) < 2:
        return False
    configs = results.variant_configs
    seeds = seed_table(results)
    seeds = seeds[seeds["variant"].isin(members)].copy()
    seeds[knob] = [configs[v].get(knob) or 1 for v in seeds["variant"]]
    for ax, (column, label) in zip(axes, metrics):
        sns.pointplot(data=seeds, x=knob, y=column, errorbar=("ci", 95), n_boot=BAND_RESAMPLES, seed=0, ax=ax)
        ax.set(ylabel=label, xlabel=knob.replace("_", " ") + (" (1 = no replay)" if knob == "replay_capacity" else ""))
        if column in ("peak_max_abs_q", "late_td_target_var", "mean_sample_age", "late_target_drift"):
            ax.set_yscale("log")
    return True


def _capacity_age(results: Results) -> pd.DataFrame:
    late = results.runs.sort_values("env_step").groupby(["variant", "seed"]).tail(1)
    return late[["variant", "seed", "mean_sample_age"]]


def _distributions(results: Results, ax) -> None:
    seeds = seed_table(results)
    order = seeds.groupby("variant")["late_return"].median().sort_values().index.tolist()
    sns.boxplot(data=seeds, y="variant", x="late_return", order=order, color="0.85", fliersize=0, ax=ax)
    sns.stripplot(data=seeds, y="variant", x="late_return", order=order, size=3, color="0.2", ax=ax)
    ax.set(xlabel="late greedy return per seed", ylabel="")


def _heatmap(results: Results, ax) -> None:
    matrix = improvement_matrix(results)
    sns.heatmap(matrix, vmin=0, vmax=1, cmap="RdBu_r", center=0.5, annot=len(matrix) <= 10, fmt=".2f", ax=ax)
    ax.set(xlabel="compared with", ylabel="P(row variant's late return > column's)")


METRIC_LABELS = {
    "late_return": "late return",
    "success": "success rate",
    "soft_diverged": "sustained soft divergence",
}


def _attribution(results: Results, axes) -> bool:
    """Each knob's Shapley share of the example 1 -> 3 gap, per outcome metric, with 95% intervals.
    Where the gap's own interval contains 0 a share is meaningless (a ratio to about nothing):
    that panel shows the Shapley values themselves, in the metric's units."""
    table = attribution(results)
    if table.empty or not (table["kind"] == "shapley").any():
        return False
    for ax, (metric, label) in zip(axes, METRIC_LABELS.items()):
        rows = table[(table["metric"] == metric) & (table["kind"] == "shapley")]
        gap = table[(table["metric"] == metric) & (table["kind"] == "gap")]
        if rows.empty or gap.empty:
            ax.set_visible(False)
            continue
        y = np.arange(len(rows))
        ax.invert_yaxis()  # knobs read top to bottom in the table's order
        # The gap's interval excludes 0 (beyond rounding: a bootstrap quantile can be -1e-17).
        if gap["ci_low"].iloc[0] > 1e-9 or gap["ci_high"].iloc[0] < -1e-9:
            columns, xlabel = ("share", "share_low", "share_high"), f"share of the {label} gap"
        else:
            columns, xlabel = ("estimate", "ci_low", "ci_high"), "Shapley value (gap interval contains 0)"
        value, low, high = (rows[c].to_numpy(dtype=float) for c in columns)
        # A ratio's percentile interval need not contain its plug-in estimate: clip the bars at 0.
        xerr = [np.maximum(value - low, 0), np.maximum(high - value, 0)]
        ax.errorbar(value, y, xerr=xerr, fmt="o", color="0.2", capsize=3)
        ax.axvline(0, color="0.5", linewidth=1)
        ax.set_yticks(y, [name.replace("_", " ") for name in rows["name"]] if ax is axes[0] else [])
        ax.set(xlabel=xlabel, title=label)
    return True


SYNC_METRICS = [
    ("late_target_drift", "relative TD-target drift per update"),
    ("late_td_target_var", "batch TD-target variance (grows with Q^2)"),
    ("late_return", "late return"),
]
CAPACITY_METRICS = [
    ("late_state_autocorrelation", "lag-1 autocorrelation of training states"),
    ("late_return", "late return"),
    ("peak_max_abs_q", "peak max |Q|"),
]
CAPACITY_KNOBS = {"replay_capacity", "batch_size", "learning_starts"}


def _always(draw):
    """A drawing that every results folder allows."""

    def drawn(results: Results, axes) -> bool:
        draw(results, axes)
        return True

    return drawn


def _sync_sweep(results: Results, axes) -> bool:
    return _sweep(results, "target_sync_period", sweep_members(results, {"target_sync_period"}), SYNC_METRICS, axes)


def _capacity_sweep(results: Results, axes) -> bool:
    return _sweep(results, "replay_capacity", sweep_members(results, CAPACITY_KNOBS), CAPACITY_METRICS, axes)


def _sample_age(results: Results, ax) -> bool:
    capacity = sweep_members(results, CAPACITY_KNOBS)
    if len(capacity) < 2:  # the capacity sweep's own condition (_sweep)
        return False
    ages = _capacity_age(results)
    ages = ages[ages["variant"].isin(capacity)].copy()
    configs = results.variant_configs
    ages["replay_capacity"] = [configs[v].get("replay_capacity") or 1 for v in ages["variant"]]
    sns.pointplot(data=ages, x="replay_capacity", y="mean_sample_age", errorbar=("ci", 95), seed=0, ax=ax)
    ax.set(xlabel="replay capacity", ylabel="mean sample age at the last checkpoint (env steps)")
    return True


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report: its file name, title and caption, its layout (a figure size,
    or a function of the results for the figures that grow with the variants), and the function
    that draws it on its axes and says whether the results allow it."""

    name: str
    title: str
    caption: str
    size: tuple[float, float] | Callable[[Results], tuple[float, float]]
    draw: Callable[[Results, object], bool]
    panels: int = 1


def _variant_count(results: Results) -> int:
    return results.runs["variant"].nunique()


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "learning_curves",
        "Learning curves",
        "Greedy evaluation return over training; bands are 95% "
        "bootstrap intervals over seeds, each run resampled to the common checkpoint grid.",
        (9, 5),
        _always(_learning_curves),
    ),
    FigureSpec(
        "attribution",
        "Attribution of the example 1 -> example 3 gap",
        "Shapley share of each of the four switches that separate the article's examples (terminal masking, "
        "old-gym done, replay, target network), from the 16-cell factorial: each knob's marginal effect "
        "averaged over every order of switching, so the shares add to 1 whatever the order. 95% stratified "
        "bootstrap intervals over seeds.",
        (12, 3.6),
        _attribution,
        panels=3,
    ),
    FigureSpec(
        "max_q",
        "Soft divergence",
        "Max |Q| over the fixed probe states (log scale). No true value "
        "exceeds max|r|/(1-gamma) = 100 on CartPole; the dashed line is the soft-divergence bound with its margin.",
        (9, 5),
        _always(_max_q),
    ),
    FigureSpec(
        "target_lag",
        "Target-network lag",
        "Online-target distance after every gradient update: exactly zero at each hard sync, growing between syncs.",
        (9, 4),
        _sawtooth,
    ),
    FigureSpec(
        "sync_sweep",
        "Sync-period sweep",
        "Relative drift of the TD targets per update (the moving target, scale-free), the batch TD-target "
        "variance (recorded, not a verdict: it grows with the size of Q) and late return against the sync "
        "period C (gradient updates); C = 1 is equivalent to no target network. Means with 95% CIs.",
        (12, 4),
        _sync_sweep,
        panels=3,
    ),
    FigureSpec(
        "capacity_sweep",
        "Replay-capacity sweep",
        "Correlation of consecutively used training "
        "states, late return and peak max |Q| against replay capacity. Means with 95% CIs.",
        (12, 4),
        _capacity_sweep,
        panels=3,
    ),
    FigureSpec(
        "sample_age",
        "Sample age",
        "Mean age of sampled transitions: about (capacity - 1) / 2 once the buffer is full, the env step / 2 before.",
        (6, 4),
        _sample_age,
    ),
    FigureSpec(
        "final_returns",
        "Late-return distributions",
        "Each seed's late return (mean greedy return over its last 20% of checkpoints).",
        lambda results: (9, 0.45 * _variant_count(results) + 1.5),
        _always(_distributions),
    ),
    FigureSpec(
        "improvement",
        "Probability of improvement",
        "P(X > Y) over seeds of late returns for every pair of variants; 0.5 means no difference.",
        lambda results: (0.6 * _variant_count(results) + 3, 0.5 * _variant_count(results) + 2),
        _always(_heatmap),
    ),
)


def render_figures(results: Results, directory: str | Path) -> list[Figure]:
    """Draw every figure of FIGURES the results allow (PNG and SVG); return them in report order."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    figures: list[Figure] = []
    for spec in FIGURES:
        size = spec.size(results) if callable(spec.size) else spec.size
        fig, axes = plt.subplots(1, spec.panels, figsize=size)
        if not spec.draw(results, axes):
            plt.close(fig)
            continue
        fig.tight_layout()
        png, svg = out / f"{spec.name}.png", out / f"{spec.name}.svg"
        fig.savefig(png, dpi=110)
        fig.savefig(svg)
        plt.close(fig)
        figures.append(Figure(spec.name, spec.title, spec.caption, png, svg))
    return figures
