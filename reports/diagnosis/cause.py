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

from dataclasses import dataclass

import pandas as pd

CONFIRMED = "confirmed"
FOUND = "found by the runs"
UNSETTLED = "flagged, not settled"
UNTESTED = "flagged, not tested"
CONTRADICTED = "flagged, contradicted"
KINDS = (CONFIRMED, FOUND, UNSETTLED, UNTESTED, CONTRADICTED)


@dataclass(frozen=True)
class Cause:
    """One named cause: its kind, the field(s) it is about, the lint finding (None when the runs
    found it alone), the rung that tests it (None when no rung changes the field) and how many
    other changes of the same field settled as helping."""

    kind: str
    field: str
    finding: dict | None
    rung: dict | None
    other_helping: int = 0

    @property
    def fields(self) -> set[str]:
        """The config field(s) named: one for a lint finding, every one a found change sets."""
        return split_fields(self.field)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid: one of {', '.join(KINDS)}")
        if self.finding is None and self.kind != FOUND:
            raise ValueError(f"a {self.kind!r} cause needs the lint finding it reads")
        if self.rung is None and self.kind in (CONFIRMED, FOUND, CONTRADICTED):
            raise ValueError(f"a {self.kind!r} cause needs the rung that settled it")


def split_fields(text) -> set[str]:
    """Field names from a comma-joined list (a Cause's field, the diagnosis table's 'fields');
    a missing value is none."""
    return {f.strip() for f in text.split(",") if f.strip()} if isinstance(text, str) else set()


def named_causes(lint: list[dict], changes: pd.DataFrame) -> list[Cause]:
    """The causes of a diagnosis in the module's order, from the base's lint findings (as
    recorded, in lint order) and the ranked rungs (reports.render.tables.diagnosis: most helpful first,
    with the fields each changes)."""
    rows = [row for _, row in changes.iterrows()] if len(changes) else []
    flagged, confirmed, pending = set(), [], {UNSETTLED: [], UNTESTED: [], CONTRADICTED: []}
    for finding in lint:
        field = finding["field"]
        flagged.add(field)
        testing = [row for row in rows if field in split_fields(row.get("fields"))]
        verdicts = [row["verdict"] for row in testing]
        helping = [row for row in testing if row["verdict"] == "supported"]
        if helping:
            confirmed.append(Cause(CONFIRMED, field, finding, dict(helping[0]), len(helping) - 1))
        elif "inconclusive" in verdicts:
            best = next(row for row in testing if row["verdict"] == "inconclusive")
            pending[UNSETTLED].append(Cause(UNSETTLED, field, finding, dict(best)))
        elif "refuted" in verdicts:
            best = next(row for row in testing if row["verdict"] == "refuted")
            pending[CONTRADICTED].append(Cause(CONTRADICTED, field, finding, dict(best)))
        else:  # no rung changes the field, or every one that does crashed
            pending[UNTESTED].append(Cause(UNTESTED, field, finding, None))
    found = [
        # A folder that recorded no configs names no fields: the rung's key stands in.
        Cause(FOUND, ", ".join(sorted(split_fields(row.get("fields")))) or str(row["rung"]), None, dict(row))
        for row in rows
        if row["verdict"] == "supported" and not split_fields(row.get("fields")) & flagged
    ]
    return [*confirmed, *found, *pending[UNSETTLED], *pending[UNTESTED], *pending[CONTRADICTED]]
