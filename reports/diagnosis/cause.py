"""What is wrong with a diagnosed DQN, most likely first: lint findings checked against the runs.

A lint finding is a suspicion from the config alone; a rung that changes the finding's field (on
its own, or with the fields its one knob sets together, as removing the target network unsets its
sync period) is the experiment that tests it. Each finding is read against the best such rung:
confirmed when that change settles as helping, contradicted when changing the field only settles
as hurting, unsettled or untested otherwise. A change that helps while no lint rule flags any
field it sets is a cause the runs found on their own. The order, fixed before any benchmark was
run: confirmed (in lint order, which puts what makes training pointless first),
then found by the runs (most helpful first), then unsettled, untested and contradicted findings.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.analysis.stats import Verdict
from reports.diagnosis.record import Cause, CauseKind, Diagnosis, LintLine, Rung

CONFIRMED, FOUND, UNSETTLED, UNTESTED, CONTRADICTED = CauseKind


def named_causes(lint: Sequence[LintLine], rungs: Sequence[Rung]) -> list[Cause]:
    """The causes in the module's order, from the base's lint findings (as recorded, in lint
    order) and the ranked rungs (most helpful first, each with the fields it changes)."""
    flagged, confirmed = set(), []
    pending: dict[CauseKind, list[Cause]] = {UNSETTLED: [], UNTESTED: [], CONTRADICTED: []}
    for finding in lint:
        flagged.add(finding.field)
        testing = [rung for rung in rungs if finding.field in rung.fields]
        by_verdict = {verdict: [r for r in testing if r.verdict == verdict] for verdict in Verdict}
        if by_verdict[Verdict.SUPPORTED]:
            helping = by_verdict[Verdict.SUPPORTED]
            confirmed.append(Cause(CONFIRMED, finding.field, finding, helping[0], len(helping) - 1))
        elif by_verdict[Verdict.INCONCLUSIVE]:
            pending[UNSETTLED].append(Cause(UNSETTLED, finding.field, finding, by_verdict[Verdict.INCONCLUSIVE][0]))
        elif by_verdict[Verdict.REFUTED]:
            pending[CONTRADICTED].append(Cause(CONTRADICTED, finding.field, finding, by_verdict[Verdict.REFUTED][0]))
        else:  # no rung changes the field, or every one that does crashed
            pending[UNTESTED].append(Cause(UNTESTED, finding.field, finding, None))
    found = [
        # A folder that recorded no configs names no fields: the rung's key stands in.
        Cause(FOUND, ", ".join(sorted(rung.fields)) or rung.rung, None, rung)
        for rung in rungs
        if rung.verdict == Verdict.SUPPORTED and not set(rung.fields) & flagged
    ]
    return [*confirmed, *found, *pending[UNSETTLED], *pending[UNTESTED], *pending[CONTRADICTED]]


def diagnosis_causes(diagnosis: Diagnosis | None) -> list[Cause]:
    """A diagnosis' named causes, most likely first (none without a diagnosis)."""
    return [] if diagnosis is None else named_causes(diagnosis.base.lint, diagnosis.rungs)
