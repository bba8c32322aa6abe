"""The self-contained HTML report: verdicts first, then tables, figures and metadata.

Rendered with Jinja2 with autoescaping on, so every string that comes from results (claims,
variant names, command lines) is escaped. Figures are embedded as base64 PNG, so the file
works offline and can be mailed as is.
"""

from __future__ import annotations

import base64
import math
import os
import re
import tempfile
from pathlib import Path

import jinja2
import pandas as pd

from reports.analysis.stats import Verdict
from reports.diagnosis.cause import CONFIRMED, CONTRADICTED, FOUND, UNSETTLED, diagnosis_causes
from reports.diagnosis.record import BASE_PROPERTY, RUNG_PROPERTY, Base, Cause, Diagnosis, Rung
from reports.render.figures import render_figures
from reports.render.tables import export_tables
from reports.results import Results, load_results

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return f"{int(value)}"
    return f"{value:.{digits}g}"


def _text(value) -> str:
    """A string cell; missing values (None, or NaN in pandas' string dtype) read as empty."""
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _interval(low, high) -> str:
    return "" if _num(low) == "" else f"[{_num(low)}, {_num(high)}]"


def share_cells(row) -> dict:
    """An attribution row's share of the gap and its interval, as percentages ('' where none)."""
    return {
        "share": "" if pd.isna(row["share"]) else f"{100 * row['share']:.0f}%",
        "share_interval": ""
        if pd.isna(row["share_low"])
        else f"[{100 * row['share_low']:.0f}%, {100 * row['share_high']:.0f}%]",
    }


def _p(value) -> str:
    return "" if value is None or pd.isna(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _p_clause(value) -> str:
    text = _p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def reading(row: pd.Series) -> str:
    """One plain-language sentence for a claim's verdict."""
    if row["verdict"] == Verdict.ERROR:
        return f"The test crashed before it could reach a verdict: {row.get('error') or 'see the test log'}."
    effect = (
        f"{row['statistic']} = {_num(row['effect_size'])} (95% interval {_interval(row['ci_low'], row['ci_high'])})"
    )
    seeds = row.get("seeds_used")
    n = f"{int(seeds)} seeds per variant" if seeds is not None and pd.notna(seeds) else "the seeds"
    adjusted = row.get("p_adjusted")
    holm = f" (Holm-adjusted over the family: {_p(adjusted)})" if adjusted is not None and pd.notna(adjusted) else ""
    if row["verdict"] == Verdict.SUPPORTED:
        return f"The data back it: {effect}, {_p_clause(row['p_value'])}{holm} over {n}."
    if row["verdict"] == Verdict.REFUTED:
        return (
            f"The data contradict it: {effect}; the opposite direction is significant after Holm's adjustment, "
            f"over {n}."
        )
    if row["verdict"] == Verdict.INCONCLUSIVE and pd.notna(row.get("conditional_power")):
        return (
            f"Stopped for futility after {n}: {effect}, {_p_clause(row['p_value'])}. Even if the effect seen so far"
            f" is the true one, the last look would settle it with probability {_num(row['conditional_power'])},"
            " so no more seeds were spent on it."
        )
    if row["verdict"] == Verdict.INCONCLUSIVE:
        needed = row.get("seeds_needed")
        more = (
            f" About {int(needed)} seeds per variant would settle it."
            if pd.notna(needed)
            else " The observed effect is null or points the other way, so more seeds would not settle it."
        )
        return f"Not settled with {n}: {effect}, {_p_clause(row['p_value'])}.{more}"
    return "The test did not reach a verdict (it errored or was skipped before measuring)."


VERDICT_ENDINGS = {
    Verdict.SUPPORTED: "it helps",
    Verdict.REFUTED: "it hurts",
    Verdict.INCONCLUSIVE: "not settled by these seeds",
}


def _figures_move(rung: Rung) -> str:
    base, changed = rung.base.late_return_iqm, rung.with_change.late_return_iqm
    if changed == base:
        return f"leaves late return (IQM) at {_num(base)}"
    return f"{'lifts' if changed > base else 'lowers'} late return (IQM) from {_num(base)} to {_num(changed)}"


def change_sentence(rung: Rung) -> str:
    """One plain sentence for a rung of a diagnosis: what the change does to late return, how
    sure we are, and how many seeds learn with it."""
    if rung.verdict == Verdict.ERROR or rung.effect_size is None or rung.gain is None:
        return f"{rung.change}: the comparison crashed ({_text(rung.error) or 'see the test log'})."
    seeds = rung.with_change.seeds
    return (
        f"{rung.change} {_figures_move(rung)}; "
        f"P(improvement) = {rung.effect_size:.2f} {_interval(rung.ci_low, rung.ci_high)}, "
        f"Holm-adjusted {_p_clause(rung.p_adjusted)}; {rung.with_change.learned} of {seeds} seeds learn "
        f"(as given: {rung.base.learned} of {seeds}): {VERDICT_ENDINGS.get(rung.verdict, rung.verdict)}."
    )


def _moves(rung: Rung) -> str:
    """'late return (IQM) 9.6 -> 240, P(improvement) = 1.00 [0.9, 1], Holm-adjusted p = 0.002'."""
    base = rung.base.late_return_iqm if rung.base else None
    changed = rung.with_change.late_return_iqm if rung.with_change else None
    return (
        f"late return (IQM) {_num(base)} -> {_num(changed)}, P(improvement) = "
        f"{rung.effect_size:.2f} {_interval(rung.ci_low, rung.ci_high)}, Holm-adjusted "
        f"{_p_clause(rung.p_adjusted)}"
    )


def cause_sentence(cause: Cause) -> str:
    """One sentence for a named cause: what the config says (for a lint finding), what changing
    that field alone did, and how sure we are."""
    rung, finding = cause.rung, cause.finding
    flagged = "" if finding is None else f"{finding.field} = {finding.value}: {finding.why}"
    if cause.kind == CONFIRMED:
        others = f"; {cause.other_helping} other change(s) of {cause.field} help too" if cause.other_helping else ""
        return f"{flagged}. Changing it alone helps: {rung.change}, {_moves(rung)}{others}. Fix: {finding.fix}."
    if cause.kind == FOUND:
        return f"{rung.change} helps: {_moves(rung)}; no lint rule flags {cause.field}."
    if cause.kind == CONTRADICTED:
        return f"{flagged}; but changing it alone hurts: {rung.change}, {_moves(rung)}."
    if cause.kind == UNSETTLED:
        needed = rung.seeds_needed
        more = f"; about {needed} seeds would settle it" if needed is not None else ""
        return (
            f"{flagged}. Not settled whether changing it alone helps: {rung.change}, P(improvement) = "
            f"{rung.effect_size:.2f} {_interval(rung.ci_low, rung.ci_high)}{more}. Fix: {finding.fix}."
        )
    return f"{flagged}. No one-knob change of {cause.field} was tried; {finding.fix}."


def literature_reading(row: pd.Series, env_id: str, env_steps: int | None) -> str:
    """One sentence on how our verdict relates to the paper's, naming what differs in scale."""
    here = f"{env_id}, {_num(row['seeds_used'])} seeds per cell" + (f" x {env_steps:,} steps" if env_steps else "")
    setting = _text(row.get("setting")) or "the paper's setting"
    if row["verdict"] == Verdict.SUPPORTED:
        return f"Holds here too ({here}), at a much smaller scale than {setting}."
    if row["verdict"] == Verdict.REFUTED:
        return (
            f"Does not hold here: the opposite is significant ({here}). The paper's setting was {setting}; "
            "the difference may lie in the scale, the environment or the metric."
        )
    if row["verdict"] == Verdict.INCONCLUSIVE:
        futile = row.get("conditional_power")
        stop = f"; stopped for futility (conditional power {_num(futile)})" if pd.notna(futile) else ""
        return f"Not settled here ({here}): neither direction is significant after Holm's adjustment{stop}."
    return f"No verdict: the test crashed ({_text(row.get('error')) or 'see the test log'})."


def _recognised(row) -> str:
    """'7 of 20 (35%; chance 11%)' for a row of the recognition table; empty without one."""
    if row is None:
        return ""
    hits = round(row["recognised"] * row["seeds"])
    return f"{hits} of {int(row['seeds'])} ({100 * row['recognised']:.0f}%; chance {100 * row['chance']:.0f}%)"


def bug_sentence(base: Base) -> str:
    """What the bug catalogue says about the diagnosed DQN: bugs its config switches on, then
    the best signature matches (or that nothing matches well)."""
    parts = []
    if base.bugs_in_config:
        parts.append(f"Its config itself has: {', '.join(base.bugs_in_config)} (dqn-ablations bugs).")
    matches = base.bug_matches
    good = [m for m in matches if m.get("matches")]
    if good:
        listed = ", ".join(f"{m['bug']} (score {m['score']:.1f})" for m in good[:3])
        parts.append(f"Its diagnostics look like: {listed}, against the ladder's runs on the same env.")
    elif matches:
        parts.append(
            f"No bug's signature matches well (best: {matches[0]['bug']}, score {matches[0]['score']:.1f}; "
            "a match needs 1.0)."
        )
    return " ".join(parts)


# An absolute path of two or more parts ("/home/ada/my.toml"); "</b>" or "1/2" are not paths.
ABSOLUTE_PATH = re.compile(r"(?<![\w./<])(?:/[\w.+-]+){2,}")


def portable_paths(text: str, results_dir: Path) -> str:
    """The text with each absolute path shown without the machine's folders: relative to the
    results folder's parent when it lies under it, else its last two parts. A report is shared;
    where its author keeps files is not part of it."""
    base = Path(results_dir).resolve().parent

    def shorten(match: re.Match) -> str:
        path = Path(match.group(0))
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            return "/".join(path.parts[-2:])

    return ABSOLUTE_PATH.sub(shorten, text)


def base_sentence(base: Base, rungs: tuple[Rung, ...] = ()) -> str:
    """What became of the diagnosed DQN's seeds, in one sentence; and, where changes were settled
    with seeds on demand, the base as those comparisons saw it (more seeds than its first look)."""
    counts = base.outcomes
    seeds = sum(counts.values())
    parts = ", ".join(f"{count} {outcome}" for outcome, count in counts.items() if count)
    sentence = (
        f"Of {seeds} seeds: {parts}. Late return IQM {_num(base.late_return_iqm)}; a seed converges when its "
        f"late return reaches {_num(base.success_threshold)} ({base.success_source or 'the env profile'})."
    )
    compared = [r for r in rungs if r.base is not None and r.with_change is not None]
    widest = max(compared, key=lambda r: r.with_change.seeds, default=None)
    if widest is not None and widest.with_change.seeds > seeds:
        sentence += (
            f" Changes settled with seeds on demand compare against it at up to {widest.with_change.seeds} seeds "
            f"(late return IQM {_num(widest.base.late_return_iqm)} there)."
        )
    return sentence


CHECK_OUTCOMES = {"passed": "passed", "failed": "failed", "skipped": "skipped", "error": "errored"}


def _rate(row, prefix: str) -> str:
    rate = row.get(f"{prefix}_rate")
    if rate is None or pd.isna(rate):
        return ""
    return f"{100 * rate:.0f}% [{100 * row[f'{prefix}_low']:.0f}, {100 * row[f'{prefix}_high']:.0f}]"


def _ledger_cells(row: pd.Series) -> dict:
    """The cells every family's ledger shows: claim, metric, effect, interval, raw and Holm p,
    seeds used and verdict, formatted."""
    return {
        "claim": _text(row["claim"]),
        "metric": _text(row["metric"]),
        "effect": _num(row["effect_size"]),
        "interval": _interval(row["ci_low"], row["ci_high"]),
        "p": _p(row["p_value"]),
        "p_adjusted": _p(row["p_adjusted"]),
        "seeds": _num(row["seeds_used"]),
        "verdict": row["verdict"],
    }


def look_cell(row: pd.Series) -> str:
    """'2 of 3 (level)', and the conditional power of a futility stop."""
    if pd.isna(row["look"]):
        return ""
    cell = f"{int(row['look'])} of {int(row['looks'])} ({_num(row['look_level'])})"
    futile = row.get("conditional_power")
    return cell + (f", futile (conditional power {_num(futile)})" if pd.notna(futile) else "")


def render_report(results: Results, output: str | Path, work_dir: str | Path | None = None) -> Path:
    """Build tables and figures under work_dir (default: the results folder) and write the report."""
    work = Path(work_dir) if work_dir is not None else results.directory
    tables = export_tables(results, work / "tables")
    figures = render_figures(results, work / "figures")
    ledger = [
        {
            **_ledger_cells(row),
            "statistic": _text(row["statistic"]),
            "look": look_cell(row),
            "note": _text(row["note"]),
            "needed": _num(row["seeds_needed"]),
            "reading": reading(row),
        }
        for _, row in tables["claim_ledger"].iterrows()
    ]
    literature = [
        {
            **_ledger_cells(row),
            "source": _text(row["source"]),
            "paper": _text(row["paper"]),
            "effect": f"{_text(row['statistic'])} = {_num(row['effect_size'])}" if pd.notna(row["effect_size"]) else "",
            "reading": literature_reading(row, results.env_id, results.meta.get("env_steps")),
        }
        for _, row in tables["literature"].iterrows()
    ]
    recognised = {row["label"]: row for _, row in tables["recognition"].iterrows()}
    bugs = [
        {
            **_ledger_cells(row),
            "source": _text(row["source"]),
            "recognised": _recognised(recognised.get(_text(row["claim_key"]))),
        }
        for _, row in tables["bugs"].iterrows()
    ]
    overall = recognised.get("all")
    attribution_table = tables["attribution"]
    seeds_per_cell = ", ".join(str(int(s)) for s in sorted(set(attribution_table["seeds"].dropna())))
    attribution_seeds = (
        f"{seeds_per_cell} seeds per cell, "
        + (
            "every seed all 16 cells ran"
            if (attribution_table["source"] == "runs").all()
            else "the claim's deciding look"
        )
        if seeds_per_cell
        else ""
    )
    attribution_rows = [
        {
            "metric": row["metric"].replace("_", " "),
            "kind": row["kind"],
            "name": row["name"].replace("_", " "),
            "estimate": _num(row["estimate"]),
            "interval": _interval(row["ci_low"], row["ci_high"]),
            **share_cells(row),
        }
        for _, row in tables["attribution"].iterrows()
    ]
    thresholds = [
        {
            "threshold": _num(row["threshold"]),
            "primary": "primary" if row["primary"] else "",
            "target": f"{100 * row['article_target_rate']:.0f}%",
            "replay": f"{100 * row['article_replay_rate']:.0f}%",
            "difference": _num(row["rate_difference"]),
            "interval": _interval(row["ci_low"], row["ci_high"]),
            "p": _p(row["p_value"]),
        }
        for _, row in tables["success_thresholds"].iterrows()
    ]
    tests = [
        {
            "test": row["node_id"].split("::")[-1],
            "property": _text(row["property"]),
            # Checks pass or fail; they are not claims and are never counted as supported ones.
            "check": f"check {CHECK_OUTCOMES.get(row['outcome'], row['outcome'])}",
            "effect": _num(row["effect_size"]),
            "interval": _interval(row["ci_low"], row["ci_high"]),
            "p": _p(row["p_value"]),
            "n": _num(row["n"]),
            "outcome": row["outcome"],
        }
        for _, row in tables["tests"].iterrows()
        if row["property"] not in ("claims", "literature", "bugs", RUNG_PROPERTY, BASE_PROPERTY)
    ]
    record = Diagnosis.from_results(results)
    diagnosis = None
    if record is not None:
        base = record.base
        diagnosis = {
            "config_file": portable_paths(base.config_file, results.directory),
            "variant": base.variant,
            "trains": base.trains,
            "base": base_sentence(base, record.rungs),
            "skipped": list(base.skipped_rungs),
            "bugs": bug_sentence(base),
            # What the config and the runs say on their own, before any change is tried.
            "lint": [f"{finding.line()}." for finding in base.lint],
            "symptoms": [symptom.sentence for symptom in base.symptoms],
            "causes": [{"kind": c.kind, "sentence": cause_sentence(c)} for c in diagnosis_causes(record)],
            "repair": None if record.repair is None else record.repair.to_dict(),
            "changes": [{"verdict": rung.verdict, "sentence": change_sentence(rung)} for rung in record.rungs],
        }
    summary = [
        {
            "variant": row["variant"],
            "seeds": row["seeds"],
            "iqm": f"{_num(row['late_return_iqm'])} "
            + _interval(row["late_return_iqm_low"], row["late_return_iqm_high"]),
            "success": _rate(row, "success"),
            "soft": _rate(row, "soft_diverged"),
            "hard": _rate(row, "hard_diverged"),
            "collapse": _rate(row, "collapsed"),
            "max_q": _num(row["median_peak_max_abs_q"]),
            "td_var": _num(row["median_late_td_target_var"]),
        }
        for _, row in tables["variant_summary"].iterrows()
    ]
    sensitivity = tables["soft_divergence_sensitivity"]
    bounds = [c for c in sensitivity.columns if c not in ("variant", "definition")]
    soft = [
        {"variant": row["variant"], "definition": row["definition"], "rates": [f"{100 * row[b]:.0f}%" for b in bounds]}
        for _, row in sensitivity.iterrows()
    ]
    embedded = [
        {"name": f.name, "title": f.title, "caption": f.caption, "data": base64.b64encode(f.png.read_bytes()).decode()}
        for f in figures
    ]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    meta = {"wall_time_s": None, "xdist_workers": 0, "git_commit": None, "package_versions": {}, **results.meta}
    meta["command_line"] = portable_paths(str(meta.get("command_line", "")), results.directory)
    html = environment.get_template("report.html.j2").render(
        meta=meta,
        ledger=ledger,
        tests=tests,
        summary=summary,
        figures=embedded,
        soft=soft,
        bounds=bounds,
        attribution=attribution_rows,
        attribution_seeds=attribution_seeds,
        thresholds=thresholds,
        diagnosis=diagnosis,
        literature=literature,
        bugs=bugs,
        recognition_overall=_recognised(overall),
    )
    return write_text_atomically(Path(output), html)


def write_text_atomically(target: Path, text: str) -> Path:
    """Write through a temp file renamed into place, with the permissions a plain open() would
    give (tempfile creates its files 0600, which would hide a report from everyone else)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(handle.name, 0o666 & ~umask)
    os.replace(handle.name, target)
    return target


def build_report(results_dir: str | Path, output: str | Path | None = None) -> Path:
    results = load_results(results_dir)
    return render_report(results, output or Path(results_dir) / "report.html")
