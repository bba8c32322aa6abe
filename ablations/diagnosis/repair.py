"""The repair path of a diagnosis: apply the best change, ladder again from there, until it trains.

Round r diagnoses a config (the user's, then the last round's plus its chosen change). The
change applied fixes the round's first confirmed cause (reports/diagnosis/cause.py: a lint finding whose
field a settled helping change sets; that change), else it is the best one that settled as
helping (the ladder's ranking: P(improvement) first), or, if none settled, the best by
P(improvement) that lifts the late-return IQM, labelled as unsettled. Fixing the named cause
first keeps the path from masking a defect with a stabiliser that happens to rank higher. The
path stops when the base trains (a majority of its seeds converge), when no change helps, when
the chosen rung already trains, or after the last round. Each round is a results folder of its
own; the path and the final config (`repaired.toml`) are written beside the first round's report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ablations.diagnosis.rungs import trains
from agents.config import AgentConfig
from agents.configfile import ConfigFile, config_file_text
from reports.diagnosis.cause import CONFIRMED, named_causes
from reports.render.html import write_text_atomically
from reports.render.tables import changed_fields, diagnosis, diagnosis_base
from reports.results import load_results

CAUSE = "settled, fixes the confirmed cause"
SETTLED = "settled"
UNSETTLED = "best P(improvement), not settled"
PATH_FILE = "repair-path.json"
REPAIRED_FILE = "repaired.toml"
# Fields the session sizes to its profile: a rung never changes them, and the repaired config
# keeps the user's own.
SIZING_FIELDS = ("env_id", "total_env_steps", "eval_period", "eval_episodes")


class RepairFailed(RuntimeError):
    """A round's session crashed: the path stops, and the rounds before it stay on disk."""


@dataclass(frozen=True)
class RepairStep:
    """One round of the path: the config diagnosed, what became of it, and the change chosen."""

    round: int
    config_file: str
    results: str
    trains: bool
    learned: int
    seeds: int
    late_return_iqm: float | None
    env_steps: int | None = None  # per seed, as the session sized the config (a profile may cap it)
    change: str | None = None  # the rung's sentence
    rung: str | None = None
    chosen_as: str | None = None  # SETTLED or UNSETTLED
    change_iqm: float | None = None
    change_learned: int | None = None
    change_seeds: int | None = None  # the rung's seeds (more than the base's when added on demand)
    p_improvement: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_adjusted: float | None = None
    fields: dict | None = None  # field -> new value
    from_rung: str | None = None  # this config's runs are that rung of the round before


def path_line(step: RepairStep) -> str:
    """One line of the path as printed and reported: the round, what became of it, its change."""
    iqm = "" if step.late_return_iqm is None else f", late return IQM {step.late_return_iqm:.3g}"
    state = f"round {step.round}: {step.learned} of {step.seeds} seeds converge{iqm}"
    if step.from_rung is not None:
        state += f" (its runs are round {step.round - 1}'s {step.from_rung} rung, on the same seeds)"
        return state + (": it trains." if step.trains else ": it does not train yet; the rounds ran out.")
    if step.change is None:
        return state + (": it trains." if step.trains else ": no change helps; the path stops here.")
    p_adj = "" if step.p_adjusted is None else f", Holm-adjusted p = {step.p_adjusted:.2g}"
    return (
        f"{state}; applying ({step.chosen_as}): {step.change} (IQM {step.change_iqm:.3g}, "
        f"{step.change_learned} of {step.change_seeds} learn, P(improvement) = {step.p_improvement:.2f}{p_adj})"
    )


def _number(value) -> float | None:
    return None if value is None or value != value else float(value)


def _recorded_config(meta: dict, variant: str | None) -> dict:
    """A variant's config as the round's metadata recorded it ({} where it did not)."""
    return ((meta.get("variants") or {}).get(variant) or {}).get("config") or {}


def choose_change(table, lint: list[dict] | None = None) -> tuple[dict, str] | None:
    """The change to apply from a ranked diagnosis table (reports.render.tables.diagnosis) and the
    base's lint findings, and how it was chosen; None when no change helps."""
    confirmed = [c for c in named_causes(lint or [], table) if c.kind == CONFIRMED]
    if confirmed:
        return confirmed[0].rung, f"{CAUSE} {confirmed[0].field}"
    supported = table[table["verdict"] == "supported"]
    if len(supported):
        return supported.iloc[0].to_dict(), SETTLED
    lifts = table[
        (table["effect_size"].astype(float) > 0.5)
        & (table["change_iqm"].astype(float) > table["base_iqm"].astype(float))
    ]
    if len(lifts):
        return lifts.iloc[0].to_dict(), UNSETTLED
    return None


def rung_fields(meta: dict, base: str, rung: str) -> dict:
    """What the rung changed, field by field, read from the round's recorded variant configs."""
    variants = meta["variants"]
    before, after = variants[base]["config"], variants[f"{base}+{rung}"]["config"]
    return {k: after.get(k) for k in changed_fields(before, after) if k not in SIZING_FIELDS}


def read_round(results_dir: Path) -> tuple[dict, object, dict]:
    """A finished round's base row, ranked changes and metadata."""
    results = load_results(results_dir)
    return diagnosis_base(results) or {}, diagnosis(results), results.meta


def repair_path(
    loaded: ConfigFile, out: Path, rounds: int, run_round: Callable[[Path, Path], None]
) -> list[RepairStep]:
    """Diagnose, apply, repeat. `out` holds round 1's results already; run_round(config_file,
    results_dir) runs the ladder of a later round. A round's chosen rung is the next config trained
    on the same seeds (mixed families are bit-identical to training alone), so when that rung
    already trains, or the rounds run out, the path ends on the rung's own figures: no session
    is spent re-training a config whose runs are on disk."""
    steps: list[RepairStep] = []
    current, config_path, results_dir = loaded, loaded.path, out
    for number in range(1, rounds + 1):
        if number > 1:
            run_round(config_path, results_dir)
        base, table, meta = read_round(results_dir)
        outcomes = base.get("outcomes") or {}
        figures = {
            "round": number,
            "config_file": str(config_path),
            "results": str(results_dir),
            "trains": base.get("outcome") == "passed",
            "learned": int(outcomes.get("converged", 0)),
            "seeds": int(sum(outcomes.values())),
            "late_return_iqm": _number(base.get("late_return_iqm")),
            "env_steps": _recorded_config(meta, base.get("base_variant")).get("total_env_steps"),
        }
        chosen = None if figures["trains"] else choose_change(table, base.get("lint"))
        if chosen is None:
            steps.append(RepairStep(**figures))
            break
        row, how = chosen
        fields = rung_fields(meta, base["base_variant"], row["rung"])
        steps.append(
            RepairStep(
                **figures,
                change=row["change"],
                rung=row["rung"],
                chosen_as=how,
                change_iqm=_number(row["change_iqm"]),
                change_learned=None if row["change_learned"] is None else int(row["change_learned"]),
                change_seeds=int(row["seeds"]),
                p_improvement=_number(row["effect_size"]),
                ci_low=_number(row["ci_low"]),
                ci_high=_number(row["ci_high"]),
                p_adjusted=_number(row["p_adjusted"]),
                fields=fields,
            )
        )
        config = AgentConfig.from_dict({**current.config.to_dict(), **fields})
        current = ConfigFile(current.path, f"{loaded.name}-r{number + 1}", config, current.env)
        config_path = out / f"round-{number + 1}.toml"
        header = f"Round {number + 1} of the repair path of {loaded.path.name}: {row['change']}"
        write_text_atomically(config_path, config_file_text(current.name, current.config, current.env, header))
        converged, seeds = int(row["change_converged"] or 0), int(row["seeds"])
        if trains(converged, seeds) or number == rounds:
            steps.append(
                RepairStep(
                    round=number + 1,
                    config_file=str(config_path),
                    results=str(results_dir),
                    trains=trains(converged, seeds),
                    learned=converged,
                    seeds=seeds,
                    late_return_iqm=_number(row["change_iqm"]),
                    env_steps=figures["env_steps"],
                    from_rung=row["rung"],
                )
            )
            break
        results_dir = out / f"round-{number + 1}"
    write_path(out, loaded, current, steps)
    return steps


def write_path(out: Path, loaded: ConfigFile, final: ConfigFile, steps: list[RepairStep]) -> None:
    """repair-path.json (every round) and, when a change was applied, repaired.toml."""
    record = {
        "config_file": str(loaded.path),
        "repaired": REPAIRED_FILE if final.config != loaded.config else None,
        "steps": [{**asdict(s), "line": path_line(s)} for s in steps],
    }
    write_text_atomically(out / PATH_FILE, json.dumps(record, indent=2))
    if final.config != loaded.config:
        changes = "; ".join(s.change for s in steps if s.change)
        header = (
            f"{loaded.path.name} repaired by `python -m ablations diagnose` ({len(steps) - 1} change(s)):\n"
            f"{changes}\n"
            + ("It trains: a majority of its seeds converged" if steps[-1].trains else "It does not train yet")
            + (f" at {steps[-1].env_steps:,} env steps per seed." if steps[-1].env_steps else ".")
        )
        write_text_atomically(
            out / REPAIRED_FILE, config_file_text(loaded.name + "-repaired", final.config, final.env, header)
        )
