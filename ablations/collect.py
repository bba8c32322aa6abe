"""Results of an ablation session: recorded by each test, gathered by the controller, written once.

Tests record one JSON string through record_property (plain JSON travels over xdist's channel
where numpy scalars do not). The controller, the process whose config has no `workerinput`,
reads them from the test reports and at the end of the session writes the results folder:
runs.parquet (seed x checkpoint diagnostics of every run the tests used), episodes.parquet,
tests.parquet (one row per test) and meta.json, all into a staging folder renamed into place.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.envprofile import env_profile
from agents.results import RunResult, git_commit, package_versions, write_directory_atomically

PROPERTY_KEY = "ablation"
# Tests whose rows are claims of a family: a crash before recording still gets a ledger row.
FAMILY_PROPERTIES = {"claims", "literature", "bugs", "diagnosis"}
TEST_COLUMNS = [
    "node_id",
    "test",
    "property",
    "claim",
    "variants",
    "statistic",
    "effect_size",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "verdict",
    "p_adjusted",
    "seeds_needed",
    "outcome",
    "duration_s",
    "details",
]


def plain(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__} value {value!r}: use plain JSON values")


def record(record_property, runs: list[RunResult] = (), verdict=None, **payload: Any) -> None:
    """Attach this test's figures to its report as one JSON string: the runs it used (by
    cache location), the verdict's fields if there is one, and any further named figures."""
    if isinstance(verdict, str):  # a verdict already decided elsewhere (the claim family)
        payload["verdict"] = verdict
    elif verdict is not None:
        payload = {**verdict.as_dict(), **payload}
    payload["runs"] = {run.variant: run.meta["cache_paths"] for run in runs}
    record_property(PROPERTY_KEY, json.dumps(plain(payload), sort_keys=True))


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    return report.outcome


class ResultsCollector:
    """Lives in the controller: gathers test rows and run locations from test reports."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.runs: dict[str, str] = {}
        self.started = time.time()

    def add(self, report: pytest.TestReport) -> None:
        payloads = [json.loads(value) for key, value in report.user_properties if key == PROPERTY_KEY]
        if not payloads:
            self._add_crashed_claim(report)
            return
        # The call report is final; a setup that skipped or failed is final too.
        if report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        payload = payloads[-1]
        runs = payload.pop("runs", {}) or {}
        for variant, paths in runs.items():
            # A run over more seeds (a later look) holds the blocks of the shorter one.
            if len(paths) > len(self.runs.get(variant, [])):
                self.runs[variant] = list(paths)
        row = {column: payload.pop(column, None) for column in TEST_COLUMNS}
        row.update(
            node_id=report.nodeid,
            test=report.nodeid.split("::")[-1],
            variants=",".join(sorted(runs)) if runs else row["variants"],
            outcome=_outcome(report),
            duration_s=float(report.duration),
            details=json.dumps(payload, sort_keys=True),
        )
        self.rows[report.nodeid] = row

    def _add_crashed_claim(self, report: pytest.TestReport) -> None:
        """A claim test that failed before recording anything (a crash in setup or in the
        test) still gets its ledger row, with verdict 'error': it must not vanish."""
        if not FAMILY_PROPERTIES & set(report.keywords) or report.passed or report.when == "teardown":
            return
        if report.nodeid in self.rows:
            return
        row = dict.fromkeys(TEST_COLUMNS)
        row.update(
            node_id=report.nodeid,
            test=report.nodeid.split("::")[-1],
            property=next(p for p in FAMILY_PROPERTIES if p in report.keywords),
            claim=report.nodeid.split("::")[-1],
            verdict="error",
            outcome="error" if report.when == "setup" else _outcome(report),
            duration_s=float(report.duration),
            details=json.dumps({"error": str(report.longrepr)[-2000:]}),
        )
        self.rows[report.nodeid] = row

    def write(self, out_dir: Path, meta: dict) -> Path:
        """Write the results folder atomically (staging folder, then rename)."""
        tests = pd.DataFrame([self.rows[k] for k in sorted(self.rows)], columns=TEST_COLUMNS)
        runs = [RunResult.concat([RunResult.load(path) for path in self.runs[name]]) for name in sorted(self.runs)]
        checkpoints = pd.concat([r.checkpoints for r in runs], ignore_index=True) if runs else pd.DataFrame()
        episodes = pd.concat([r.episodes for r in runs], ignore_index=True) if runs else pd.DataFrame()
        if len(checkpoints):
            checkpoints = checkpoints.sort_values(["variant", "seed", "env_step"], ignore_index=True)
            episodes = episodes.sort_values(["variant", "seed", "env_step"], ignore_index=True)
        meta = {
            **meta,
            "wall_time_s": time.time() - self.started,
            "tests": len(tests),
            "variants": {r.variant: r.meta for r in runs},
        }

        def write(staging: Path) -> None:
            tests.to_parquet(staging / "tests.parquet", index=False)
            checkpoints.to_parquet(staging / "runs.parquet", index=False)
            episodes.to_parquet(staging / "episodes.parquet", index=False)
            (staging / "meta.json").write_text(json.dumps(plain(meta), indent=2, sort_keys=True))

        write_directory_atomically(out_dir, write)
        return out_dir


def session_meta(config: pytest.Config, settings) -> dict:
    return {
        "profile": settings.profile,
        "seeds": list(settings.seeds),
        "env_steps": settings.env_steps,
        # Seeds on demand: the looks' seed counts, and whether claims may stop for futility.
        "looks": settings.looks,
        "futility_stop": bool(settings.max_seeds) and settings.futility,
        "env_id": settings.env_id,
        "env_profile": env_profile(settings.env_id, **settings.env_settings).to_dict(),
        "diagnosis": _diagnosis_meta(settings),
        "command_line": " ".join([Path(sys.argv[0]).name, *config.invocation_params.args]),
        "xdist_workers": getattr(config.option, "numprocesses", None) or 0,
        "executor": settings.executor,
        "package_versions": package_versions(),
        "git_commit": git_commit(),
        "session_id": settings.session_id,
    }


def _diagnosis_meta(settings) -> dict | None:
    """What a diagnosis ran: the config file, its base and rungs, the knobs left out and why."""
    if not settings.diagnosis:
        return None
    base, *rungs = settings.session_variants
    return {
        "config_file": str(settings.config_file.path),
        "name": settings.config_file.name,
        "base": base.name,
        "base_config": settings.configure(base.config).to_dict(),
        "rungs": [{"variant": v.name, "change": v.summary} for v in rungs],
        "skipped": list(settings.skipped_rungs),
        # The plan (ablations/diagnosis/plan.py: budget, stages, families) and the stage trained through.
        "plan": json.loads(settings.diagnosis_plan.to_json()) if settings.diagnosis_plan else None,
        "stage": settings.diagnosis_stage,
    }
