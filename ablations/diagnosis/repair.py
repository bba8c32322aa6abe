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
from pathlib import Path

from ablations.diagnosis.rungs import trains
from agents.config import AgentConfig
from agents.configfile import ConfigFile, config_file_text
from reports.diagnosis.cause import CONFIRMED, diagnosis_causes
from reports.diagnosis.record import REPAIR_PATH_FILE, Diagnosis, RepairPath, RepairStep, Rung, changed_fields
from reports.render.html import write_text_atomically
from reports.results import ReportError, load_results

CAUSE = "settled, fixes the confirmed cause"
SETTLED = "settled"
UNSETTLED = "best P(improvement), not settled"
REPAIRED_FILE = "repaired.toml"
# Fields the session sizes to its profile: a rung never changes them, and the repaired config
# keeps the user's own.
SIZING_FIELDS = ("env_id", "total_env_steps", "eval_period", "eval_episodes")


class RepairFailed(RuntimeError):
    """A round's session crashed: the path stops, and the rounds before it stay on disk."""


def choose_change(diagnosis: Diagnosis) -> tuple[Rung, str] | None:
    """The change to apply from a round's diagnosis, and how it was chosen; None when no change
    helps."""
    confirmed = [c for c in diagnosis_causes(diagnosis) if c.kind == CONFIRMED]
    if confirmed:
        return confirmed[0].rung, f"{CAUSE} {confirmed[0].field}"
    helping = diagnosis.helping()
    if helping:
        return helping[0], SETTLED
    lifts = [r for r in diagnosis.rungs if r.effect_size is not None and r.effect_size > 0.5 and (r.gain or 0) > 0]
    if lifts:
        return lifts[0], UNSETTLED
    return None


def _recorded_config(meta: dict, variant: str | None) -> dict:
    """A variant's config as the round's metadata recorded it ({} where it did not)."""
    return ((meta.get("variants") or {}).get(variant) or {}).get("config") or {}


def rung_fields(meta: dict, base: str, rung: str) -> dict:
    """What the rung changed, field by field, read from the round's recorded variant configs."""
    before, after = _recorded_config(meta, base), _recorded_config(meta, f"{base}+{rung}")
    return {k: after.get(k) for k in changed_fields(before, after) if k not in SIZING_FIELDS}


def read_round(results_dir: Path) -> tuple[Diagnosis, dict]:
    """A finished round's diagnosis and metadata."""
    try:
        results = load_results(results_dir)
        return Diagnosis.load(results), results.meta
    except ReportError as exc:
        raise RepairFailed(str(exc)) from None


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
        diagnosis, meta = read_round(results_dir)
        base = diagnosis.base
        figures = {
            "round": number,
            "config_file": str(config_path),
            "results": str(results_dir),
            "trains": base.trains,
            "learned": base.converged,
            "seeds": int(sum(base.outcomes.values())),
            "late_return_iqm": base.late_return_iqm,
            "env_steps": _recorded_config(meta, base.variant).get("total_env_steps"),
        }
        chosen = None if base.trains else choose_change(diagnosis)
        if chosen is None:
            steps.append(RepairStep(**figures))
            break
        rung, how = chosen
        fields = rung_fields(meta, base.variant, rung.rung)
        steps.append(
            RepairStep(
                **figures,
                change=rung.change,
                rung=rung.rung,
                chosen_as=how,
                change_iqm=rung.with_change.late_return_iqm,
                change_learned=rung.with_change.learned,
                change_seeds=rung.with_change.seeds,
                p_improvement=rung.effect_size,
                ci_low=rung.ci_low,
                ci_high=rung.ci_high,
                p_adjusted=rung.p_adjusted,
                fields=fields,
            )
        )
        config = AgentConfig.from_dict({**current.config.to_dict(), **fields})
        current = ConfigFile(current.path, f"{loaded.name}-r{number + 1}", config, current.env)
        config_path = out / f"round-{number + 1}.toml"
        header = f"Round {number + 1} of the repair path of {loaded.path.name}: {rung.change}"
        write_text_atomically(config_path, config_file_text(current.name, current.config, current.env, header))
        converged, seeds = int(rung.with_change.outcomes.get("converged", 0)), rung.with_change.seeds
        if trains(converged, seeds) or number == rounds:
            steps.append(
                RepairStep(
                    round=number + 1,
                    config_file=str(config_path),
                    results=str(results_dir),
                    trains=trains(converged, seeds),
                    learned=converged,
                    seeds=seeds,
                    late_return_iqm=rung.with_change.late_return_iqm,
                    env_steps=figures["env_steps"],
                    from_rung=rung.rung,
                )
            )
            break
        results_dir = out / f"round-{number + 1}"
    write_path(out, loaded, current, steps)
    return steps


def write_path(out: Path, loaded: ConfigFile, final: ConfigFile, steps: list[RepairStep]) -> None:
    """repair-path.json (every round) and, when a change was applied, repaired.toml."""
    path = RepairPath(str(loaded.path), REPAIRED_FILE if final.config != loaded.config else None, tuple(steps))
    write_text_atomically(out / REPAIR_PATH_FILE, json.dumps(path.to_dict(), indent=2))
    if final.config != loaded.config:
        changes = "; ".join(s.change for s in steps if s.change)
        header = (
            f"{loaded.path.name} repaired by `dqn-ablations diagnose` ({len(steps) - 1} change(s)):\n"
            f"{changes}\n"
            + ("It trains: a majority of its seeds converged" if steps[-1].trains else "It does not train yet")
            + (f" at {steps[-1].env_steps:,} env steps per seed." if steps[-1].env_steps else ".")
        )
        write_text_atomically(
            out / REPAIRED_FILE, config_file_text(loaded.name + "-repaired", final.config, final.env, header)
        )
