"""What a diagnosis is, as one typed record: the base (the user's DQN as given: its seeds' outcomes,
lint findings, symptoms) and every rung (one change of one knob) with its verdict against it.

The session writes it (ablations/diagnosis/rungs.py builds the base's part; each rung's row comes
from the claim family), the results folder carries it (tests.parquet rows `diagnosis-base` and
`diagnosis`), and every reader (tables, the HTML report, the repair path, the known-cause
benchmark, the command line) reads it back through `Diagnosis.from_results` or `from_dict`: no
reader looks a diagnosis key up by string outside this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.analysis.metrics import SEED_OUTCOMES
from reports.analysis.stats import Verdict
from reports.results import ReportError, Results, load_results

SCHEMA_VERSION = 1
REPAIR_PATH_FILE = "repair-path.json"
# The tests.parquet `property` of the base's row and of each rung's row.
BASE_PROPERTY = "diagnosis-base"
RUNG_PROPERTY = "diagnosis"


def _number(value: Any) -> float | None:
    """A finite float, or None for a missing or non-finite value (JSON has no NaN)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _known(cls, data: dict) -> dict:
    """The keys of `data` that are fields of `cls` (older or newer records carry others)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class SeedFigures:
    """What one variant's seeds showed in a comparison: late-return IQM and median, how many
    reached the success threshold, of how many, and each seed outcome's count."""

    late_return_iqm: float | None
    late_return_median: float | None
    learned: int
    seeds: int
    outcomes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.learned < 0 or self.seeds < 0 or self.learned > self.seeds:
            raise ValueError(f"learned={self.learned!r} of seeds={self.seeds!r} is invalid")
        unknown = set(self.outcomes) - set(SEED_OUTCOMES)
        if unknown:
            raise ValueError(f"outcomes={sorted(unknown)!r} are not seed outcomes ({', '.join(SEED_OUTCOMES)})")

    @classmethod
    def from_dict(cls, data: dict | None) -> SeedFigures | None:
        if not data:
            return None
        return cls(
            late_return_iqm=_number(data.get("late_return_iqm")),
            late_return_median=_number(data.get("late_return_median")),
            learned=int(data.get("learned") or 0),
            seeds=int(data.get("seeds") or 0),
            outcomes={k: int(v) for k, v in (data.get("outcomes") or {}).items()},
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LintLine:
    """A lint finding as recorded: the rule, the field, the value as written (its repr), why it
    is a problem and what to change (agents.diagnosis.lint.Finding.to_dict), plus its order
    class where the linter gave one."""

    rule: str
    field: str
    value: str
    why: str
    fix: str
    order: int | None = None
    order_class: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> LintLine:
        return cls(**{**_known(cls, data), "value": str(data.get("value", ""))})

    def to_dict(self) -> dict:
        """As the linter wrote it: a record from before order classes has none."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in ("order", "order_class")}

    def line(self) -> str:
        return f"{self.field} = {self.value}: {self.why}; {self.fix}"


@dataclass(frozen=True)
class SymptomLine:
    """A symptom as recorded (reports.diagnosis.symptoms.Symptom): its name, sentence, on how many
    seeds of how many, and its numbers."""

    name: str
    sentence: str
    seeds: int
    of: int
    evidence: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> SymptomLine:
        return cls(**_known(cls, data))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Base:
    """The user's DQN as given: its variant, where its config came from, the success threshold,
    what became of each seed, and what lint and the runs flagged."""

    variant: str
    config_file: str
    trains: bool  # a majority of seeds converge (the base test passed)
    success_threshold: float
    success_source: str
    outcomes: dict[str, int]
    late_returns: tuple[float | None, ...]
    late_return_iqm: float | None
    share_converged: float | None
    share_low: float | None
    share_high: float | None
    lint: tuple[LintLine, ...] = ()
    symptoms: tuple[SymptomLine, ...] = ()
    skipped_rungs: tuple[str, ...] = ()
    bugs_in_config: tuple[str, ...] = ()
    bug_matches: tuple[dict, ...] = ()

    @property
    def seeds(self) -> int:
        return len(self.late_returns)

    @property
    def converged(self) -> int:
        return int(self.outcomes.get("converged", 0))

    def details(self) -> dict:
        """The figures the base's test records beside its statistic (tests.parquet `details`)."""
        return {
            "base_variant": self.variant,
            "config_file": self.config_file,
            "success_threshold": self.success_threshold,
            "success_source": self.success_source,
            "outcomes": dict(self.outcomes),
            "late_returns": list(self.late_returns),
            "late_return_iqm": self.late_return_iqm,
            "skipped_rungs": list(self.skipped_rungs),
            "lint": [finding.to_dict() for finding in self.lint],
            "symptoms": [symptom.to_dict() for symptom in self.symptoms],
            "bugs_in_config": list(self.bugs_in_config),
            "bug_matches": [dict(match) for match in self.bug_matches],
        }

    def to_dict(self) -> dict:
        return {
            **self.details(),
            "trains": self.trains,
            "share_converged": self.share_converged,
            "share_low": self.share_low,
            "share_high": self.share_high,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Base:
        return cls(
            variant=str(data.get("base_variant", "")),
            config_file=str(data.get("config_file", "")),
            trains=bool(data.get("trains")),
            success_threshold=float(data.get("success_threshold", math.nan)),
            success_source=str(data.get("success_source", "")),
            outcomes={k: int(v) for k, v in (data.get("outcomes") or {}).items()},
            late_returns=tuple(_number(v) for v in data.get("late_returns") or ()),
            late_return_iqm=_number(data.get("late_return_iqm")),
            share_converged=_number(data.get("share_converged")),
            share_low=_number(data.get("share_low")),
            share_high=_number(data.get("share_high")),
            lint=tuple(LintLine.from_dict(f) for f in data.get("lint") or ()),
            symptoms=tuple(SymptomLine.from_dict(s) for s in data.get("symptoms") or ()),
            skipped_rungs=tuple(data.get("skipped_rungs") or ()),
            bugs_in_config=tuple(data.get("bugs_in_config") or ()),
            bug_matches=tuple(dict(m) for m in data.get("bug_matches") or ()),
        )


@dataclass(frozen=True)
class Rung:
    """One change of one knob tried against the base: what it changes, its verdict on the late
    return (P(change > base) with its interval, raw and Holm-adjusted p), and both sides' figures."""

    rung: str
    change: str
    verdict: Verdict
    effect_size: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    seeds_used: int | None = None
    seeds_needed: int | None = None
    fields: tuple[str, ...] = ()  # the config fields it sets otherwise than the base
    base: SeedFigures | None = None
    with_change: SeedFigures | None = None
    error: str | None = None
    conditional_power: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    @property
    def settled(self) -> bool:
        return self.verdict in (Verdict.SUPPORTED, Verdict.REFUTED)

    @property
    def gain(self) -> float | None:
        """The change in late-return IQM, the rung's minus the base's (None when either is missing)."""
        if self.base is None or self.with_change is None:
            return None
        if self.base.late_return_iqm is None or self.with_change.late_return_iqm is None:
            return None
        return self.with_change.late_return_iqm - self.base.late_return_iqm

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdict"] = str(self.verdict)
        data["fields"] = list(self.fields)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Rung:
        return cls(
            rung=str(data["rung"]),
            change=str(data.get("change", "")),
            verdict=Verdict(data["verdict"]),
            effect_size=_number(data.get("effect_size")),
            ci_low=_number(data.get("ci_low")),
            ci_high=_number(data.get("ci_high")),
            p_value=_number(data.get("p_value")),
            p_adjusted=_number(data.get("p_adjusted")),
            seeds_used=_count(data.get("seeds_used")),
            seeds_needed=_count(data.get("seeds_needed")),
            fields=tuple(data.get("fields") or ()),
            base=SeedFigures.from_dict(data.get("base")),
            with_change=SeedFigures.from_dict(data.get("with_change")),
            error=data.get("error") or None,
            conditional_power=_number(data.get("conditional_power")),
        )


def rung_evidence(
    key: str,
    change: str,
    base_variant: str,
    rung_variant: str,
    success_threshold: float,
    base: SeedFigures,
    with_change: SeedFigures,
) -> dict:
    """The figures a rung's claim records beside its verdict (a tests.parquet row's `details`),
    which Diagnosis.from_results reads back into a Rung."""
    return {
        "rung": key,
        "change": change,
        "base_variant": base_variant,
        "rung_variant": rung_variant,
        "success_threshold": success_threshold,
        "base": base.to_dict(),
        "with_change": with_change.to_dict(),
    }


def rank(rungs) -> tuple[Rung, ...]:
    """Most helpful first: P(change > base) descending, then the gain in late-return IQM; a rung
    with neither (it crashed) last."""

    def key(rung: Rung) -> tuple[float, float]:
        p = -1.0 if rung.effect_size is None else rung.effect_size
        gain = -math.inf if rung.gain is None else rung.gain
        return (-p, -gain)

    return tuple(sorted(rungs, key=key))


def changed_fields(base: dict, rung: dict) -> tuple[str, ...]:
    """The config fields a rung sets otherwise than the base, as the two recorded configs say
    (empty when either was not recorded)."""
    if not base or not rung:
        return ()
    return tuple(sorted(k for k in base.keys() | rung.keys() if base.get(k) != rung.get(k)))


class CauseKind(StrEnum):
    """How a named cause stands (reports/diagnosis/cause.py): a lint finding confirmed by a change
    of its field alone, a helping change no rule flags, or a finding not settled, not tested or
    contradicted by the runs."""

    CONFIRMED = "confirmed"
    FOUND = "found by the runs"
    UNSETTLED = "flagged, not settled"
    UNTESTED = "flagged, not tested"
    CONTRADICTED = "flagged, contradicted"


@dataclass(frozen=True)
class Cause:
    """One named cause: its kind, the field(s) it is about, the lint finding (None when the runs
    found it alone), the rung that tests it (None when no rung changes the field) and how many
    other changes of the same field settled as helping."""

    kind: CauseKind
    field: str
    finding: LintLine | None
    rung: Rung | None
    other_helping: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", CauseKind(self.kind))
        except ValueError:
            raise ValueError(f"kind={self.kind!r} is invalid: one of {', '.join(CauseKind)}") from None
        if self.finding is None and self.kind != CauseKind.FOUND:
            raise ValueError(f"a {self.kind!r} cause needs the lint finding it reads")
        if self.rung is None and self.kind in (CauseKind.CONFIRMED, CauseKind.FOUND, CauseKind.CONTRADICTED):
            raise ValueError(f"a {self.kind!r} cause needs the rung that settled it")

    @property
    def fields(self) -> set[str]:
        """The config field(s) named: one for a lint finding, every one a found change sets."""
        return split_fields(self.field)


def split_fields(text) -> set[str]:
    """Field names from a comma-joined list (a Cause's field, the diagnosis table's 'fields');
    a missing value is none."""
    return {f.strip() for f in text.split(",") if f.strip()} if isinstance(text, str) else set()


@dataclass(frozen=True)
class RepairStep:
    """One round of the repair path: the config diagnosed, what became of it, and the change chosen."""

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
    chosen_as: str | None = None  # how the change was chosen (ablations/diagnosis/repair.py)
    change_iqm: float | None = None
    change_learned: int | None = None
    change_seeds: int | None = None  # the rung's seeds (more than the base's when added on demand)
    p_improvement: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_adjusted: float | None = None
    fields: dict | None = None  # field -> new value
    from_rung: str | None = None  # this config's runs are that rung of the round before

    def line(self) -> str:
        """The round as printed and reported: what became of it and its change."""
        iqm = "" if self.late_return_iqm is None else f", late return IQM {self.late_return_iqm:.3g}"
        state = f"round {self.round}: {self.learned} of {self.seeds} seeds converge{iqm}"
        if self.from_rung is not None:
            state += f" (its runs are round {self.round - 1}'s {self.from_rung} rung, on the same seeds)"
            return state + (": it trains." if self.trains else ": it does not train yet; the rounds ran out.")
        if self.change is None:
            return state + (": it trains." if self.trains else ": no change helps; the path stops here.")
        p_adj = "" if self.p_adjusted is None else f", Holm-adjusted p = {self.p_adjusted:.2g}"
        return (
            f"{state}; applying ({self.chosen_as}): {self.change} (IQM {self.change_iqm:.3g}, "
            f"{self.change_learned} of {self.change_seeds} learn, P(improvement) = {self.p_improvement:.2f}{p_adj})"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}

    @classmethod
    def from_dict(cls, data: dict) -> RepairStep:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class RepairPath:
    """The repair path of a diagnosis (repair-path.json beside round 1's report): the user's
    config file, the repaired file's name (None when no change was applied), every round."""

    config_file: str
    repaired: str | None
    steps: tuple[RepairStep, ...]

    def to_dict(self) -> dict:
        return {"config_file": self.config_file, "repaired": self.repaired, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict) -> RepairPath:
        return cls(
            str(data.get("config_file", "")),
            data.get("repaired"),
            tuple(RepairStep.from_dict(step) for step in data.get("steps") or ()),
        )

    @classmethod
    def load(cls, directory: Path) -> RepairPath | None:
        """The path a diagnosis folder holds (None when `diagnose` wrote none)."""
        path = Path(directory) / REPAIR_PATH_FILE
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ReportError(f"{path}: not a readable repair path ({exc})") from None


@dataclass(frozen=True)
class Diagnosis:
    """A whole diagnosis: the base and its rungs, most helpful first."""

    base: Base
    rungs: tuple[Rung, ...] = ()
    repair: RepairPath | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version={self.schema_version!r} is invalid: this reader knows diagnosis records "
                f"of version {SCHEMA_VERSION}"
            )
        object.__setattr__(self, "rungs", rank(self.rungs))

    def helping(self) -> tuple[Rung, ...]:
        """The rungs settled as improving the late return, most helpful first."""
        return tuple(r for r in self.rungs if r.verdict == Verdict.SUPPORTED)

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "base": self.base.to_dict(),
            "rungs": [r.to_dict() for r in self.rungs],
            "repair": None if self.repair is None else self.repair.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Diagnosis:
        return cls(
            base=Base.from_dict(data["base"]),
            rungs=tuple(Rung.from_dict(r) for r in data.get("rungs") or ()),
            repair=None if not data.get("repair") else RepairPath.from_dict(data["repair"]),
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_results(cls, results: Results) -> Diagnosis | None:
        """The diagnosis a results folder holds (None when the session diagnosed nothing)."""
        tests = results.tests
        base_rows = tests[tests["property"] == BASE_PROPERTY]
        if base_rows.empty:
            return None
        row = base_rows.iloc[0]
        details = _details(row.get("details"))
        base = Base.from_dict(
            {
                **details,
                "trains": row.get("outcome") == "passed",
                "share_converged": row.get("effect_size"),
                "share_low": row.get("ci_low"),
                "share_high": row.get("ci_high"),
            }
        )
        configs = results.variant_configs
        rungs = []
        for rung_row in tests[tests["property"] == RUNG_PROPERTY].to_dict("records"):
            rung_details = _details(rung_row.get("details"))
            base_config, rung_config = (configs.get(rung_details.get(k), {}) for k in ("base_variant", "rung_variant"))
            rungs.append(
                Rung.from_dict(
                    {
                        **rung_details,
                        **{k: rung_row.get(k) for k in ("verdict", "effect_size", "ci_low", "ci_high", "p_value")},
                        "p_adjusted": rung_row.get("p_adjusted"),
                        "seeds_needed": rung_row.get("seeds_needed"),
                        "rung": rung_details.get("rung") or rung_row.get("test"),
                        "change": rung_details.get("change") or rung_row.get("claim"),
                        "fields": changed_fields(base_config, rung_config),
                    }
                )
            )
        return cls(base, tuple(rungs), RepairPath.load(results.directory))

    @classmethod
    def load(cls, source: Path | Results) -> Diagnosis:
        """The diagnosis a results folder (or its loaded Results) holds; ReportError naming the
        folder when its session diagnosed nothing (the one check every reader of a finished
        diagnosis needs)."""
        results = source if isinstance(source, Results) else load_results(source)
        diagnosis = cls.from_results(results)
        if diagnosis is None:
            raise ReportError(f"{results.directory}: the session recorded no diagnosis")
        return diagnosis

    @staticmethod
    def empty_table() -> pd.DataFrame:
        return pd.DataFrame([], columns=TABLE_COLUMNS)

    def table(self) -> pd.DataFrame:
        """The ranked rungs as the report's diagnosis table (one row per rung)."""
        rows = [
            {
                "rung": r.rung,
                "change": r.change,
                "verdict": str(r.verdict),
                "effect_size": r.effect_size,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "p_value": r.p_value,
                "p_adjusted": r.p_adjusted,
                "seeds_used": r.seeds_used,
                "base_iqm": r.base.late_return_iqm if r.base else None,
                "change_iqm": r.with_change.late_return_iqm if r.with_change else None,
                "base_learned": r.base.learned if r.base else None,
                "change_learned": r.with_change.learned if r.with_change else None,
                "change_converged": r.with_change.outcomes.get("converged") if r.with_change else None,
                "seeds": r.with_change.seeds if r.with_change else None,
                "seeds_needed": r.seeds_needed,
                "fields": ", ".join(r.fields),
                "error": r.error,
            }
            for r in self.rungs
        ]
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)


TABLE_COLUMNS = [
    "rung",
    "change",
    "verdict",
    "effect_size",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "seeds_used",
    "base_iqm",
    "change_iqm",
    "base_learned",
    "change_learned",
    "change_converged",
    "seeds",
    "seeds_needed",
    "fields",
    "error",
]


def _details(text: Any) -> dict:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return {}
    return json.loads(text) if text else {}
