"""`diagnose` in stages (ablations/diagnosis/plan.py): the base first, at the user's budget; its lint
and symptoms pick the triage rungs, which train next; their settled causes print at once; the rest
of the ladder follows with --thorough, or when triage settled no cause.

The stop rule, fixed before any benchmark: after stage 1, stop when a rung of it settled as helping
(a cause is named with evidence: reports/diagnosis/cause.py 'confirmed' or 'found by the runs');
go on to stage 2 when none did (nothing settled is no answer) or with --thorough. A verdict of
stage 1 is valid as it stands (plan.py: untrained members hold their Holm places at p = 1);
stage 2 settles each family whole and its verdicts replace stage 1's in the report.

Each stage is a pytest session of its own process (pytest.main runs once per process); the run
cache makes what an earlier stage trained free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ablations.diagnosis.plan import (
    BASE_STAGE,
    PLAN_FILE,
    THOROUGH_STAGE,
    TRIAGE_SIZE,
    TRIAGE_STAGE,
    DiagnosisPlan,
    write_plan,
)
from reports.diagnosis.cause import CONFIRMED, FOUND, diagnosis_causes
from reports.diagnosis.record import Diagnosis
from reports.results import ReportError

BASE_FOLDER = "base"
SETTLED_KINDS = (CONFIRMED, FOUND)


class StageFailed(RuntimeError):
    """A stage's session crashed or wrote no results."""


@dataclass(frozen=True)
class StagedOutcome:
    """What the staged diagnosis did: the last plan, the stages run, whether a cause settled and
    when (seconds from the start), the wall time of each stage."""

    plan: DiagnosisPlan
    stages: tuple[int, ...]
    settled: bool
    first_settled_s: float | None
    stage_seconds: tuple[float, ...]


def plan_lines(plan: DiagnosisPlan, name: str, cache: str, thorough: bool) -> list[str]:
    """The first screen's plan: the budget (and its caveat), the seeds, the stages and families."""
    first = min(TRIAGE_SIZE, len(plan.ladder))
    rest = len(plan.ladder) - first
    line = (
        f"diagnose: {name} on {plan.env_id}, profile {plan.profile}: your DQN at {plan.steps:,} env steps x "
        f"{plan.seeds} seeds, with the {first} one-knob changes its lint and symptoms point at first (about "
        f"{(1 + first) * plan.seeds * plan.steps:,} agent-steps), then the other {rest} of the ladder's "
        f"{len(plan.ladder)} " + ("(--thorough)" if thorough else "only if none of those settles (--thorough: always)")
    )
    if plan.max_seeds:
        line += f"; unsettled changes get seeds on demand up to {plan.max_seeds}"
    families = "; ".join(f"{f.name} {len(f.rungs)} at alpha {f.alpha:g}" for f in plan.families)
    lines = [line + f"; runs already in {cache} are not trained again", f"families: {families} (Holm within each)"]
    caveat = plan.budget_line()
    return lines if caveat is None else [caveat, *lines]


def recorded_diagnosis(results: Path) -> Diagnosis:
    """The diagnosis a stage's results folder holds (its base's lint findings and symptoms)."""
    try:
        return Diagnosis.load(results)
    except ReportError as exc:
        raise StageFailed(str(exc)) from None


def settled_causes(results: Path) -> list:
    """The causes named with a settled change behind them."""
    return [cause for cause in diagnosis_causes(recorded_diagnosis(results)) if cause.kind in SETTLED_KINDS]


def triage_line(plan: DiagnosisPlan) -> str:
    first = plan.stage_rungs(TRIAGE_STAGE)
    symptoms = ", ".join(plan.symptoms) or "none"
    if not first:
        return f"triage: nothing in lint or the symptoms ({symptoms}) points at a rung; training the whole ladder"
    order = plan.triage or ()
    # Passed over for cost (plan.admitted): before the last admitted rung, or anywhere if room was left.
    reach = order if len(first) < TRIAGE_SIZE else order[: order.index(first[-1])]
    waiting = [key for key in reach if key not in first]
    line = f"triage: training first {', '.join(first)} (symptoms of your DQN: {symptoms})"
    if waiting:
        line += f"; {', '.join(waiting)} cost more than the first screen affords, left to stage 2"
    return line


def run_staged(
    plan: DiagnosisPlan,
    out: Path,
    thorough: bool,
    run_session: Callable[[int, Path, Path], None],
    show: Callable[[Path], list[str]],
    say: Callable[[str], None] = print,
) -> StagedOutcome:
    """Run the stages: run_session(stage, plan file, results folder) trains and settles one stage
    (raising StageFailed); show(results) gives the cause lines to print after a stage."""
    started = time.perf_counter()
    seconds: list[float] = []
    plan_path = out / PLAN_FILE

    def stage(number: int, folder: Path) -> None:
        begun = time.perf_counter()
        # Written again before each stage: a stage's session replaces the results folder it writes.
        write_plan(plan, plan_path)
        run_session(number, plan_path, folder)
        seconds.append(time.perf_counter() - begun)

    stage(BASE_STAGE, out / BASE_FOLDER)
    base = recorded_diagnosis(out / BASE_FOLDER).base
    plan = plan.triaged([finding.to_dict() for finding in base.lint], [symptom.name for symptom in base.symptoms])
    say(triage_line(plan))
    stages = [BASE_STAGE]
    settled, first_settled = False, None
    for number in (TRIAGE_STAGE, THOROUGH_STAGE):
        if not plan.stage_rungs(number):
            continue
        if number == THOROUGH_STAGE:
            if settled and not thorough:
                say(f"stopping after triage: a cause settled (--thorough trains the other {len(plan.stage_rungs(2))})")
                break
            reason = "--thorough" if thorough else "no triage change settled"
            say(f"thorough: training the other {len(plan.stage_rungs(number))} changes ({reason})")
        stage(number, out)
        stages.append(number)
        elapsed = time.perf_counter() - started
        for line in show(out):
            say(line)
        if not settled and settled_causes(out):
            settled, first_settled = True, elapsed
            say(f"settled: a cause after {elapsed:.0f} s (stage {number})")
    write_plan(plan, plan_path)  # the plan as triaged, beside the last stage's results
    return StagedOutcome(plan, tuple(stages), settled, first_settled, tuple(seconds))
